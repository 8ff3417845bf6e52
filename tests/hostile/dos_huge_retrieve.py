# ruff: noqa
"""retrieve() returns a 200 MB dict (one huge string and many keys) for the channel to carry.
ATTACK: dos
WHERE: call
EXPECT-OUTCOME: ok, design_error, oom
EXPECT-VERDICT: suspicious, hostile
PASSES-VALIDATOR: yes
"""

from harness.design import MemoryDesign


class DosHugeRetrieve(MemoryDesign):
    async def retrieve(self, task):
        value = {"text": "A" * (150 * 2**20)}
        value.update({f"k{i}": "v" * 100 for i in range(200000)})
        return value

    async def update(self, episode):
        return None
