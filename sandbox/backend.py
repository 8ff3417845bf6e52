"""The :class:`SandboxBackend` contract, backend selection, and the unisolated ``none`` backend.

A backend runs one :class:`sandbox.limits.JobRun` and reports how it ended::

    backend = select_backend("auto")            # docker when a daemon answers, else bubblewrap
    outcome = backend.run(JobRun("j1", ["python", "-c", "print(1)"]))
    outcome.outcome, outcome.exit_code, outcome.stdout, outcome.hits
    backend.close()

``run`` never raises for anything the job does; a sandbox that cannot be started gives ``infra_error``.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Protocol

from sandbox.errors import SandboxUnavailable
from sandbox.limits import SCRATCH, JobRun
from sandbox.outcome import LimitHits, OutputTail, SandboxOutcome, classify, hits_from_stderr, limit_events
from sandbox.watch import drain

log = logging.getLogger(__name__)

BACKENDS = ("auto", "docker", "bubblewrap", "none")


class SandboxBackend(Protocol):
    """Runs jobs in isolation. ``uid``: the host uid the job runs as (it must be able to write ``/out``).
    ``isolated``: False only for the development backend, whose jobs see host paths."""

    name: str
    isolated: bool
    uid: int

    def run(self, job: JobRun) -> SandboxOutcome: ...

    def close(self) -> None: ...


def docker_available(timeout: float = 3.0) -> bool:
    """True when a Docker daemon answers a ping."""
    try:
        import docker

        client = docker.from_env(timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - any failure means "no usable daemon"
        return False


def select_backend(name: str = "auto", *, image: str | None = None) -> SandboxBackend:
    """The backend called ``name``; ``auto`` is Docker when a daemon answers, else bubblewrap.

    ``image``: the evaluation image tag for Docker (default: the current content-hashed tag).
    Raises SandboxUnavailable when the requested backend cannot run here.
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if name == "auto":
        name = "docker" if docker_available() else "bubblewrap"
        log.info("sandbox backend: %s", name)
    if name == "docker":
        from sandbox.docker_backend import DockerBackend

        if image is None:
            from sandbox.image import current_tag

            image = current_tag()
        return DockerBackend(image)
    if name == "bubblewrap":
        from sandbox.bwrap_backend import BubblewrapBackend

        return BubblewrapBackend()
    return NoneBackend()


NONE_WARNING = ("sandbox backend 'none': the job runs UNISOLATED on the host, with the host's files, network "
                "and uid, limited only by the wall clock. Use it for development only, never for LLM-written "
                "designs you have not read.")


class NoneBackend:
    """Development only: a plain subprocess with a clean environment and a wall-clock limit; mount targets in
    the command and environment are rewritten to their host sources. Warns loudly when created."""

    name = "none"
    isolated = False

    def __init__(self) -> None:
        self.uid = os.getuid()
        warnings.warn(NONE_WARNING, RuntimeWarning, stacklevel=2)
        print(f"WARNING: {NONE_WARNING}", file=sys.stderr)

    def close(self) -> None:
        pass

    @staticmethod
    def _host(value: str, job: JobRun, scratch: str) -> str:
        for m in sorted(job.mounts, key=lambda m: -len(m.target)):
            if value == m.target or value.startswith(m.target + "/"):
                return str(m.source) + value[len(m.target):]
        if value == SCRATCH or value.startswith(SCRATCH + "/"):
            return scratch + value[len(SCRATCH):]
        return value

    def run(self, job: JobRun) -> SandboxOutcome:
        started = time.monotonic()
        hits, detail = LimitHits(), {}
        out, err = OutputTail(job.limits.log_kb * 1024), OutputTail(job.limits.log_kb * 1024)
        with tempfile.TemporaryDirectory(prefix=f"alma-none-{job.job_id}-") as scratch:
            env = {k: self._host(v, job, scratch) for k, v in job.environment().items()}
            env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"])
            argv = [self._host(a, job, scratch) for a in job.command]
            if argv[0] == "python":
                argv[0] = sys.executable
            try:
                proc = subprocess.Popen(argv, cwd=scratch, env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
            except OSError as exc:
                return SandboxOutcome(job.job_id, self.name, classify(None, hits, "spawn"), detail=str(exc))
            readers = [drain(proc.stdout, out), drain(proc.stderr, err)]
            try:
                exit_code = proc.wait(timeout=job.limits.wall_s)
            except subprocess.TimeoutExpired:
                hits.timeout = True
                detail["timeout"] = f"killed after {job.limits.wall_s:g} s wall clock"
                os.killpg(proc.pid, signal.SIGKILL)
                exit_code = proc.wait()
            for t in readers:
                t.join(timeout=5.0)
        stderr = err.text()
        hits_from_stderr(stderr, hits, pids_known=False)
        return SandboxOutcome(job.job_id, self.name, classify(exit_code, hits), exit_code=exit_code,
                              wall_s=time.monotonic() - started, hits=hits, stdout=out.text(), stderr=stderr,
                              output_truncated=out.truncated or err.truncated, detail="; ".join(detail.values()),
                              events=limit_events(hits, detail))


__all__ = ["BACKENDS", "NoneBackend", "SandboxBackend", "SandboxUnavailable", "docker_available",
           "select_backend"]
