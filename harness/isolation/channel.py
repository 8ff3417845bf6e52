"""JSON-lines messages over a pair of pipe file descriptors (one message per line, UTF-8)."""

from __future__ import annotations

import json
import os
import select
import time
from typing import Any

MAX_LINE = 16 * 1024 * 1024


class ChannelClosed(Exception):
    """The other side closed its end (it exited or crashed)."""


class ChannelTimeout(Exception):
    """No complete message arrived before the deadline."""


class Channel:
    def __init__(self, read_fd: int, write_fd: int):
        self.read_fd = read_fd
        self.write_fd = write_fd
        self._buf = b""
        self.last_bytes = 0

    def send(self, message: dict[str, Any]) -> None:
        data = (json.dumps(message, default=str) + "\n").encode("utf-8")
        view = memoryview(data)
        while view:
            n = os.write(self.write_fd, view)
            view = view[n:]

    def recv(self, deadline: float | None = None) -> dict[str, Any]:
        while b"\n" not in self._buf:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ChannelTimeout()
                ready, _, _ = select.select([self.read_fd], [], [], left)
                if not ready:
                    raise ChannelTimeout()
            chunk = os.read(self.read_fd, 65536)
            if not chunk:
                raise ChannelClosed()
            self._buf += chunk
            if len(self._buf) > MAX_LINE:
                raise ChannelClosed("message too large")
        line, _, self._buf = self._buf.partition(b"\n")
        self.last_bytes = len(line)
        return json.loads(line)

    def pending(self) -> bool:
        """Whether anything arrived that nobody asked for yet (buffered or waiting on the pipe)."""
        if self._buf:
            return True
        ready, _, _ = select.select([self.read_fd], [], [], 0)
        return bool(ready)

    def discard(self) -> int:
        """Drop whatever is buffered or waiting (unsolicited bytes); returns how many bytes were dropped."""
        dropped = len(self._buf)
        self._buf = b""
        while dropped < MAX_LINE and select.select([self.read_fd], [], [], 0)[0]:
            chunk = os.read(self.read_fd, 65536)
            if not chunk:
                break
            dropped += len(chunk)
        return dropped

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass
