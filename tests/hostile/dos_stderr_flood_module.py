# ruff: noqa
"""Flood stderr with 200 MiB at import time, straight to file descriptor 2 (below print and sys.stdout).
ATTACK: dos
WHERE: module
EXPECT-OUTCOME: ok, output_exceeded
EXPECT-VERDICT: suspicious, hostile
PASSES-VALIDATOR: no
"""

import os

from harness.design import MemoryDesign

_chunk = b"E" * 2**20
for _ in range(200):
    try:
        os.write(2, _chunk)
    except OSError:
        break


class DosStderrFloodModule(MemoryDesign):
    async def retrieve(self, task):
        return {"text": ""}

    async def update(self, episode):
        return None
