# expect: builtin-rebind
# ruff: noqa
"""Bad design: rebinds the builtin open."""

from harness.design import MemoryDesign, Toolkit
from harness.types import Episode, Task


def open(*args, **kwargs):
    return None


class BadMemory(MemoryDesign):
    """A design that breaks one rule of the validator."""

    def __init__(self, toolkit: Toolkit):
        super().__init__(toolkit)

    async def retrieve(self, task: Task) -> dict:
        return {}

    async def update(self, episode: Episode) -> None:
        return None
