"""Where evaluations run: on this machine (:class:`LocalExecutor`) or on a Ray cluster (:class:`RayExecutor`).

An executor runs one callable ``fn`` on many inputs, each under a key the driver chooses (the archive's
evaluation id), and hands every key's :class:`TaskResult` back exactly once::

    with LocalExecutor(fn, workers=2) as ex:          # or RayExecutor(fn, address="HOST:6379")
        ex.submit("17", spec_json)                    # returns at once
        for r in ex.as_completed():                   # r.key, r.ok, r.value, r.error, r.lost, r.where
            ...                                       # the driver records r in the archive, once

The driver keeps the archive and the run's decisions; an executor only runs work. An exception in ``fn``
comes back as ``error`` (not retried: it would fail again); a worker process or node lost mid-task is retried
by Ray elsewhere (``max_retries``); only past them does a result come back ``lost``. Execution is
at-least-once (a lost attempt may have run partly), the result exactly once, so ``fn`` must have no effect
that matters besides its return value. A sandbox job qualifies: it writes only temporary directories.

Sandbox jobs (:class:`JobExecutor`, :func:`job_executor`): the driver builds each job spec and submits it.
``local`` runs it through the driver's own Evaluator (backend and broker shared by the worker threads);
``ray`` runs :func:`run_sandbox_job` as a Ray task that builds a worker-local Evaluator from the run's config
(the sandbox backend of the worker's node and a broker on that node with the same per-job budget, kept for
the worker process's lifetime). The report, with its broker usage, comes back to the driver, which writes the
artefacts under ``runs/<id>/evals/`` and counts the tokens against the run's budget as for a local
evaluation. A worker's broker reaches the task model the config names (``task.base_url``; the key from
``task.api_key_env`` in the *worker's* environment) or starts the embedded local model on its node; its
cassette lives on the node under ``$ALMA_WORKER_DIR`` (default ``~/.cache/alma-engine/workers/<run>/<host>``).
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import functools
import hashlib
import json
import os
import socket
import threading
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ExecutorError(Exception):
    """An executor cannot be set up or used as asked (the message says what to do)."""


@dataclass(frozen=True)
class TaskResult:
    """How one task ended. ``lost``: its worker or node died more often than ``max_retries`` allows."""

    key: str
    value: Any = None
    error: str | None = None
    lost: bool = False
    wall_s: float = 0.0
    where: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


def _where(in_ray: bool) -> str:
    where = f"{socket.gethostname()} pid {os.getpid()}"
    if in_ray:
        import ray

        return f"{where} node {ray.get_runtime_context().get_node_id()[:12]}"
    return f"{where} {threading.current_thread().name}"


def _timed_call(fn: Callable, args: tuple, kwargs: dict, in_ray: bool = False) -> tuple[str, Any, float, str]:
    """The body every executor runs: ``fn`` with its time and place; its exception as text, never raised."""
    started, where = time.monotonic(), _where(in_ray)
    try:
        return "ok", fn(*args, **kwargs), time.monotonic() - started, where
    except Exception as exc:  # noqa: BLE001 - reported to the driver as the task's error
        text = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=-6)}"
        return "error", text, time.monotonic() - started, where


def _result(key: str, outcome: tuple[str, Any, float, str]) -> TaskResult:
    status, value, wall_s, where = outcome
    if status == "ok":
        return TaskResult(key, value=value, wall_s=wall_s, where=where)
    return TaskResult(key, error=value, wall_s=wall_s, where=where)


class Executor(ABC):
    """Runs ``fn(*args, **kwargs)`` per submitted key; see the module docstring."""

    kind = ""  # "local" | "ray"

    def __init__(self, fn: Callable[..., Any]):
        self.fn = fn

    @property
    @abstractmethod
    def capacity(self) -> int:
        """How many tasks run at once (keep about this many in flight)."""

    @abstractmethod
    def _submit(self, key: str, args: tuple, kwargs: dict) -> None: ...
    @abstractmethod
    def pending(self) -> list[str]:
        """Keys submitted whose result has not been handed back yet."""

    @abstractmethod
    def wait(self, timeout: float | None = None) -> list[TaskResult]:
        """Block until at least one pending task is done (or ``timeout`` seconds pass: then maybe none);
        return every result ready now. Each key's result is returned once."""

    @abstractmethod
    def close(self) -> None:
        """Cancel what is still pending and release the workers."""

    def submit(self, key: str, *args: Any, **kwargs: Any) -> None:
        """Start ``fn(*args, **kwargs)`` under ``key`` (unique among the pending keys); returns at once."""
        if key in self.pending():
            raise ExecutorError(f"task {key!r} is already running; wait for its result, then submit again")
        self._submit(str(key), args, kwargs)

    def as_completed(self, timeout: float | None = None) -> Iterator[TaskResult]:
        """Results as they finish until nothing is pending; ``TimeoutError`` if none finishes in ``timeout``."""
        while self.pending():
            results = self.wait(timeout)
            if not results:
                raise TimeoutError(f"no task finished within {timeout} s; pending: {', '.join(self.pending())}")
            yield from results

    def map(self, calls: Mapping[str, tuple], timeout: float | None = None) -> dict[str, TaskResult]:
        """Submit ``{key: args}`` and wait for all pending tasks; returns ``{key: result}``."""
        for key, args in calls.items():
            self.submit(key, *args)
        return {r.key: r for r in self.as_completed(timeout)}

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalExecutor(Executor):
    """A thread pool on this machine: at most ``workers`` tasks at once (a sandbox job is a subprocess, so
    threads suffice)."""

    kind = "local"

    def __init__(self, fn: Callable[..., Any], workers: int = 1):
        super().__init__(fn)
        if workers < 1:
            raise ExecutorError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self._pool = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="alma-eval")
        self._futures: dict[cf.Future, str] = {}
        self._lock = threading.Lock()

    @property
    def capacity(self) -> int:
        return self.workers

    def _submit(self, key: str, args: tuple, kwargs: dict) -> None:
        with self._lock:
            self._futures[self._pool.submit(_timed_call, self.fn, args, kwargs)] = key

    def pending(self) -> list[str]:
        with self._lock:
            return list(self._futures.values())

    def wait(self, timeout: float | None = None) -> list[TaskResult]:
        with self._lock:
            futures = list(self._futures)
        if not futures:
            return []
        cf.wait(futures, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        out = []
        with self._lock:
            for fut in [f for f in futures if f.done()]:
                out.append(_result(self._futures.pop(fut), fut.result()))
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            self._futures.clear()


def _import_ray():
    try:
        import ray
    except ImportError as exc:
        raise ExecutorError("the ray executor needs Ray: .venv/bin/pip install 'ray>=2.9'") from exc
    return ray


class RayExecutor(Executor):
    """Each task is a Ray task (``num_cpus`` each, retried ``max_retries`` times when its worker or node is
    lost). ``address``: a running cluster (``HOST:PORT``, or ``auto`` for ``RAY_ADDRESS``); None starts a
    single-node Ray in this process with ``workers`` CPUs. ``runtime_env`` is passed to ``ray.init`` (e.g.
    ``{"working_dir": ".", "excludes": [".venv", "runs"]}`` to ship the code to nodes that lack it).
    The driver must import this module from the same alma-engine as the workers."""

    kind = "ray"

    def __init__(self, fn: Callable[..., Any], *, address: str | None = None, workers: int | None = None,
                 max_retries: int = 3, num_cpus: float = 1.0, resources: Mapping[str, float] | None = None,
                 runtime_env: Mapping[str, Any] | None = None):
        super().__init__(fn)
        if num_cpus <= 0:
            raise ExecutorError(f"num_cpus must be > 0, got {num_cpus}")
        ray = self._ray = _import_ray()
        self.num_cpus, self.max_retries = num_cpus, max_retries
        self._owns = not ray.is_initialized()
        if self._owns:
            kw: dict[str, Any] = {"namespace": "alma-engine", "log_to_driver": False}
            if runtime_env:
                kw["runtime_env"] = dict(runtime_env)
            if address:
                kw["address"] = address
            else:
                kw.update(num_cpus=workers or os.cpu_count() or 1, include_dashboard=False)
            try:
                ray.init(**kw)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise ExecutorError(f"cannot connect to the Ray cluster at {address or 'a new local Ray'}: {exc}. "
                                    "Start it first (ray start --head) and pass its address.") from exc
        self._remote = ray.remote(_timed_call).options(
            max_retries=max_retries, retry_exceptions=False, num_cpus=num_cpus, resources=dict(resources or {}))
        self._fn_ref = ray.put(fn)
        self._refs: dict[Any, str] = {}

    @property
    def capacity(self) -> int:
        return max(1, int(self._ray.cluster_resources().get("CPU", 0.0) // self.num_cpus))

    def _submit(self, key: str, args: tuple, kwargs: dict) -> None:
        self._refs[self._remote.remote(self._fn_ref, args, kwargs, True)] = key

    def pending(self) -> list[str]:
        return list(self._refs.values())

    def wait(self, timeout: float | None = None) -> list[TaskResult]:
        ray = self._ray
        refs = list(self._refs)
        if not refs:
            return []
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        out = []
        for ref in ready:
            key = self._refs.pop(ref)
            try:
                out.append(_result(key, ray.get(ref)))
            except ray.exceptions.RayTaskError as exc:  # the wrapper itself failed (e.g. cannot unpickle fn)
                out.append(TaskResult(key, error=f"{type(exc).__name__}: {exc}"))
            except ray.exceptions.RayError as exc:  # worker/node lost past max_retries, cancelled, object lost
                out.append(TaskResult(key, error=f"lost after {self.max_retries} retries: {type(exc).__name__}: "
                                                 f"{str(exc)[:2000]}", lost=True))
        return out

    def close(self) -> None:
        for ref in list(self._refs):
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - best effort: the task may have finished meanwhile
                pass
        self._refs.clear()
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()


# ------------------------------------------------------------------------------------------------ sandbox jobs
_EVALUATORS: dict[str, Any] = {}
_EVALUATORS_LOCK = threading.Lock()


def _close_evaluators() -> None:
    with _EVALUATORS_LOCK:
        for evaluator in _EVALUATORS.values():
            evaluator.close()
        _EVALUATORS.clear()


def worker_evaluator(config: Mapping[str, Any], run_name: str):
    """This process's Evaluator for a run's config (built once: sandbox backend + broker of this node)."""
    from engine.config import EvolveConfig
    from engine.search.evaluator import Evaluator

    key = hashlib.sha256(json.dumps([dict(config), run_name], sort_keys=True, default=str).encode()).hexdigest()
    with _EVALUATORS_LOCK:
        evaluator = _EVALUATORS.get(key)
        if evaluator is None:
            root = Path(os.environ.get("ALMA_WORKER_DIR") or Path.home() / ".cache" / "alma-engine" / "workers")
            evaluator = Evaluator(EvolveConfig.model_validate(dict(config)), root / run_name / socket.gethostname())
            if not _EVALUATORS:
                atexit.register(_close_evaluators)
            _EVALUATORS[key] = evaluator
    return evaluator


def run_sandbox_job(config: Mapping[str, Any], spec_json: str, run_name: str = "run") -> str:
    """The body of a Ray evaluation task: run one job spec (JSON) in this node's sandbox with this node's
    broker; returns the JobReport as JSON."""
    from harness.jobspec import JobSpec

    return worker_evaluator(config, run_name).runner.run(JobSpec.model_validate_json(spec_json)).model_dump_json()


def run_with_runner(runner, spec_json: str) -> str:
    """The body of a local evaluation task: the driver's own JobRunner (backend and broker shared)."""
    from harness.jobspec import JobSpec

    return runner.run(JobSpec.model_validate_json(spec_json)).model_dump_json()


@dataclass(frozen=True)
class EvaluationJob:
    """One evaluation for the executor: ``key`` (the archive's evaluation id), the design, the job spec and
    where its artefacts go (:func:`engine.search.evaluator.artefact_dir`; made by :meth:`JobExecutor.job`)."""

    key: str
    design_id: str
    spec: Any  # harness.jobspec.JobSpec
    out_dir: Path


@dataclass(frozen=True)
class JobDone:
    """A finished job: its report (None when the task failed or was lost: then ``error``) and where it ran."""

    job: EvaluationJob
    report: Any  # sandbox.job.JobReport | None
    error: str | None
    lost: bool
    where: str
    wall_s: float


class JobExecutor:
    """Sandbox jobs on an executor: submit :class:`EvaluationJob`\\ s; each comes back once as a
    :class:`JobDone` after its ``report.json``, ``result.json`` and ``job.json`` are written to its
    ``out_dir`` (as ``Evaluator.evaluate`` writes them)."""

    def __init__(self, executor: Executor, run_dir: Path | None = None):
        self.executor = executor
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self._jobs: dict[str, EvaluationJob] = {}
        self._early: dict[str, JobDone] = {}  # finished while :meth:`run` waited for another job

    def job(self, key: str, design_id: str, spec: Any, label: str) -> EvaluationJob:
        """An :class:`EvaluationJob` whose artefacts go to the run's ``evals/<design>/<label>``."""
        from engine.search.evaluator import artefact_dir

        if self.run_dir is None:
            raise ExecutorError("this JobExecutor has no run directory: give out_dir in the EvaluationJob")
        out = artefact_dir(self.run_dir, design_id, label)
        out.mkdir(parents=True, exist_ok=True)
        return EvaluationJob(key, design_id, spec, out)

    def run(self, job: EvaluationJob) -> JobDone:
        """Submit ``job`` and wait for it (the other jobs in flight keep running)."""
        self.submit(job)
        while True:
            for done in self.as_completed():
                if done.job.key == job.key:
                    return done
                self._early[done.job.key] = done

    @property
    def capacity(self) -> int:
        return self.executor.capacity

    def submit(self, job: EvaluationJob) -> None:
        self.executor.submit(job.key, job.spec.model_dump_json())
        self._jobs[job.key] = job

    def as_completed(self, timeout: float | None = None) -> Iterator[JobDone]:
        from engine.search.evaluator import store_artefacts
        from sandbox.job import JobReport

        while self._early:
            yield self._early.pop(next(iter(self._early)))
        for r in self.executor.as_completed(timeout):
            job = self._jobs.pop(r.key)
            report = JobReport.model_validate_json(r.value) if r.ok else None
            if report is not None:
                store_artefacts(job.out_dir, job.spec, report)
            yield JobDone(job, report, r.error, r.lost, r.where, r.wall_s)

    def close(self) -> None:
        self.executor.close()

    def __enter__(self) -> JobExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def job_executor(kind: str, config, run_dir: Path, *, evaluator=None, workers: int = 1,
                 ray_address: str | None = None, max_retries: int = 3,
                 runtime_env: Mapping[str, Any] | None = None) -> JobExecutor:
    """The evolve loop's executor: ``local`` (``workers`` threads over the driver's ``evaluator``) or ``ray``
    (one task per job on the cluster at ``ray_address``; ``workers`` CPUs when Ray is started here)."""
    if kind == "local":
        if evaluator is None:
            raise ExecutorError("the local executor runs jobs through the driver's Evaluator: pass evaluator=")
        return JobExecutor(LocalExecutor(functools.partial(run_with_runner, evaluator.runner), workers=workers),
                           run_dir)
    if kind == "ray":
        fn = functools.partial(run_sandbox_job, config.model_dump(mode="json"), run_name=Path(run_dir).name)
        return JobExecutor(RayExecutor(fn, address=ray_address, workers=workers, max_retries=max_retries,
                                       runtime_env=runtime_env), run_dir)
    raise ExecutorError(f"unknown executor {kind!r}; choose local or ray")
