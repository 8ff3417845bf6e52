"""The design worker: loads one memory design and serves retrieve/update calls from the harness.

Started by :class:`harness.isolation.proxy.IsolatedDesign`; not meant to be run by hand. The file
descriptors of its channel come in ``ALMA_WORKER_FDS`` ("read,write"). stdout is redirected to stderr so a
design's prints cannot corrupt the channel. Messages from the harness: ``{"op": "init", "source", "name",
"scratch_dir"}``, ``{"op": "retrieve", "task"}``, ``{"op": "update", "episode"}``, ``{"op": "exit"}``. Replies:
``{"type": "result", "ok", "value"|"error", "events"}``; while a call runs, the worker may send ``{"type": "llm",
...}`` or ``{"type": "embed", "texts"}`` and waits for ``{"type": "model_result", "ok", "value"|"error"}``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import traceback
from pathlib import Path

from harness.design import Toolkit
from harness.isolation import audit
from harness.isolation.channel import Channel
from harness.loader import load_design_source
from harness.types import Episode, Task

PROJECT_ROOT = str(Path(__file__).resolve().parents[2])
#: allowed libraries whose import needs what the armed hook refuses (numpy loads libraries through ctypes):
#: imported before the hook is armed, so a design's ``import numpy`` finds them loaded.
PRELOAD = ("numpy", "sqlite3", "json", "re", "math", "hashlib", "random", "statistics", "heapq", "collections",
           "dataclasses", "datetime", "textwrap", "itertools", "functools")


class _Remote:
    """Forwards model calls to the harness over the channel (one at a time)."""

    def __init__(self, channel: Channel):
        self.channel = channel
        self.lock = threading.Lock()

    def call(self, message: dict):
        with self.lock:
            self.channel.send(message)
            reply = self.channel.recv()
        if not reply.get("ok"):
            raise RuntimeError(reply.get("error", "model call failed"))
        return reply["value"]


class PipeLLM:
    def __init__(self, remote: _Remote):
        self._remote = remote

    async def complete(self, prompt: str, *, system: str | None = None, json_mode: bool = False,
                       max_tokens: int = 512, temperature: float = 0.0) -> str:
        return str(self._remote.call({"type": "llm", "prompt": str(prompt), "system": system,
                                      "json_mode": bool(json_mode), "max_tokens": int(max_tokens),
                                      "temperature": float(temperature)}))


class PipeEmbedder:
    def __init__(self, remote: _Remote):
        self._remote = remote

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return self._remote.call({"type": "embed", "texts": [str(t) for t in texts]})


def _drop_privileges() -> None:
    uid = os.environ.get("ALMA_DESIGN_UID")
    if uid and os.geteuid() == 0:
        os.setgroups([])
        os.setgid(int(uid))
        os.setuid(int(uid))


def main() -> int:
    read_fd, write_fd = (int(x) for x in os.environ["ALMA_WORKER_FDS"].split(","))
    channel = Channel(read_fd, write_fd)
    sys.stdout = sys.stderr
    _drop_privileges()
    init = channel.recv()
    scratch = init["scratch_dir"]
    for name in PRELOAD:
        try:
            __import__(name)
        except ImportError:
            pass
    log = audit.install(scratch, PROJECT_ROOT)
    remote = _Remote(channel)
    toolkit = Toolkit(llm=PipeLLM(remote), embedder=PipeEmbedder(remote), scratch_dir=Path(scratch))
    loop = asyncio.new_event_loop()
    log.armed = True
    try:
        cls = load_design_source(init["source"], init["name"])
        design = cls(toolkit)
    except Exception as exc:  # reported to the harness, which records it against the design
        channel.send({"type": "result", "ok": False, "error": _format(exc), "events": log.drain()})
        return 1
    channel.send({"type": "result", "ok": True, "value": None, "events": log.drain()})
    while True:
        message = channel.recv()
        op = message.get("op")
        if op == "exit":
            return 0
        try:
            if op == "retrieve":
                value = loop.run_until_complete(design.retrieve(Task.from_dict(message["task"])))
                if not isinstance(value, dict):
                    raise TypeError(f"retrieve must return a dict, got {type(value).__name__}")
            elif op == "update":
                value = loop.run_until_complete(design.update(Episode.from_dict(message["episode"])))
                value = None
            else:
                raise ValueError(f"unknown op {op!r}")
            channel.send({"type": "result", "ok": True, "value": value, "events": log.drain()})
        except Exception as exc:
            channel.send({"type": "result", "ok": False, "error": _format(exc), "events": log.drain()})


def _format(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)[-6:])[-4000:]


if __name__ == "__main__":
    sys.exit(main())
