# expect: undefined-name
# ruff: noqa
"""Bad design: uses a name that is never defined (ruff F821)."""

from harness.design import MemoryDesign, Toolkit
from harness.types import Episode, Task


class BadMemory(MemoryDesign):
    """A design that breaks one rule of the validator."""

    def __init__(self, toolkit: Toolkit):
        super().__init__(toolkit)

    async def retrieve(self, task: Task) -> dict:
        return {"text": memory_text_of(task)}

    async def update(self, episode: Episode) -> None:
        return None
