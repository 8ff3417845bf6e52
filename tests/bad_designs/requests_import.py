# expect: disallowed-import
# ruff: noqa
"""Bad design: imports a module that is not on the allowlist."""

import requests
from harness.design import MemoryDesign, Toolkit
from harness.types import Episode, Task


class BadMemory(MemoryDesign):
    """A design that breaks one rule of the validator."""

    def __init__(self, toolkit: Toolkit):
        super().__init__(toolkit)

    async def retrieve(self, task: Task) -> dict:
        return {}

    async def update(self, episode: Episode) -> None:
        requests.get("http://example.com", timeout=5)
