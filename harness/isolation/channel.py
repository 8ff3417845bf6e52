"""JSON-lines messages over a pair of pipe file descriptors (one message per line, UTF-8).

The encoder and decoder are bound when this module is imported (before a design is loaded), so a design that
rebinds ``json.dumps`` in the worker does not rewrite the worker's messages.
"""

from __future__ import annotations

import os
import select
import time
from json import dumps as _dumps
from json import loads as _loads
from typing import Any

MAX_LINE = 16 * 1024 * 1024


class ChannelClosed(Exception):
    """The other side closed its end (it exited or crashed)."""


class ChannelTimeout(Exception):
    """No complete message arrived before the deadline."""


class ChannelGarbled(Exception):
    """A complete line arrived that is not a JSON document (or nests too deep to decode)."""


class Channel:
    def __init__(self, read_fd: int, write_fd: int):
        self.read_fd = read_fd
        self.write_fd = write_fd
        self._buf = b""
        self.last_bytes = 0

    def send(self, message: dict[str, Any]) -> None:
        data = (_dumps(message, default=str) + "\n").encode("utf-8")
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
        try:
            return _loads(line)
        except (ValueError, RecursionError) as exc:
            raise ChannelGarbled(f"an undecodable message of {len(line)} bytes: {type(exc).__name__}") from None

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
