# expect: missing-method
# ruff: noqa
"""Bad design: has no update method."""

from harness.design import MemoryDesign, Toolkit
from harness.types import Episode, Task


class BadMemory(MemoryDesign):
    """A design that breaks one rule of the validator."""

    def __init__(self, toolkit: Toolkit):
        super().__init__(toolkit)

    async def retrieve(self, task: Task) -> dict:
        return {}

