"""The job layer: run one harness :class:`~harness.jobspec.JobSpec` in a sandbox and bring back a
:class:`JobReport` whose result the host has validated.

Per attempt: a job directory on the host (``job/job.json``, read-only at ``/job``; ``out/``, writable at
``/out``); the benchmark's game cache, built on the host beforehand and mounted read-only at ``/cache/suite``
behind ``/cache``; a broker session whose socket directory is mounted at ``/broker``. ``/job``, ``/out`` and
``/cache`` belong to the harness's uid inside the sandbox with mode 0700 and the broker socket is 0600, so the
design's worker (another uid) can read, write or connect to none of them: not the job spec, not the result,
not the held-out tasks' walkthroughs, not the broker. The job spec the sandbox sees points its model clients
at the broker socket; no key and no host path enter. Inside, the backend runs
``python -m harness.run /job/job.json --out /out/result.json --events /out/events.jsonl``.

Outcome refinement on top of the backend's (see :mod:`sandbox.outcome`): exit 0 needs a result document
that validates against :class:`~harness.jobspec.EvalResult` for this job and whose episodes add up (the right
tasks, phases and counts; score, stderr and progress recomputed from them), else ``crashed`` with a
``forged_result`` event; exit 3 is ``design_error``; exit 5 (a design call past its deadline) is ``timeout``;
exit 2 or 4 is ``infra_error`` (``design_error`` when the broker refused the job for its budget); a broker that
died is ``infra_error``. ``infra_error`` is retried (``retries`` times) and never scored.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.jobspec import EvalResult, JobSpec
from sandbox.backend import SandboxBackend
from sandbox.broker import Broker, BrokerSession, Budget
from sandbox.limits import JobRun, Limits, Mount
from sandbox.outcome import Outcome, SandboxOutcome, printable
from sandbox.plugins import PluginAccess, plugin_access

log = logging.getLogger(__name__)

HARNESS_EXIT_BAD_JOB, HARNESS_EXIT_DESIGN, HARNESS_EXIT_MODEL, HARNESS_EXIT_TIMEOUT = 2, 3, 4, 5
MAX_RESULT_BYTES = 32 * 2**20
MAX_EVENTS_BYTES = 8 * 2**20
MAX_EVENTS = 2000
SOCKET_INSIDE = "/broker/broker.sock"
CACHE_INSIDE = "/cache/suite"


class JobReport(BaseModel):
    """What ``sandbox.run --out`` writes: how the job ended and, when it ended ``ok``, its validated result."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    job_id: str
    backend: str
    outcome: Outcome
    scored: bool
    attempts: int
    exit_code: int | None = None
    wall_s: float = 0.0
    limits: Limits
    hits: list[str] = Field(default_factory=list)
    memory_peak_mb: float | None = None
    cpu_s: float | None = None
    result: EvalResult | None = None
    events: list[dict[str, Any]] = Field(default_factory=list)
    broker_usage: dict[str, int] = Field(default_factory=dict)
    detail: str = ""
    stderr_tail: str = ""


def _read_regular(path: Path, limit: int) -> bytes | None:
    """The bytes of ``path`` if it is a regular file (symlinks refused) of at most ``limit`` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        return fh.read(limit + 1)[:limit]


def read_events(path: Path) -> list[dict[str, Any]]:
    """The harness's JSON-lines events (capped in bytes and count; malformed lines counted, not kept)."""
    data = _read_regular(path, MAX_EVENTS_BYTES)
    if data is None:
        return []
    events, bad = [], 0
    for line in data.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(event, dict) and len(events) < MAX_EVENTS:
            events.append(event)
    if bad:
        events.append({"kind": "sandbox", "event": "malformed_events", "detail": f"{bad} line(s) skipped"})
    return events


def validate_result(out_dir: Path, spec: JobSpec) -> tuple[EvalResult | None, str]:
    """(result, "") when ``out_dir/result.json`` is a valid result for ``spec``, else (None, why)."""
    data = _read_regular(out_dir / "result.json", MAX_RESULT_BYTES)
    if data is None:
        return None, "no result document (missing, not a regular file, or over 32 MiB)"
    try:
        result = EvalResult.model_validate_json(data)
    except ValidationError as exc:
        where = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors()[:5])
        return None, f"result document does not match the schema ({exc.error_count()} error(s) at {where})"
    if result.job_id not in (None, spec.job_id):
        return None, f"result is for job {result.job_id!r}, not {spec.job_id!r}"
    why = result_inconsistency(result, spec)
    if why:
        return None, f"result does not add up: {why}"
    return result, ""


