"""How a sandboxed job ended: the :class:`Outcome` classes, the limit hits a backend observed, and the rules
that turn them into one outcome.

Backend rules (:func:`classify`), first match wins (the host stops a job at the first refused fork or OOM
kill, so those end it at once):

1. the sandbox could not be started or watched (daemon gone, image missing, bwrap setup failed) -> ``infra_error``
2. the command exited 0 and no kill was needed -> ``ok`` (limit hits it survived stay in the events)
3. the OOM killer fired in the job's cgroup -> ``oom``
4. the pids limit refused a fork/clone -> ``pids_exhausted``
5. the output limit (files under ``/out``, or one file over RLIMIT_FSIZE) -> ``output_exceeded``
6. the wall clock (or RLIMIT_CPU) ran out and the job was killed -> ``timeout``
7. anything else (non-zero exit, killed by a signal) -> ``crashed``

The job layer (:mod:`sandbox.job`) refines ``ok`` and ``crashed`` with what the harness reports: its exit
code 3 (the design does not load) -> ``design_error``; exit 5 (a design call past its deadline) -> ``timeout``; exit 2 or 4 (bad job, model or benchmark failure) ->
``infra_error``; exit 0 without a valid result document -> ``crashed``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    OK = "ok"
    DESIGN_ERROR = "design_error"
    TIMEOUT = "timeout"
    OOM = "oom"
    PIDS_EXHAUSTED = "pids_exhausted"
    OUTPUT_EXCEEDED = "output_exceeded"
    CRASHED = "crashed"
    INFRA_ERROR = "infra_error"

    @property
    def scored(self) -> bool:
        """Whether this outcome counts against the design (infrastructure failures never do)."""
        return self is not Outcome.INFRA_ERROR


@dataclass
class LimitHits:
    """Limits the job ran into, as observed from outside the sandbox."""

    oom: bool = False
    pids: bool = False
    timeout: bool = False
    cpu_time: bool = False
    output: bool = False
    scratch_full: bool = False

    def names(self) -> list[str]:
        return [k for k, v in asdict(self).items() if v]


@dataclass
class SandboxOutcome:
    """What a backend returns for one :class:`sandbox.limits.JobRun`."""

    job_id: str
    backend: str
    outcome: Outcome
    exit_code: int | None = None
    wall_s: float = 0.0
    hits: LimitHits = field(default_factory=LimitHits)
    stdout: str = ""
    stderr: str = ""
    output_truncated: bool = False
    memory_peak_mb: float | None = None
    cpu_s: float | None = None  # user + system CPU seconds of the job's processes, where the backend can tell
    detail: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["outcome"] = self.outcome.value
        return data


def classify(exit_code: int | None, hits: LimitHits, infra: str | None = None) -> Outcome:
    """The backend-level outcome (rules 1-7 in the module docstring)."""
    if infra:
        return Outcome.INFRA_ERROR
    if exit_code == 0 and not (hits.timeout or hits.output):
        return Outcome.OK
    if hits.oom:
        return Outcome.OOM
    if hits.pids:
        return Outcome.PIDS_EXHAUSTED
    if hits.output:
        return Outcome.OUTPUT_EXCEEDED
    if hits.timeout or hits.cpu_time:
        return Outcome.TIMEOUT
    return Outcome.CRASHED


def limit_events(hits: LimitHits, detail: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """One ``{"kind": "limit", "event": NAME, "detail": ...}`` record per limit hit."""
    detail = detail or {}
    return [{"kind": "limit", "event": name, "detail": detail.get(name, "")} for name in hits.names()]


#: stderr fragments that betray a limit when the cgroup cannot be read (e.g. a remote Docker daemon).
_FORK_REFUSED = ("BlockingIOError: [Errno 11]", "fork: retry", "Resource temporarily unavailable",
                 "can't start new thread")
_NO_SPACE = ("[Errno 28]", "No space left on device")
_TOO_LARGE = ("[Errno 27]", "File too large")  # RLIMIT_FSIZE; Python ignores SIGXFSZ and sees EFBIG


def hits_from_stderr(stderr: str, hits: LimitHits, *, pids_known: bool) -> None:
    """Fill in what stderr shows: a full scratch disk and a file over RLIMIT_FSIZE always; a refused fork only
    when the pids cgroup could not be read."""
    if any(s in stderr for s in _NO_SPACE):
        hits.scratch_full = True
    if any(s in stderr for s in _TOO_LARGE):
        hits.output = True
    if not pids_known and any(s in stderr for s in _FORK_REFUSED):
        hits.pids = True


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x00, 0x09), *range(0x0b, 0x20), 0x7f]}
_CONTROL.update({c: f"\\u{c:04x}" for c in range(0x80, 0xa0)})


def printable(text: str) -> str:
    """``text`` with terminal control characters (escape sequences, carriage returns, C1 codes) written as
    visible escapes, so job output shown to an operator cannot clear a screen or fake a line."""
    return text.translate(_CONTROL)


class OutputTail:
    """Keeps the first and last bytes of a stream, counting (and dropping) what lies between.

    ``limit`` bytes are kept at most: a quarter from the head, the rest from the tail (errors come last).
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.head_limit = limit // 4
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            keep = self.limit - self.head_limit
            if len(self.tail) > keep:
                del self.tail[: len(self.tail) - keep]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.head) + len(self.tail)

    def text(self) -> str:
        if not self.truncated:
            return (bytes(self.head) + bytes(self.tail)).decode("utf-8", "replace")
        dropped = self.total - len(self.head) - len(self.tail)
        return (bytes(self.head).decode("utf-8", "replace") + f"\n[... {dropped} bytes dropped ...]\n"
                + bytes(self.tail).decode("utf-8", "replace"))
