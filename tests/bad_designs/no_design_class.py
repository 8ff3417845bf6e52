# expect: missing-design-class
# ruff: noqa
"""Bad design: has no MemoryDesign subclass."""

from harness.design import MemoryDesign, Toolkit
from harness.types import Episode, Task


class Memory:
    async def retrieve(self, task: Task) -> dict:
        return {}

    async def update(self, episode: Episode) -> None:
        return None
