"""The design worker's stdout and stderr, read by the scorer through a pipe.

A design can print anything, as much as it likes: :class:`OutputSink` keeps the first :data:`LOG_LIMIT` bytes
in the worker's log (where the design's uid cannot write), counts the rest without storing it (so a flood
never fills the job's disk) and reports, once each, a design that printed more than the log keeps and one
that printed terminal control sequences (escape codes that could clear an operator's screen or fake a line).
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

#: bytes of the design's output kept in its log; past this the design is reported as flooding its output
LOG_LIMIT = 1024 * 1024
#: C0 control characters other than tab, newline and carriage return, DEL, and the 8-bit CSI
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x9b]")


class OutputSink:
    """Collects the output of every worker process a design handle starts (one pipe per process)."""

    def __init__(self, log_path: Path):
        self.log_path = Path(log_path)
        self.total = 0
        self.control = ""
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._reported: set[str] = set()

    def attach(self) -> int:
        """A new pipe for a worker: returns the write end (to pass as its stdout and stderr; close it in the
        parent once the worker has started)."""
        read_fd, write_fd = os.pipe()
        log = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        thread = threading.Thread(target=self._drain, args=(read_fd, log), daemon=True, name="design-output")
        thread.start()
        self._threads.append(thread)
        return write_fd

    def _drain(self, read_fd: int, log: int) -> None:
        try:
            while chunk := os.read(read_fd, 65536):
                with self._lock:
                    keep = max(0, min(len(chunk), LOG_LIMIT - self.total))
                    self.total += len(chunk)
                    if not self.control and (m := _CONTROL.search(chunk)):
                        self.control = repr(chunk[max(0, m.start() - 20):m.start() + 20])
                if keep:
                    os.write(log, chunk[:keep])
        except OSError:
            pass
        finally:
            os.close(read_fd)
            os.close(log)

    def settle(self, timeout: float = 0.5) -> None:
        """Wait briefly for the readers of exited workers (their last bytes)."""
        for thread in self._threads:
            thread.join(timeout)
        self._threads = [t for t in self._threads if t.is_alive()]

    def events(self) -> list[dict]:
        """Audit events not reported yet: ``limit/output`` for a flood, ``output/control_sequences``."""
        out = []
        with self._lock:
            total, control = self.total, self.control
        if total > LOG_LIMIT and "flood" not in self._reported:
            self._reported.add("flood")
            out.append({"kind": "limit", "event": "output", "refused": False,
                        "detail": f"the design printed over {LOG_LIMIT // 1024} KiB to stdout/stderr "
                                  f"({total // 1024} KiB so far; the log keeps the first {LOG_LIMIT // 1024} KiB)"})
        if control and "control" not in self._reported:
            self._reported.add("control")
            out.append({"kind": "output", "event": "control_sequences", "refused": False,
                        "detail": f"the design printed terminal control characters: {control}"})
        return out
