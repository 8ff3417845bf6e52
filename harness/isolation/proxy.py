"""Harness-side handles of a memory design: :class:`IsolatedDesign` (a worker process) and
:class:`InProcessDesign` (same process; for development and tests of the protocol only).

Both expose ``start()``, async ``retrieve(task) -> dict``, async ``update(episode)``, ``close()`` and
``events`` (runtime audit events). A failed or timed-out call raises :class:`DesignCallError` with the
traceback; the isolated worker is then killed and restarted from its scratch directory on the next call.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from harness.design import Toolkit
from harness.isolation.channel import Channel, ChannelClosed, ChannelTimeout
from harness.isolation.gateway import ModelGateway
from harness.loader import load_design_source
from harness.types import Episode, Task

DEFAULT_DESIGN_UID = 65534
STDERR_LIMIT = 64 * 1024


class DesignCallError(Exception):
    """retrieve/update (or the design's construction) raised, timed out or crashed its process."""


class IsolatedDesign:
    def __init__(self, source: str, name: str, scratch_dir: Path, models, *, timeout_s: float = 120.0,
                 events: list[dict] | None = None):
        self.source, self.name, self.scratch_dir = source, name, Path(scratch_dir)
        self.gateway = ModelGateway(models)
        self.timeout_s = timeout_s
        self.events = events if events is not None else []
        self.proc: subprocess.Popen | None = None
        self.channel: Channel | None = None
        self._lock = threading.Lock()  # one call at a time on the channel
        self.stderr_path = self.scratch_dir.parent / f"{self.scratch_dir.name}.stderr.log"

    def _spawn(self) -> None:
        self.scratch_dir.mkdir(parents=True, exist_ok=True)
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        env = {k: v for k, v in os.environ.items() if not _secret(k)}
        env["ALMA_WORKER_FDS"] = f"{to_child_r},{from_child_w}"
        env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH", "")])
        if os.geteuid() == 0 and _others_can_reach(sys.base_prefix):
            uid = int(os.environ.get("ALMA_DESIGN_UID", DEFAULT_DESIGN_UID))
            env["ALMA_DESIGN_UID"] = str(uid)
            for root, dirs, files in os.walk(self.scratch_dir):
                for p in [root, *(os.path.join(root, n) for n in dirs + files)]:
                    os.chown(p, uid, uid)
        stderr = open(self.stderr_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "harness.isolation.worker"], stdin=subprocess.DEVNULL, stdout=stderr,
            stderr=stderr, env=env, pass_fds=(to_child_r, from_child_w), cwd=str(self.scratch_dir),
            start_new_session=True,
        )
        stderr.close()
        os.close(to_child_r)
        os.close(from_child_w)
        self.channel = Channel(from_child_r, to_child_w)
        self._request({"op": "init", "source": self.source, "name": self.name,
                       "scratch_dir": str(self.scratch_dir)})

    def start(self) -> None:
        if self.proc is None:
            self._spawn()

    def _request(self, message: dict[str, Any]) -> Any:
        assert self.channel is not None
        deadline = time.monotonic() + self.timeout_s
        try:
            self.channel.send(message)
            while True:
                reply = self.channel.recv(deadline)
                if reply.get("type") in ("llm", "embed"):
                    self._serve_model(reply)
                    continue
                self.events.extend(reply.get("events", []))
                if reply.get("ok"):
                    return reply.get("value")
                raise DesignCallError(str(reply.get("error", "unknown error")))
        except ChannelTimeout:
            self._kill()
            raise DesignCallError(f"{message.get('op')} timed out after {self.timeout_s:.0f} s") from None
        except (ChannelClosed, BrokenPipeError, ValueError) as exc:
            code = self._kill()
            raise DesignCallError(f"the design process died during {message.get('op')} "
                                  f"(exit {code}): {self._stderr_tail()} {exc}") from None

    def _serve_model(self, message: dict[str, Any]) -> None:
        assert self.channel is not None
        try:
            value = self.gateway.handle(message)
            self.channel.send({"type": "model_result", "ok": True, "value": value})
        except Exception as exc:  # the design sees a RuntimeError with this text
            self.channel.send({"type": "model_result", "ok": False, "error": f"{type(exc).__name__}: {exc}"})

    def _stderr_tail(self) -> str:
        try:
            return self.stderr_path.read_bytes()[-1500:].decode("utf-8", "replace")
        except OSError:
            return ""

    async def retrieve(self, task: Task) -> dict:
        return await asyncio.to_thread(self._call, {"op": "retrieve", "task": task.to_dict()})

    async def update(self, episode: Episode) -> None:
        await asyncio.to_thread(self._call, {"op": "update", "episode": episode.to_dict()})

    def _call(self, message: dict[str, Any]) -> Any:
        with self._lock:
            if self.proc is None:
                self._spawn()
            return self._request(message)

    def _kill(self) -> int | None:
        proc, self.proc = self.proc, None
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if proc is None:
            return None
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return proc.wait()

    def close(self) -> None:
        if self.proc is not None and self.channel is not None:
            try:
                self.channel.send({"op": "exit"})
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self._kill()


class InProcessDesign:
    """Runs the design in the harness's own process: no isolation. Development and protocol tests only."""

    def __init__(self, source: str, name: str, scratch_dir: Path, models, *, timeout_s: float = 120.0,
                 events: list[dict] | None = None):
        self.source, self.name, self.scratch_dir = source, name, Path(scratch_dir)
        self.models = models
        self.timeout_s = timeout_s
        self.events = events if events is not None else []
        self.design = None

    def start(self) -> None:
        if self.design is None:
            self.scratch_dir.mkdir(parents=True, exist_ok=True)
            try:
                cls = load_design_source(self.source, self.name)
                self.design = cls(Toolkit(llm=self.models.llm, embedder=self.models.embedder,
                                          scratch_dir=self.scratch_dir))
            except Exception as exc:
                raise DesignCallError("".join(traceback.format_exception(exc)[-6:])) from exc

    async def _guard(self, coro_fn, *args) -> Any:
        self.start()
        try:
            return await asyncio.wait_for(coro_fn(*args), self.timeout_s)
        except TimeoutError:
            raise DesignCallError(f"timed out after {self.timeout_s:.0f} s") from None
        except Exception as exc:
            raise DesignCallError("".join(traceback.format_exception(exc)[-6:])) from exc

    async def retrieve(self, task: Task) -> dict:
        value = await self._guard(lambda t: self.design.retrieve(t), task)
        if not isinstance(value, dict):
            raise DesignCallError(f"retrieve must return a dict, got {type(value).__name__}")
        return value

    async def update(self, episode: Episode) -> None:
        await self._guard(lambda e: self.design.update(e), episode)

    def close(self) -> None:
        self.design = None


def _others_can_reach(path: str) -> bool:
    """Whether another uid can traverse every directory up to ``path`` (else dropping privileges would leave
    the worker unable to import the standard library, e.g. an interpreter under a private /root)."""
    current = Path(path).resolve()
    for directory in [current, *current.parents]:
        try:
            if not directory.stat().st_mode & 0o001:
                return False
        except OSError:
            return False
    return True


def _secret(name: str) -> bool:
    upper = name.upper()
    return any(s in upper for s in ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL"))
