# expect: dunder-access
# ruff: noqa
"""Bad design: reaches a dunder attribute through a format string."""

from harness.design import MemoryDesign, Toolkit
from harness.types import Episode, Task


class BadMemory(MemoryDesign):
    """A design that breaks one rule of the validator."""

    def __init__(self, toolkit: Toolkit):
        super().__init__(toolkit)

    async def retrieve(self, task: Task) -> dict:
        return {"text": "{0.__init__.__globals__}".format(self)}

    async def update(self, episode: Episode) -> None:
        return None
