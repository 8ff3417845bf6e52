# ruff: noqa
"""retrieve() returns a dict the channel cannot encode faithfully: a reference cycle, a set, bytes, an object
whose __str__ spins for a while and an object whose __str__ raises.
ATTACK: dos
WHERE: call
EXPECT-OUTCOME: ok, design_error
EXPECT-VERDICT: suspicious, hostile
PASSES-VALIDATOR: yes
"""

import time

from harness.design import MemoryDesign


class Slow:
    def __str__(self):
        time.sleep(3)
        return "slow"


class Boom:
    def __str__(self):
        raise SystemExit(0)


class DosNonJsonRetrieve(MemoryDesign):
    async def retrieve(self, task):
        cycle = {"text": "loop"}
        cycle["self"] = cycle
        return {"text": Slow(), "set": {1, 2}, "bytes": b"\xff", "boom": Boom(), "cycle": cycle}

    async def update(self, episode):
        return None
