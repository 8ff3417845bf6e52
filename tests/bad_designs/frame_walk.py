# expect: forbidden-attribute
# ruff: noqa
"""Bad design: walks interpreter frames to reach globals."""

from harness.design import MemoryDesign, Toolkit
from harness.types import Episode, Task


class BadMemory(MemoryDesign):
    """A design that breaks one rule of the validator."""

    def __init__(self, toolkit: Toolkit):
        super().__init__(toolkit)

    async def retrieve(self, task: Task) -> dict:
        gen = (x for x in [1])
        return {"text": str(gen.gi_frame.f_back.f_globals)}

    async def update(self, episode: Episode) -> None:
        return None
