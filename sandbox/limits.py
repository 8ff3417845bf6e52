"""What a backend is asked to run (:class:`JobRun`) and the resource limits it runs under (:class:`Limits`).

A :class:`JobRun` is generic: any command, any read-only or writable bind mounts. The job layer
(:mod:`sandbox.job`) builds one for ``python -m harness.run``; the hostile tests build one for a Python snippet.
Paths in ``command`` and ``env`` are paths *inside* the sandbox (mount targets such as ``/job`` or ``/out``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

#: Environment every sandboxed command starts from (the host's environment never enters).
BASE_ENV = {
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "PYTHONUNBUFFERED": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}

#: Where the scratch tmpfs is mounted inside the sandbox.
SCRATCH = "/tmp"


class Limits(BaseModel):
    """Resource limits of one job. Every backend enforces the same set (the ``none`` backend only the clock)."""

    model_config = ConfigDict(extra="forbid")

    memory_mb: int = Field(2048, ge=32, description="RAM cap, scratch tmpfs included; no swap on top")
    pids: int = Field(256, ge=8, description="processes + threads alive at once")
    cpus: float = Field(1.0, gt=0, le=64, description="CPU quota in cores")
    wall_s: float = Field(1800.0, gt=0, description="wall-clock limit; the job is killed when it is reached")
    scratch_mb: int = Field(256, ge=1, description="size of the private /tmp tmpfs")
    output_mb: int = Field(64, ge=1, description="cap on the files written to /out (and on any one file)")
    log_kb: int = Field(256, ge=4, description="stdout/stderr kept per stream (head + tail; the rest dropped)")
    nofile: int = Field(1024, ge=64, description="open file descriptors per process")


@dataclass(frozen=True)
class Mount:
    """A bind mount: host ``source`` appears at ``target`` inside the sandbox."""

    source: Path
    target: str
    read_only: bool = True

    def __post_init__(self) -> None:
        if not self.target.startswith("/") or ".." in self.target.split("/"):
            raise ValueError(f"mount target must be an absolute path without '..': {self.target!r}")


_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass
class JobRun:
    """One command to run in isolation.

    Attributes:
        job_id: short name (letters, digits, ``_.-``); used in container and cgroup names.
        command: argv inside the sandbox; ``python`` resolves to the sandbox's interpreter (image venv for
            Docker, the host venv for bubblewrap).
        mounts: bind mounts; targets must not be ``/tmp`` (the scratch tmpfs).
        env: extra environment on top of :data:`BASE_ENV` (nothing else from the host enters).
        limits: resource limits.
        out_dir: host directory mounted writable at ``/out`` whose size is watched against ``limits.output_mb``
            (it must be one of ``mounts``, or None).
    """

    job_id: str
    command: list[str]
    mounts: list[Mount] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    out_dir: Path | None = None

    def __post_init__(self) -> None:
        if not _JOB_ID.match(self.job_id):
            raise ValueError(f"job_id must be 1-64 characters of letters, digits and _.- : {self.job_id!r}")
        if not self.command:
            raise ValueError("command must not be empty")
        targets = [m.target.rstrip("/") for m in self.mounts]
        if SCRATCH in targets or len(set(targets)) != len(targets):
            raise ValueError(f"mount targets must be distinct and not {SCRATCH}: {targets}")

    def environment(self) -> dict[str, str]:
        return {**BASE_ENV, **self.env}
