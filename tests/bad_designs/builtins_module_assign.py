# expect: builtin-rebind
# ruff: noqa
"""Bad design: patches the builtins module."""

import builtins
from harness.design import MemoryDesign, Toolkit
from harness.types import Episode, Task


class BadMemory(MemoryDesign):
    """A design that breaks one rule of the validator."""

    def __init__(self, toolkit: Toolkit):
        super().__init__(toolkit)

    async def retrieve(self, task: Task) -> dict:
        return {}

    async def update(self, episode: Episode) -> None:
        builtins.print = lambda *a: None
