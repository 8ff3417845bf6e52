# expect: dunder-access
# ruff: noqa
"""Bad design: walks to every loaded class through dunder attributes."""

from harness.design import MemoryDesign, Toolkit
from harness.types import Episode, Task


class BadMemory(MemoryDesign):
    """A design that breaks one rule of the validator."""

    def __init__(self, toolkit: Toolkit):
        super().__init__(toolkit)

    async def retrieve(self, task: Task) -> dict:
        classes = ().__class__.__bases__[0].__subclasses__()
        return {"text": str(len(classes))}

    async def update(self, episode: Episode) -> None:
        return None
