"""No memory: the memoryless baseline.

The agent plays every task from scratch: ``retrieve`` returns ``{}`` and ``update`` learns nothing. It is the
lower reference point against which every memory design (hand-written or meta-learned) is compared, as in the
"no memory" baseline of ALMA ("Learning to Continually Learn via Meta-learning Agentic Memory Designs",
arXiv 2602.07755).
"""

from __future__ import annotations

from harness.design import MemoryDesign, Toolkit
from harness.types import Episode, Task


class NoMemory(MemoryDesign):
    """Keeps nothing and recalls nothing."""

    def __init__(self, toolkit: Toolkit):
        super().__init__(toolkit)

    async def retrieve(self, task: Task) -> dict:
        return {}

    async def update(self, episode: Episode) -> None:
        return None
