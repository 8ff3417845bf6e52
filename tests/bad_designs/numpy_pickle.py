# expect: forbidden-call
# ruff: noqa
"""Bad design: loads a pickle through numpy."""

import numpy as np
from harness.design import MemoryDesign, Toolkit
from harness.types import Episode, Task


class BadMemory(MemoryDesign):
    """A design that breaks one rule of the validator."""

    def __init__(self, toolkit: Toolkit):
        super().__init__(toolkit)

    async def retrieve(self, task: Task) -> dict:
        data = np.load("memory.npy", allow_pickle=True)
        return {"text": str(data)}

    async def update(self, episode: Episode) -> None:
        return None
