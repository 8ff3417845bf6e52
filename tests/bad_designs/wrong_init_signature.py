# expect: wrong-signature
# ruff: noqa
"""Bad design: the constructor takes other parameters."""

from harness.design import MemoryDesign, Toolkit
from harness.types import Episode, Task


class BadMemory(MemoryDesign):
    """A design that breaks one rule of the validator."""

    def __init__(self, llm, embedder):
        super().__init__(llm)

    async def retrieve(self, task: Task) -> dict:
        return {}

    async def update(self, episode: Episode) -> None:
        return None
