"""Host-side watching of a running job: the size of its output directory and bounded capture of its pipes."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

from sandbox.outcome import OutputTail

#: More entries than this under /out counts as over the output limit (a file-count bomb).
MAX_OUT_ENTRIES = 10_000


def tree_size(root: Path, max_entries: int = MAX_OUT_ENTRIES) -> tuple[int, int]:
    """(bytes, entries) under ``root`` without following symlinks; stops counting at ``max_entries``."""
    total = entries = 0
    stack = [str(root)]
    while stack and entries <= max_entries:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    entries += 1
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        else:
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue
        except OSError:
            continue
    return total, entries


def output_over_limit(out_dir: Path | None, limit_mb: int) -> str | None:
    """A reason string when ``out_dir`` holds more than ``limit_mb`` MiB or too many entries, else None."""
    if out_dir is None:
        return None
    size, entries = tree_size(out_dir)
    if size > limit_mb * 2**20:
        return f"/out holds {size / 2**20:.1f} MiB, over the {limit_mb} MiB output limit"
    if entries > MAX_OUT_ENTRIES:
        return f"/out holds more than {MAX_OUT_ENTRIES} entries"
    return None


class Watchdog(threading.Thread):
    """Calls each check every ``interval`` seconds; the first that returns a reason trips ``on_trip(reason)``
    once and the watchdog stops. ``stop()`` ends it."""

    def __init__(self, checks: list[Callable[[], str | None]], on_trip: Callable[[str], None],
                 interval: float = 0.25):
        super().__init__(daemon=True, name="sandbox-watchdog")
        self.checks, self.on_trip, self.interval = checks, on_trip, interval
        self.tripped: str | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            for check in self.checks:
                reason = check()
                if reason:
                    self.tripped = reason
                    self.on_trip(reason)
                    return

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=2.0)


def drain(stream: IO[bytes], tail: OutputTail) -> threading.Thread:
    """Read ``stream`` to its end in a thread, keeping what ``tail`` keeps; returns the started thread."""

    def pump() -> None:
        with stream:
            while chunk := stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536):
                tail.feed(chunk)

    thread = threading.Thread(target=pump, daemon=True, name="sandbox-drain")
    thread.start()
    return thread
