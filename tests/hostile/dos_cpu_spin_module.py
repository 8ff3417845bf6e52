# ruff: noqa
"""Spin the CPU forever at import time (module load + constructor never returns).
ATTACK: dos
WHERE: module
EXPECT-OUTCOME: timeout
EXPECT-VERDICT: suspicious, hostile
PASSES-VALIDATOR: yes
"""

from harness.design import MemoryDesign

_x = 0
while True:
    _x = (_x * 31 + 7) % 1000003


class DosCpuSpinModule(MemoryDesign):
    async def retrieve(self, task):
        return {}

    async def update(self, episode):
        return None
