# expect: disallowed-import
# ruff: noqa
"""Bad design: uses a star import."""

from math import *
from harness.design import MemoryDesign, Toolkit
from harness.types import Episode, Task


class BadMemory(MemoryDesign):
    """A design that breaks one rule of the validator."""

    def __init__(self, toolkit: Toolkit):
        super().__init__(toolkit)

    async def retrieve(self, task: Task) -> dict:
        return {"text": str(sqrt(2))}

    async def update(self, episode: Episode) -> None:
        return None
