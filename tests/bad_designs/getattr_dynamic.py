# expect: dynamic-attribute
# ruff: noqa
"""Bad design: reads an attribute whose name is computed."""

from harness.design import MemoryDesign, Toolkit
from harness.types import Episode, Task


class BadMemory(MemoryDesign):
    """A design that breaks one rule of the validator."""

    def __init__(self, toolkit: Toolkit):
        super().__init__(toolkit)

    async def retrieve(self, task: Task) -> dict:
        name = "_".join(["", "", "class", "", ""])
        return {"text": str(getattr(self, name))}

    async def update(self, episode: Episode) -> None:
        return None
