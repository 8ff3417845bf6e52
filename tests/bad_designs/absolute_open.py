# expect: forbidden-path
# ruff: noqa
"""Bad design: reads a file outside the scratch directory."""

from harness.design import MemoryDesign, Toolkit
from harness.types import Episode, Task


class BadMemory(MemoryDesign):
    """A design that breaks one rule of the validator."""

    def __init__(self, toolkit: Toolkit):
        super().__init__(toolkit)

    async def retrieve(self, task: Task) -> dict:
        with open("/etc/passwd") as fh:
            return {"text": fh.read()}

    async def update(self, episode: Episode) -> None:
        return None