def result_inconsistency(result: EvalResult, spec: JobSpec) -> str:
    """Why ``result`` cannot be the honest outcome of ``spec`` ("" when it adds up)."""
    from harness.loader import source_hash

    p = spec.protocol
    if result.design_hash != source_hash(spec.design.source):
        return "the design hash is not the job's design"
    if (result.benchmark, result.mode, result.split, result.seed, result.repeats) != (
            spec.benchmark, p.mode, p.split, p.seed, p.repeats):
        return "benchmark, mode, split, seed or repeats differ from the job"
    collect = [e for e in result.episodes if e.phase == "collect"]
    deploy = [e for e in result.episodes if e.phase == "deploy"]
    if len(collect) > p.n_train or result.n_train != len(collect):
        return f"{len(collect)} collection episodes for {p.n_train} train tasks (n_train {result.n_train})"
    tasks = {e.task_id for e in deploy}
    if not deploy or len(tasks) > p.n_test or result.n_test != len(tasks) or len(deploy) != len(tasks) * p.repeats:
        return f"{len(deploy)} deployment episodes over {len(tasks)} tasks for {p.n_test} x {p.repeats}"
    if {(e.task_id, e.repeat) for e in deploy} != {(t, r) for t in tasks for r in range(p.repeats)}:
        return "deployment episodes repeat or miss a (task, repeat)"
    limit = p.step_limit
    if any(e.steps < 0 or (limit is not None and e.steps > limit) or (e.won and e.error) for e in result.episodes):
        return "an episode with an impossible step count, or won despite a design error"
    wins = [1.0 if e.won else 0.0 for e in deploy]
    score = sum(wins) / len(wins)
    stderr = (score * (1 - score) / (len(wins) - 1)) ** 0.5 if len(wins) > 1 else 0.0
    progress = sum(e.progress for e in deploy) / len(deploy)
    if abs(result.score - score) > 1e-9 or abs(result.stderr - stderr) > 1e-9 or abs(result.progress - progress) > 1e-6:
        return f"score {result.score} / stderr / progress are not those of its episodes (score {score})"
    if any(e.won and e.progress < 1.0 for e in deploy):
        return "a won episode with progress below 1"
    return ""


def inside_models(spec: JobSpec, broker: Broker, socket_path: str) -> dict[str, Any]:
    """``spec.models`` as the sandbox must see it: chat and remote embeddings through the broker socket."""
    models = spec.models.model_copy()
    models.uds, models.chat_base_url, models.embed_base_url = socket_path, None, None
    if models.embedder == "minilm":
        if broker.config.local_embedder != "minilm":
            raise ValueError("embedder 'minilm' in a sandbox is served by the broker: give the broker "
                             "local_embedder='minilm' (the image has no torch)")
        models.embedder, models.embed_model = "remote", "all-MiniLM-L6-v2"
    return models.model_dump()


