# expect: builtin-rebind
# ruff: noqa
"""Bad design: assigns to the builtin len."""

from harness.design import MemoryDesign, Toolkit
from harness.types import Episode, Task

len = 3


class BadMemory(MemoryDesign):
    """A design that breaks one rule of the validator."""

    def __init__(self, toolkit: Toolkit):
        super().__init__(toolkit)

    async def retrieve(self, task: Task) -> dict:
        return {}

    async def update(self, episode: Episode) -> None:
        return None
