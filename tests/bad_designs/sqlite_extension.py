# expect: forbidden-attribute
# ruff: noqa
"""Bad design: loads a native SQLite extension."""

import sqlite3
from harness.design import MemoryDesign, Toolkit
from harness.types import Episode, Task


class BadMemory(MemoryDesign):
    """A design that breaks one rule of the validator."""

    def __init__(self, toolkit: Toolkit):
        super().__init__(toolkit)

    async def retrieve(self, task: Task) -> dict:
        return {}

    async def update(self, episode: Episode) -> None:
        conn = sqlite3.connect(str(self.toolkit.db_path))
        conn.enable_load_extension(True)
