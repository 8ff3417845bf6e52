"""The design worker: loads one memory design and serves retrieve/update calls from the harness.

Started by :class:`harness.isolation.proxy.IsolatedDesign` (under the design's own uid, through
``setpriv``, where the harness can give it one); not meant to be run by hand. The file descriptors of its
channel come in ``ALMA_WORKER_FDS`` ("read,write"). stdout is redirected to stderr so a design's prints cannot
corrupt the channel. Messages from the harness (each with a ``nonce`` that the reply repeats): ``{"op": "init",
"source", "name", "scratch_dir", "seed_from"}``, ``{"op": "retrieve", "task"}``, ``{"op": "update", "episode"}``,
``{"op": "exit"}``. Replies: ``{"type": "result", "nonce", "ok", "value"|"error", "stage", "events"}``; while a call
runs, the worker may send ``{"type": "llm", ...}`` or ``{"type": "embed", "texts"}`` and waits for
``{"type": "model_result", "ok", "value"|"error"}``. Before the design is loaded, every ``sys.path`` entry this
uid could write is removed, and after every call a canary checks that the audit hook still runs (a design that
switched it off is reported as ``tamper``), as does a fingerprint of the interpreter's shared objects (builtins,
``json``, ``os``, ``sys``'s import machinery, the harness's modules and classes: see
:mod:`harness.isolation.fingerprint`). Both only warn: the process boundary is the protection.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import threading
import traceback
from pathlib import Path

from harness.design import Toolkit
from harness.isolation import audit
from harness.isolation.channel import Channel
from harness.isolation.fingerprint import Fingerprint
from harness.isolation.messages import MAX_EVENTS_PER_REPLY as MAX_EVENTS
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


def _safe_sys_path() -> None:
    """Drop sys.path entries this process can write (a design could plant modules there)."""
    sys.path[:] = [p for p in sys.path if p and os.path.isabs(p) and not _writable(p)]


def _writable(path: str) -> bool:
    """Whether this uid can write ``path``, or create it (when it does not exist yet)."""
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent
    return os.access(path, os.W_OK)


def _prepare_scratch(scratch: str, seed_from: str | None) -> None:
    if seed_from and os.path.isdir(seed_from) and not os.path.exists(scratch):
        shutil.copytree(seed_from, scratch, symlinks=True)
    os.makedirs(scratch, mode=0o700, exist_ok=True)


class _Canary:
    """Raises a private audit event after every call; the hook must have seen it (else it was disarmed)."""

    def __init__(self, log: audit.AuditLog):
        self.log, self._audit = log, sys.audit

    def alive(self) -> bool:
        nonce = os.urandom(8).hex()
        try:
            self._audit(audit.CANARY_EVENT, nonce)
        except Exception:  # noqa: BLE001 - a design that broke sys.audit broke the canary
            return False
        return self.log.canary == nonce and self.log.armed


def main() -> int:
    read_fd, write_fd = (int(x) for x in os.environ["ALMA_WORKER_FDS"].split(","))
    channel = Channel(read_fd, write_fd)
    sys.stdout = sys.stderr
    if os.environ.get("ALMA_WORKER_OWN_UID") == "1":  # under the harness's uid there is nothing to protect
        _safe_sys_path()
    init = channel.recv()
    scratch = init["scratch_dir"]
    _prepare_scratch(scratch, init.get("seed_from"))
    for name in PRELOAD:
        try:
            __import__(name)
        except ImportError:
            pass
    log = audit.install(scratch, PROJECT_ROOT)
    canary = _Canary(log)
    remote = _Remote(channel)
    toolkit = Toolkit(llm=PipeLLM(remote), embedder=PipeEmbedder(remote), scratch_dir=Path(scratch))
    loop = asyncio.new_event_loop()
    shared = Fingerprint()
    log.armed = True

    def reply(nonce: str, **fields) -> None:
        events = []  # the worker's own findings first: the reply carries at most MAX_EVENTS
        if not canary.alive():
            log.armed = True
            events.append(_tamper("audit_hook", "the audit hook stopped seeing events during this call"))
        rebound = shared.changes()
        if rebound:
            events.append(_tamper("interpreter", "the design rebound shared objects: " + ", ".join(rebound)))
        events += log.drain()
        channel.send({"type": "result", "nonce": nonce, **fields, "events": events[:MAX_EVENTS]})

    try:
        cls = load_design_source(init["source"], init["name"])
        design = cls(toolkit)
    except Exception as exc:  # reported to the harness, which records it against the design
        reply(init.get("nonce", ""), ok=False, error=_format(exc), stage="load")
        return 1
    reply(init.get("nonce", ""), ok=True, value=None)
    while True:
        message = channel.recv()
        op = message.get("op")
        nonce = message.get("nonce", "")
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
            reply(nonce, ok=True, value=value)
        except Exception as exc:
            reply(nonce, ok=False, error=_format(exc), stage=op)


def _tamper(event: str, detail: str) -> dict:
    return {"kind": "tamper", "event": event, "detail": detail[:300], "refused": True}


def _format(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)[-6:])[-4000:]


if __name__ == "__main__":
    sys.exit(main())
