"""The evaluation protocol of the ALMA paper: a collection phase, then deployment on held-out tasks.

* **collection**: for each of the N train tasks, in order: ``retrieve`` -> play -> ``update``.
* **deployment** on M held-out tasks (the ``id`` or ``ood`` split) x R repeats, in one of two modes:
  ``batched`` (memory frozen after collection; only ``retrieve``; episodes may run concurrently) or
  ``sequential`` (``retrieve`` -> play -> ``update``, task after task; each repeat starts from its own copy of
  the collected memory).

A design's memory is its scratch directory: after collection the design is closed, and each deployment
instance is constructed over a copy of that directory. An exception or timeout in ``retrieve``/``update`` is
recorded with its traceback and the episode counts as failed; the run goes on.
Score = mean success over deployment episodes, with its standard error; progress = mean game progress.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.agents.factory import make_agent
from harness.design import memory_text
from harness.envs import get_benchmark
from harness.envs.base import TaskSpec, TextEnv
from harness.errors import DesignLoadError
from harness.isolation import procs
from harness.isolation.proxy import (
    DesignCallError,
    DesignLoadFailed,
    DesignTimeout,
    InProcessDesign,
    IsolatedDesign,
)
from harness.jobspec import EpisodeRecord, EvalResult, JobSpec
from harness.loader import source_hash
from harness.plugins import load_agent_class
from harness.types import Episode, Step, Task


def stable_seed(*parts: object) -> int:
    """A seed derived from ``parts`` that does not depend on PYTHONHASHSEED or on episode order."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:4], "big")


def agent_unparsed(agent) -> int:
    """The agent's count of model replies that named no admissible action (its ``unparsed`` attribute, as the
    LLM agent keeps it; 0 when it has none or it is not a count)."""
    n = getattr(agent, "unparsed", 0)
    return n if isinstance(n, int) and not isinstance(n, bool) and n >= 0 else 0


def play_episode(env: TextEnv, agent, spec: TaskSpec, first, memory: str, step_limit: int) -> Episode:
    """Play one episode from an already reset env. ``first`` is the reset Observation."""
    agent.begin(first.goal, first.text, memory)
    task = Task(task_id=spec.task_id, benchmark=spec.benchmark, goal=first.goal, observation=first.text)
    episode = Episode(task=task)
    observation, actions = first.text, first.admissible_actions
    progress = 0.0
    for _ in range(step_limit):
        action = agent.act(observation, actions)
        result = env.step(action)
        episode.steps.append(Step(action=action, observation=result.observation, reward=result.reward,
                                  done=result.done))
        episode.reward += result.reward
        observation, actions = result.observation, result.admissible_actions
        if result.progress is not None:
            progress = result.progress
        if result.done or result.won:
            episode.won = bool(result.won)
            break
    episode.progress = 1.0 if episode.won else max(0.0, min(1.0, progress))
    return episode


