# ruff: noqa
"""Allocate memory without end at import time (64 MiB blocks, touched so they are really resident).
ATTACK: dos
WHERE: module
EXPECT-OUTCOME: oom
EXPECT-VERDICT: suspicious, hostile
PASSES-VALIDATOR: yes
"""

from harness.design import MemoryDesign

HOARD = []
while True:
    HOARD.append(bytearray(64 * 2**20))
    HOARD[-1][::4096] = b"x" * len(HOARD[-1][::4096])


class DosMemoryHogModule(MemoryDesign):
    async def retrieve(self, task):
        return {}

    async def update(self, episode):
        return None