class JobRunner:
    """Runs job specs through one backend and one broker; see the module docstring."""

    def __init__(self, backend: SandboxBackend, broker: Broker, *, limits: Limits | None = None,
                 budget: Budget | None = None, cache_root: Path | None = None, work_root: Path | None = None,
                 retries: int = 2, retry_wait_s: float = 1.0, keep_dirs: bool = False,
                 prepare: Callable[[JobSpec, Path], Path] | None = None):
        """``prepare(spec, cache_root) -> directory``: builds (or finds) the job's task suite on the host before
        the job runs (``harness.suites.prepare_suite``); without it the suite must already be in
        ``cache_root/<benchmark>``. The sandbox layer knows no benchmark itself."""
        self.backend, self.broker = backend, broker
        self.prepare = prepare
        self.limits, self.budget = limits or Limits(), budget or Budget()
        self.cache_root = Path(cache_root or os.environ.get("ALMA_CACHE_DIR")
                               or Path.home() / ".cache" / "alma-engine")
        self.work_root = Path(work_root or tempfile.gettempdir())
        self.retries, self.retry_wait_s, self.keep_dirs = retries, retry_wait_s, keep_dirs

    def prepare_cache(self, spec: JobSpec) -> Path:
        """The job's task-suite directory on the host (built by ``prepare`` when given); mounted read-only."""
        if self.prepare is not None:
            return self.prepare(spec, self.cache_root)
        cache = self.cache_root / spec.benchmark
        cache.mkdir(parents=True, exist_ok=True)
        return cache

    def run(self, spec: JobSpec, *, command: list[str] | None = None) -> JobReport:
        """Run ``spec`` (retrying infrastructure failures) and return its report. ``command`` replaces the
        harness command (tests).

        Raises :class:`sandbox.plugins.PluginUnavailable` before anything runs when the job's plug-in benchmark
        or agent cannot be made importable in this backend's sandbox (the message says how to add it)."""
        access = plugin_access(self.backend, spec)
        cache = self.prepare_cache(spec) if command is None else self.cache_root
        attempts, started = 0, time.monotonic()
        while True:
            attempts += 1
            report = self._attempt(spec, cache, command, access)
            report.attempts = attempts
            if report.outcome is not Outcome.INFRA_ERROR or attempts > self.retries:
                report.wall_s = time.monotonic() - started
                return report
            log.warning("job %s: infrastructure failure (%s); retrying (%d/%d)", spec.job_id, report.detail,
                        attempts, self.retries)
            time.sleep(self.retry_wait_s * attempts)

    def _job_dir(self, spec: JobSpec) -> tuple[Path, Path, Path, Path]:
        """The job's host directories: job/ (the spec), out/ (the result), cache/ (the gate in front of the
        game cache), each private to the harness's uid inside the sandbox."""
        root = Path(tempfile.mkdtemp(prefix=f"alma-job-{spec.job_id[:24]}-", dir=self.work_root))
        root.chmod(0o755)
        job_dir, out_dir, gate = root / "job", root / "out", root / "cache"
        for d in (job_dir, out_dir, gate):
            d.mkdir(mode=0o700)
        (gate / "suite").mkdir(mode=0o755)
        if self.backend.uid != os.getuid():
            if os.geteuid() == 0:
                for d in (job_dir, out_dir, gate):
                    os.chown(d, self.backend.uid, self.backend.uid)
            else:
                for d in (job_dir, out_dir, gate):
                    d.chmod(0o777)
        return root, job_dir, out_dir, gate

    def _attempt(self, spec: JobSpec, cache: Path, command: list[str] | None,
                 access: PluginAccess | None = None) -> JobReport:
        access = access or PluginAccess()
        root, job_dir, out_dir, gate = self._job_dir(spec)
        session: BrokerSession | None = None
        try:
            session = self.broker.open_session(spec.job_id, self.budget, client_uid=self.backend.uid)
            isolated = self.backend.isolated
            inside = spec.model_copy(deep=True)
            sock = SOCKET_INSIDE if isolated else str(session.socket_path)
            inside.models = type(spec.models)(**inside_models(spec, self.broker, sock))
            inside.cache_dir = CACHE_INSIDE if isolated else str(cache)
            inside.scratch_dir = None
            (job_dir / "job.json").write_text(inside.model_dump_json(indent=1), encoding="utf-8")
            (job_dir / "job.json").chmod(0o644)  # readable only through job/ (0700, the harness's uid)
            run = JobRun(
                job_id=spec.job_id,
                command=command or ["python", "-m", "harness.run", "/job/job.json", "--out", "/out/result.json",
                                    "--events", "/out/events.jsonl"],
                mounts=[Mount(job_dir, "/job"), Mount(out_dir, "/out", read_only=False), Mount(gate, "/cache"),
                        Mount(cache, CACHE_INSIDE), Mount(session.socket_dir, "/broker"), *access.mounts],
                env={"ALMA_CACHE_DIR": CACHE_INSIDE, **access.env},
                limits=self.limits,
                out_dir=out_dir,
            )
            so = self.backend.run(run)
            return self._report(spec, so, out_dir, session)
        finally:
            if session is not None:
                session.close()
            if self.keep_dirs:
                log.info("job %s: kept %s", spec.job_id, root)
            else:
                shutil.rmtree(root, ignore_errors=True)

    def _report(self, spec: JobSpec, so: SandboxOutcome, out_dir: Path, session: BrokerSession) -> JobReport:
        outcome, detail, result = so.outcome, so.detail, None
        broker_events = list(session.events)
        budget_hit = any(e["event"] == "budget_exceeded" for e in broker_events)
        integrity: list[dict[str, Any]] = []
        if outcome is Outcome.OK:
            result, why = validate_result(out_dir, spec)
            if result is None:
                outcome, detail = Outcome.CRASHED, f"the harness exited 0 but {why}"
                if why.startswith("result does not add up"):
                    integrity.append({"kind": "integrity", "event": "forged_result", "detail": why[:500],
                                      "refused": True})
        elif outcome is Outcome.CRASHED and so.exit_code == HARNESS_EXIT_TIMEOUT:
            outcome, detail = Outcome.TIMEOUT, "a design call ran past its deadline (see the design_timeout event)"
        elif outcome is Outcome.CRASHED and so.exit_code == HARNESS_EXIT_DESIGN:
            outcome, detail = Outcome.DESIGN_ERROR, detail or "the design does not load or breaks the contract"
        elif outcome is Outcome.CRASHED and so.exit_code in (HARNESS_EXIT_BAD_JOB, HARNESS_EXIT_MODEL):
            if budget_hit:
                outcome, detail = Outcome.DESIGN_ERROR, "the job used up its model budget"
            else:
                outcome = Outcome.INFRA_ERROR
                detail = detail or f"the harness reported a {'job' if so.exit_code == 2 else 'model/benchmark'} " \
                                   f"failure (exit {so.exit_code}): {so.stderr[-500:]}"
        if outcome is not Outcome.OK and not session.alive():
            outcome, detail = Outcome.INFRA_ERROR, f"the model broker went down during the job; {detail}"
        events = read_events(out_dir / "events.jsonl") + so.events + broker_events + integrity
        events = [{**e, "detail": printable(str(e.get("detail", "")))} if "detail" in e else e for e in events]
        return JobReport(
            job_id=spec.job_id, backend=so.backend, outcome=outcome, scored=outcome.scored, attempts=1,
            exit_code=so.exit_code, wall_s=so.wall_s, limits=self.limits, hits=so.hits.names(),
            memory_peak_mb=so.memory_peak_mb, cpu_s=so.cpu_s, result=result, events=events,
            broker_usage=session.usage(), detail=printable(detail), stderr_tail=printable(so.stderr[-4000:]))
