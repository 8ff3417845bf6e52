"""Harness-side handles of a memory design: :class:`IsolatedDesign` (a worker process) and
:class:`InProcessDesign` (same process; for development and tests of the protocol only).

Both expose ``start()``, async ``retrieve(task) -> dict``, async ``update(episode)``, ``close()`` and
``events`` (runtime audit events). A failed call raises :class:`DesignCallError` with the traceback; the
isolated worker is then killed and restarted from its scratch directory on the next call. A call that runs
past its deadline (time spent serving the design's model calls does not count) raises
:class:`DesignTimeout`; a design whose module or constructor fails raises :class:`DesignLoadFailed`.

The isolated worker runs under its own uid where the harness can give it one (see
:mod:`harness.isolation.procs`): it then creates and seeds its own scratch directory, and after every call
every other process of that uid is reported (``process`` event) and killed, as is every process of it when
the worker is closed.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from harness.design import Toolkit
from harness.isolation import messages, procs
from harness.isolation.channel import Channel, ChannelClosed, ChannelGarbled, ChannelTimeout
from harness.isolation.gateway import ModelGateway
from harness.isolation.output import OutputSink
from harness.loader import load_design_source
from harness.types import Episode, Task

STDERR_LIMIT = 64 * 1024
#: CPU seconds the design's process may use between two calls (when none of its code should run) before it is
#: reported as working in the background
BACKGROUND_CPU_S = 0.5
#: how long an idle worker with a running thread is watched (half a core over this window counts as working)
IDLE_SAMPLE_S = 0.1
#: thread-pool sizes of the math libraries a design may import, pinned to one in the worker
WORKER_SINGLE_THREAD = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: free bytes under which the scratch file system counts as filled
SCRATCH_FULL_BYTES = 1024 * 1024
#: the worker's interpreter flags: no unsafe path (cwd, script dir) on sys.path, no user site-packages
WORKER_ARGV = ["-P", "-s", "-m", "harness.isolation.worker"]


class DesignCallError(Exception):
    """retrieve/update (or the design's construction) raised, timed out or crashed its process."""


class DesignLoadFailed(DesignCallError):
    """The design's module or constructor raised (or broke the contract) in the worker."""


class DesignTimeout(DesignCallError):
    """A design call ran past its deadline; the worker and every process of its uid were killed."""


class IsolatedDesign:
    def __init__(self, source: str, name: str, scratch_dir: Path, models, *, timeout_s: float = 120.0,
                 events: list[dict] | None = None, seed_from: Path | None = None, log_path: Path | None = None):
        self.source, self.name, self.scratch_dir = source, name, Path(scratch_dir)
        self.seed_from = Path(seed_from) if seed_from else None
        self.gateway = ModelGateway(models)
        self.timeout_s = timeout_s
        self.events = events if events is not None else []
        self.proc: subprocess.Popen | None = None
        self.channel: Channel | None = None
        self.uid = procs.design_uid()
        self._lock = threading.Lock()  # one call at a time on the channel
        self._seeded = False
        #: the worker's stdout and stderr; keep it where the design's uid cannot write (it is opened by the
        #: harness, without following links)
        self.stderr_path = Path(log_path or self.scratch_dir.parent / f"{self.scratch_dir.name}.stderr.log")
        self.output = OutputSink(self.stderr_path)
        self._idle_cpu: float | None = None  # the worker's CPU seconds when its last call returned

    def _event(self, kind: str, event: str, detail: str, refused: bool = True) -> None:
        self.events.append({"kind": kind, "event": event, "detail": detail[:300], "refused": refused})

    def _prepare_scratch(self) -> dict[str, Any]:
        """What the worker must do with its scratch directory before it loads the design."""
        seed = str(self.seed_from) if self.seed_from and not self._seeded else None
        self._seeded = True
        if self.uid is None or os.geteuid() != 0:
            # same uid, or a scorer without CAP_CHOWN: the worker creates (and seeds) its own directory
            self.scratch_dir.parent.mkdir(parents=True, exist_ok=True)
            return {"scratch_dir": str(self.scratch_dir), "seed_from": seed}
        if seed and not self.scratch_dir.exists():
            shutil.copytree(seed, self.scratch_dir, symlinks=True)
        self.scratch_dir.mkdir(parents=True, exist_ok=True)
        for root, dirs, files in os.walk(self.scratch_dir):
            for p in [root, *(os.path.join(root, n) for n in dirs + files)]:
                os.lchown(p, self.uid, self.uid)
        return {"scratch_dir": str(self.scratch_dir), "seed_from": None}

    def _spawn(self) -> None:
        scratch = self._prepare_scratch()
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        env = {k: v for k, v in os.environ.items() if not _secret(k) and k != "ALMA_DESIGN_UID"}
        env["ALMA_WORKER_FDS"] = f"{to_child_r},{from_child_w}"
        env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
        # one math thread: numpy's pre-import would otherwise start OpenBLAS/OpenMP helper threads, which spin for
        # a while after they start or finish work and so read as a design working between calls (background_cpu)
        env.update({name: "1" for name in WORKER_SINGLE_THREAD})
        if self.uid is not None:
            env["ALMA_WORKER_OWN_UID"] = "1"
        fd = self.output.attach()
        try:
            self.proc = subprocess.Popen(
                procs.worker_command(self.uid, [sys.executable, *WORKER_ARGV]), stdin=subprocess.DEVNULL,
                stdout=fd, stderr=fd, env=env, pass_fds=(to_child_r, from_child_w), cwd="/",
                start_new_session=True,
            )
        finally:
            os.close(fd)
            os.close(to_child_r)
            os.close(from_child_w)
        self.channel = Channel(from_child_r, to_child_w)
        self._idle_cpu = None
        self._request({"op": "init", "source": self.source, "name": self.name, **scratch})

    def start(self) -> None:
        if self.proc is None:
            self._spawn()

    def _request(self, message: dict[str, Any]) -> Any:
        if self.channel is None:  # its processes were killed after the last request (e.g. it kept forking)
            raise DesignCallError(f"the design's process was stopped before {message.get('op')}: it left "
                                  "processes behind that could not be stopped otherwise")
        nonce = secrets.token_hex(8)
        deadline = time.monotonic() + self.timeout_s
        self._check_idle()
        try:
            if self.channel.pending():
                dropped = self.channel.discard()
                self._event("tamper", "channel", f"{dropped} unsolicited bytes from the worker between calls")
            self.channel.send({**message, "nonce": nonce})
            while True:
                raw = self.channel.recv(deadline)
                what, body = messages.parse(self.channel.last_bytes, raw, nonce)
                if what == "model":
                    served = time.monotonic()
                    self._serve_model(body)
                    deadline += time.monotonic() - served  # the design's deadline excludes model time
                    continue
                self.events.extend(body["events"])
                if body["ok"]:
                    return self._value(message["op"], body.get("value"))
                error = body["error"]
                if body.get("stage") == "load":
                    self._kill()
                    raise DesignLoadFailed(error)
                raise DesignCallError(error)
        except ChannelTimeout:
            self._kill()
            raise DesignTimeout(f"{message.get('op')} ran past its {self.timeout_s:g} s deadline; the design's "
                                "processes were killed") from None
        except (messages.ProtocolViolation, ChannelGarbled) as exc:
            self._event("tamper", "channel", str(exc))
            self._kill()
            raise DesignCallError(f"the design broke the worker protocol during {message.get('op')}: {exc}") from None
        except (ChannelClosed, BrokenPipeError, ValueError) as exc:
            code = self._kill()
            self.output.settle()
            self._event("worker", "died", f"the design's process ended during {message.get('op')} "
                        f"without answering (exit {code})", refused=False)
            raise DesignCallError(f"the design process died during {message.get('op')} "
                                  f"(exit {code}): {self._stderr_tail()} {exc}") from None
        finally:
            self._reap_strays()
            self._after_call()

    def _worker_cpu(self) -> float | None:
        return procs.cpu_seconds(self.proc.pid) if self.proc is not None and self.proc.poll() is None else None

    def _check_idle(self) -> None:
        """Report a worker that works while no call is in flight (a thread left running after a call): it
        burnt CPU since its last call returned, or a thread of it is running now and keeps running."""
        now = self._worker_cpu()
        if now is None or self._idle_cpu is None:
            self._idle_cpu = None
            return
        used = now - self._idle_cpu
        if used <= BACKGROUND_CPU_S and self.proc is not None and procs.running_threads(self.proc.pid):
            time.sleep(IDLE_SAMPLE_S)  # only when a thread runs: confirm it is not a reply being finished
            later = self._worker_cpu()
            spinning = later is not None and later - now >= IDLE_SAMPLE_S / 2  # half a core or more
        else:
            spinning = False
        if used > BACKGROUND_CPU_S or spinning:
            self._event("limit", "background_cpu", "the design's process kept working between calls (a thread "
                        f"left running after a call returned: {used:.1f} CPU s)", refused=False)
        self._idle_cpu = None

    def _after_call(self) -> None:
        self._idle_cpu = self._worker_cpu()
        self.events.extend(self.output.events())
        try:
            st = os.statvfs(self.scratch_dir)
        except OSError:
            return
        if st.f_bavail * st.f_frsize < SCRATCH_FULL_BYTES:
            self._event("limit", "scratch_full", f"the design's scratch file system is full "
                        f"({st.f_bavail * st.f_frsize} bytes left)", refused=False)

    def _value(self, op: str, value: Any) -> Any:
        if op != "retrieve":
            return None
        if not isinstance(value, dict):
            raise DesignCallError(f"retrieve must return a dict, got {type(value).__name__}")
        if messages.encoded_size(value) > messages.MAX_VALUE_BYTES:
            raise DesignCallError(f"retrieve returned more than {messages.MAX_VALUE_BYTES} bytes of JSON")
        return value

    def _reap_strays(self) -> None:
        """Report and kill every process of the design's uid other than the worker itself."""
        if self.uid is None:
            return
        keep = {self.proc.pid} if self.proc is not None and self.proc.poll() is None else set()
        strays = procs.processes_of(self.uid, exclude=keep)
        if not strays:
            return
        self._event("process", "stray_process", f"{len(strays)} process(es) outlived the design's call: "
                    + "; ".join(procs.describe(p) for p in strays[:3]))
        procs.kill_all(self.uid, rounds=50, exclude=keep)
        if procs.processes_of(self.uid, exclude=keep):
            self._kill()

    def _serve_model(self, request: dict[str, Any]) -> None:
        assert self.channel is not None
        try:
            value = self.gateway.handle(request)
            self.channel.send({"type": "model_result", "ok": True, "value": value})
        except Exception as exc:  # the design sees a RuntimeError with this text
            self.channel.send({"type": "model_result", "ok": False, "error": f"{type(exc).__name__}: {exc}"})

    def _stderr_tail(self) -> str:
        try:
            with open(os.open(self.stderr_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK), "rb") as fh:
                fh.seek(max(0, os.fstat(fh.fileno()).st_size - 1500))
                return fh.read(1500).decode("utf-8", "replace")
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
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.uid is not None:
            procs.kill_all(self.uid)
        return None if proc is None else proc.wait()

    def close(self) -> None:
        if self.proc is not None:
            self._check_idle()
        if self.proc is not None and self.channel is not None:
            try:
                self.channel.send({"op": "exit"})
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.uid is not None:
            keep = {self.proc.pid} if self.proc is not None and self.proc.poll() is None else set()
            strays = procs.processes_of(self.uid, exclude=keep)
            if strays:
                self._event("process", "stray_process", f"{len(strays)} process(es) of the design outlived its "
                            "phase: " + "; ".join(procs.describe(p) for p in strays[:3]))
        self._kill()
        self.output.settle()
        self.events.extend(self.output.events())


class InProcessDesign:
    """Runs the design in the harness's own process: no isolation. Development and protocol tests only."""

    def __init__(self, source: str, name: str, scratch_dir: Path, models, *, timeout_s: float = 120.0,
                 events: list[dict] | None = None, seed_from: Path | None = None):
        self.source, self.name, self.scratch_dir = source, name, Path(scratch_dir)
        self.seed_from = seed_from
        self.models = models
        self.timeout_s = timeout_s
        self.events = events if events is not None else []
        self.design = None

    def start(self) -> None:
        if self.design is None:
            if self.seed_from is not None and Path(self.seed_from).is_dir() and not self.scratch_dir.exists():
                shutil.copytree(self.seed_from, self.scratch_dir, symlinks=True)
            self.scratch_dir.mkdir(parents=True, exist_ok=True)
            try:
                cls = load_design_source(self.source, self.name)
                self.design = cls(Toolkit(llm=self.models.llm, embedder=self.models.embedder,
                                          scratch_dir=self.scratch_dir))
            except Exception as exc:
                raise DesignLoadFailed("".join(traceback.format_exception(exc)[-6:])) from exc

    async def _guard(self, coro_fn, *args) -> Any:
        self.start()
        try:
            return await asyncio.wait_for(coro_fn(*args), self.timeout_s)
        except TimeoutError:
            raise DesignTimeout(f"timed out after {self.timeout_s:.0f} s") from None
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


def _secret(name: str) -> bool:
    upper = name.upper()
    return any(s in upper for s in ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL"))
