# expect: size-limit
# ruff: noqa
"""Bad design: defines more classes than the policy allows."""

from harness.design import MemoryDesign, Toolkit
from harness.types import Episode, Task


class _Part0:
    pass


class _Part1:
    pass


class _Part2:
    pass


class _Part3:
    pass


class _Part4:
    pass


class _Part5:
    pass


class _Part6:
    pass


class _Part7:
    pass


class _Part8:
    pass


class _Part9:
    pass


class _Part10:
    pass


class _Part11:
    pass


class _Part12:
    pass


class _Part13:
    pass


class _Part14:
    pass


class _Part15:
    pass


class _Part16:
    pass


class _Part17:
    pass


class _Part18:
    pass


class _Part19:
    pass


class BadMemory(MemoryDesign):
    """A design that breaks one rule of the validator."""

    def __init__(self, toolkit: Toolkit):
        super().__init__(toolkit)

    async def retrieve(self, task: Task) -> dict:
        return {}

    async def update(self, episode: Episode) -> None:
        return None