@dataclass
class ProtocolRun:
    """One evaluation of one design (see the module docstring). Build it, then ``await run()``."""

    job: JobSpec
    models: object
    scratch_root: Path | None = None
    on_episode: Callable[[EpisodeRecord], None] | None = None
    events: list[dict] = field(default_factory=list)

    def __post_init__(self):
        self.benchmark = get_benchmark(self.job.benchmark)
        self.agent_class = load_agent_class(self.job.agent.kind)  # a plug-in that does not load fails here
        p = self.job.protocol
        self.suite = self.benchmark.build_suite(p.seed, p.n_train, p.n_test, self.job.cache_dir)
        self.records: list[EpisodeRecord] = []
        self._tmp: str | None = None
        if self.scratch_root is None:
            self._tmp = tempfile.mkdtemp(prefix="alma-eval-")
            self.scratch_root = Path(self._tmp)
        self.scratch_root = Path(self.scratch_root)
        # designs/: where each phase's worker makes its own scratch directory (under its own uid, it may
        # create entries but not list or touch others'); logs/: the workers' output, private to the harness
        self._designs = self.scratch_root / "designs"
        self._logs = self.scratch_root / "logs"
        self._designs.mkdir(parents=True, exist_ok=True)
        self._logs.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._designs.chmod(0o1733)
        self.scratch_root.chmod(0o711)

    def _design(self, scratch: Path, seed_from: Path | None = None):
        if not self.job.isolate_design:
            return InProcessDesign(self.job.design.source, self.job.design.name, scratch, self.models,
                                   timeout_s=self.job.protocol.design_call_timeout_s, events=self.events,
                                   seed_from=seed_from)
        return IsolatedDesign(self.job.design.source, self.job.design.name, scratch, self.models,
                              timeout_s=self.job.protocol.design_call_timeout_s, events=self.events,
                              seed_from=seed_from, log_path=self._logs / f"{scratch.name}.stderr.log")

    def _step_limit(self, spec: TaskSpec) -> int:
        """The job's override, else the task's own limit (e.g. per TextWorld level), else the benchmark's."""
        return self.job.protocol.step_limit or spec.params.get("step_limit") or self.benchmark.step_limit

    def _agent(self, phase: str, task_id: str, repeat: int):
        """A new agent for one episode (built-in or plug-in: :func:`harness.agents.factory.make_agent`)."""
        return make_agent(self.job.agent, seed=stable_seed(self.job.protocol.seed, phase, task_id, repeat),
                          models=self.models, cls=self.agent_class)

    async def _episode(self, design, env: TextEnv, spec: TaskSpec, phase: str, repeat: int,
                       learn: bool) -> EpisodeRecord:
        started = time.monotonic()
        first = await asyncio.to_thread(env.reset, spec)
        task = Task(task_id=spec.task_id, benchmark=spec.benchmark, goal=first.goal, observation=first.text)
        rec = EpisodeRecord(task_id=spec.task_id, phase=phase, split=spec.split, repeat=repeat, won=False,
                            steps=0)
        t0 = time.monotonic()
        try:
            rec.retrieved = await design.retrieve(task)
        except DesignTimeout:
            raise
        except DesignCallError as exc:
            rec.error = f"retrieve failed: {exc}"
        rec.retrieve_s = time.monotonic() - t0
        if rec.error is None:
            agent = self._agent(phase, spec.task_id, repeat)
            episode = await asyncio.to_thread(play_episode, env, agent, spec, first, memory_text(rec.retrieved),
                                              self._step_limit(spec))
            episode.retrieved = rec.retrieved
            rec.won, rec.steps, rec.progress, rec.reward = episode.won, len(episode.steps), episode.progress, \
                episode.reward
            rec.actions = episode.actions
            rec.unparsed = agent_unparsed(agent)
            if learn:
                t1 = time.monotonic()
                try:
                    await design.update(episode)
                except DesignTimeout:
                    raise
                except DesignCallError as exc:
                    rec.error = f"update failed: {exc}"
                    rec.won = False
                rec.update_s = time.monotonic() - t1
        rec.wall_s = time.monotonic() - started
        self._record(rec)
        return rec

    def _record(self, rec: EpisodeRecord) -> None:
        self.records.append(rec)
        if self.on_episode:
            self.on_episode(rec)

    def _start_failed(self, specs: list[TaskSpec], phase: str, repeats, exc: DesignCallError) -> None:
        """Every episode the design could not be constructed for counts as failed, with the reason."""
        for r in repeats:
            for spec in specs:
                self._record(EpisodeRecord(task_id=spec.task_id, phase=phase, split=spec.split, repeat=r,
                                           won=False, steps=0, error=f"design failed to start: {exc}"))

    async def _sequence(self, scratch: Path, specs: list[TaskSpec], phase: str, repeat: int, learn: bool,
                        seed_from: Path | None = None):
        design = self._design(scratch, seed_from)
        env = self.benchmark.make_env()
        try:
            try:
                await asyncio.to_thread(design.start)
            except DesignLoadFailed as exc:
                if phase == "collect":
                    raise DesignLoadError(self.job.design.name, f"it failed to start in its worker:\n{exc}") from exc
                self._start_failed(specs, phase, [repeat], exc)
                return
            except DesignTimeout:
                raise
            except DesignCallError as exc:
                self._start_failed(specs, phase, [repeat], exc)
                return
            for spec in specs:
                await self._episode(design, env, spec, phase, repeat, learn)
        finally:
            env.close()
            await asyncio.to_thread(design.close)

    async def _batched(self, scratch: Path, specs: list[TaskSpec], repeats: int, seed_from: Path | None = None):
        design = self._design(scratch, seed_from)
        gate = asyncio.Semaphore(self.job.protocol.concurrency)
        envs: list[TextEnv] = []

        async def one(spec: TaskSpec, repeat: int):
            async with gate:
                env = envs.pop() if envs else self.benchmark.make_env()
                try:
                    await self._episode(design, env, spec, "deploy", repeat, learn=False)
                finally:
                    envs.append(env)

        try:
            try:
                await asyncio.to_thread(design.start)
            except DesignTimeout:
                raise
            except DesignCallError as exc:
                self._start_failed(specs, "deploy", range(repeats), exc)
                return
            await asyncio.gather(*(one(spec, r) for r in range(repeats) for spec in specs))
        finally:
            for env in envs:
                env.close()
            await asyncio.to_thread(design.close)

    async def run(self) -> EvalResult:
        started = time.monotonic()
        p = self.job.protocol
        collect_dir = self._designs / "collect"
        try:
            await self._sequence(collect_dir, self.suite.train[: p.n_train], "collect", 0, learn=True)
            tests = self.suite.split(p.split)[: p.n_test]
            if p.mode == "batched":
                await self._batched(self._designs / "deploy", tests, p.repeats, seed_from=collect_dir)
            else:
                for r in range(p.repeats):
                    await self._sequence(self._designs / f"deploy-{r}", tests, "deploy", r, learn=True,
                                         seed_from=collect_dir)
        finally:
            self._check_writes()
            if self._tmp is not None:  # what the design's uid made may stay (inside a sandbox: its tmpfs)
                shutil.rmtree(self._tmp, ignore_errors=True)
        return self._result(time.monotonic() - started)

    def _check_writes(self) -> None:
        """Inside a sandbox (a harness that is not root but may change uids), report files the design's uid
        left outside its scratch directories."""
        uid = procs.design_uid()
        if uid is None or os.geteuid() == 0 or not self.job.isolate_design:
            return
        stray = procs.files_outside(uid, ["/tmp", "/dev/shm", "/var/tmp"], [str(self._designs)])
        if stray:
            self.events.append({"kind": "file_write", "event": "outside_scratch", "refused": False,
                                "detail": f"{len(stray)} file(s) of the design outside its scratch: "
                                          + ", ".join(stray[:5])})

    def run_sync(self) -> EvalResult:
        return asyncio.run(self.run())

    def _result(self, wall_s: float) -> EvalResult:
        deploy = sorted((r for r in self.records if r.phase == "deploy"), key=lambda r: (r.repeat, r.task_id))
        collect = [r for r in self.records if r.phase == "collect"]
        wins = [1.0 if r.won else 0.0 for r in deploy]
        n = len(wins)
        score = sum(wins) / n if n else 0.0
        stderr = math.sqrt(score * (1 - score) / (n - 1)) if n > 1 else 0.0
        p = self.job.protocol
        return EvalResult(
            job_id=self.job.job_id, design=self.job.design.name, design_hash=source_hash(self.job.design.source),
            benchmark=self.job.benchmark, agent=self.job.agent.kind, mode=p.mode, split=p.split, seed=p.seed,
            score=score, stderr=stderr, progress=sum(r.progress for r in deploy) / n if n else 0.0,
            n_train=len(collect), n_test=len({r.task_id for r in deploy}), repeats=p.repeats,
            episodes=collect + deploy, usage=self.models.meter.snapshot(),
            design_errors=sum(r.error is not None for r in self.records), wall_s=wall_s,
        )


def run_job(job: JobSpec, models, **kwargs) -> EvalResult:
    """Synchronous entry point: evaluate ``job`` with ``models`` (a ``harness.models.factory.Models``)."""
    return ProtocolRun(job, models, **kwargs).run_sync()
