# ruff: noqa
"""Spin the CPU forever inside update() (retrieve behaves).
ATTACK: dos
WHERE: call
EXPECT-OUTCOME: timeout
EXPECT-VERDICT: suspicious, hostile
PASSES-VALIDATOR: yes
"""

from harness.design import MemoryDesign


class DosCpuSpinUpdate(MemoryDesign):
    async def retrieve(self, task):
        return {}

    async def update(self, episode):
        x = 0
        while True:
            x = (x * 31 + 7) % 1000003
