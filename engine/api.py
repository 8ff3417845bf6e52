"""The Python API of the engine: run an evolution from code and get its results back.

::

    from engine.api import evolve

    run = evolve({"steps": 4, "eval": {"benchmark": "support_desk", "n_train": 12, "n_test": 8},
                  "sandbox": {"backend": "bubblewrap"}})
    run.run_dir, run.archive_path          # runs/<id>/ and its archive.sqlite
    run.heldout["verdict"]                 # the held-out table (heldout.json) as a dict
    print(run.best.source)                 # the best design's module, ready for harness.api.evaluate

It does what ``python -m engine.evolve`` does (seed the archive, step, evaluate the held-out table, write the
report), with the same pieces (:class:`engine.search.loop.Evolution`, :class:`engine.search.evaluator.Evaluator`),
and raises instead of printing and exiting. Plug-in benchmarks and agents are named in the config like built-ins
(``eval.benchmark``, ``eval.agent``); the run checks before anything is written that the sandbox can be given
them.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config import ConfigError, EvolveConfig, load_config, to_toml

SEEDS_DIR = Path(__file__).resolve().parents[1] / "seeds"


@dataclass(frozen=True)
class BestDesign:
    """The run's best design: the held-out table's pick (by fitness and validation), else the archive's best on the
    fitness split. ``score`` is its fitness score (None when it has none)."""

    id: str
    name: str
    source: str
    score: float | None


@dataclass(frozen=True)
class Run:
    """What :func:`evolve` leaves: where it is, why it stopped early (None: every step ran), the held-out
    table (``heldout.json`` as a dict, None when none was written), the best design and the report's path."""

    run_dir: Path
    archive_path: Path
    heldout: dict | None
    best: BestDesign | None
    stopped: str | None
    report: Path | None
    config: EvolveConfig | None = None
    #: design id -> its fitness as "score ± stderr" ("-" without one), for the designs on the held-out table
    fitness: dict[str, str] = field(default_factory=dict)


def as_config(config: EvolveConfig | dict | str | Path | None) -> EvolveConfig:
    """An :class:`EvolveConfig` from a config, a dict of its fields (nested tables as dicts), a TOML file's path
    or None (the defaults). Raises ConfigError naming the field and the problem."""
    if isinstance(config, EvolveConfig):
        return config
    if config is None or isinstance(config, (str, Path)):
        return load_config(config)
    from pydantic import ValidationError

    try:
        return EvolveConfig.model_validate(config)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid configuration: {problems}") from exc


def preflight(config: EvolveConfig) -> list:
    """Check the benchmark, the agent and the seeds before anything is written; returns the seed genomes.
    Raises PluginError/BenchmarkError for a name that does not load, ConfigError for bad seeds."""
    from engine.search.loop import EngineError, load_seeds
    from harness.envs import get_benchmark
    from harness.plugins import load_agent_class

    get_benchmark(config.eval.benchmark)
    load_agent_class(config.eval.agent)
    try:
        return load_seeds(Path(config.seeds_dir) if config.seeds_dir else SEEDS_DIR)
    except EngineError as exc:
        raise ConfigError(str(exc)) from exc


@contextmanager
def _image_with(dirs: list[Path]):
    """``$ALMA_IMAGE_WITH`` extended by ``dirs`` while the run's sandbox backend is chosen, so that a Docker
    image built for the run holds its plug-ins (:mod:`sandbox.image_plugins`); restored afterwards."""
    from sandbox.image_plugins import ENV_VAR

    before = os.environ.get(ENV_VAR)
    if dirs:
        os.environ[ENV_VAR] = os.pathsep.join([*(before.split(os.pathsep) if before else []), *map(str, dirs)])
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = before


def _new_run_dir(config: EvolveConfig, name: str | None) -> Path:
    run_id = name or time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)
    run_dir = Path(config.runs_dir) / run_id
    if run_dir.exists():
        raise ConfigError(f"{run_dir} already exists; resume it with evolve(resume={str(run_dir)!r})")
    run_dir.mkdir(parents=True)
    return run_dir


def evolve(config: EvolveConfig | dict | str | Path | None = None, *, resume: str | Path | None = None,
           name: str | None = None, log: Callable[[str], None] | None = None) -> Run:
    """Run (or, with ``resume``, continue) an evolution and return its :class:`Run`.

    Args:
        config: an :class:`EvolveConfig`, a dict of its fields, a TOML file or None (defaults). With ``resume``
            and no config, the run directory's ``config.toml``.
        resume: a run directory to continue (as ``python -m engine.evolve --resume``).
        name: the new run's id (default: a timestamp); it is created under ``config.runs_dir``.
        log: called with each progress line (default: silent).

    Raises:
        engine.config.ConfigError: a bad config, seeds that fail validation, an existing run directory, a price
            table the cost estimate cannot read (engine.cost).
        harness.errors.BenchmarkError: the benchmark or agent does not load (PluginError for a plug-in).
        archive.errors.ArchiveLocked: another engine holds the run.
        sandbox.errors.SandboxError: no usable sandbox backend, or one that cannot be given the run's plug-ins
            (:class:`sandbox.plugins.PluginUnavailable`, raised before any evaluation).
        engine.search.loop.EngineError, archive.errors.ArchiveError: the run could not go on (resume it).
    """
    from archive import Archive
    from engine.cost.governor import preflight as cost_preflight

    log = log or (lambda _m: None)
    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / "config.toml").is_file():
            raise ConfigError(f"{run_dir} is not a run directory (no config.toml)")
        config = as_config(config) if config is not None else load_config(run_dir / "config.toml")
        seeds = preflight(config)
        estimate = cost_preflight(config, seeds, run_dir)
    else:
        config = as_config(config)
        seeds = preflight(config)
        estimate = cost_preflight(config, seeds)  # nothing is spent (or written) before this
        run_dir = _new_run_dir(config, name)
        from harness.files import write_text_atomic

        write_text_atomic(run_dir / "config.toml", to_toml(config))
    archive = Archive.open(run_dir, lock=True)
    log(f"run directory: {run_dir}")
    try:
        for line in estimate:
            log(line)
        return _run(config, run_dir, archive, seeds, log)
    finally:
        archive.close()


def _run(config: EvolveConfig, run_dir: Path, archive: Any, seeds: list, log: Callable[[str], None]) -> Run:
    from engine.models import meta_settings
    from engine.search.evaluator import Evaluator
    from engine.search.heldout import read_heldout
    from engine.search.loop import Evolution
    from harness.models.factory import open_models
    from sandbox.plugins import plugin_access, plugin_projects

    probe = _probe_spec(config, seeds[0])
    with _image_with(plugin_projects(probe)):  # a Docker image built for the run holds its plug-ins
        evaluator = Evaluator(config, run_dir)
    try:
        plugin_access(evaluator.backend, probe)  # PluginUnavailable now, not at the first evaluation
    except BaseException:
        evaluator.close()
        raise
    log(f"sandbox backend: {evaluator.backend_name}")
    jobs = None
    if config.executor == "ray":
        from engine.search.executors import job_executor

        jobs = job_executor("ray", config, run_dir, workers=config.concurrency, ray_address=config.ray_address)
        log(f"executor: ray ({config.ray_address or 'started on this machine'})")
    try:
        with open_models(meta_settings(config.meta)) as meta_models:
            evo = Evolution(config, run_dir, archive, evaluator, meta_models, log=log, jobs=jobs)
            try:
                outcome = evo.run(seeds)
            finally:
                evo.jobs.close()
    finally:
        evaluator.close()
    heldout = read_heldout(run_dir)
    fitness = {}
    for d in outcome.heldout:
        s = d.score_on(config.eval.benchmark, config.eval.split)
        fitness[d.id] = "-" if s is None else f"{s.score:.3f} ± {s.stderr:.3f}"
    return Run(run_dir=run_dir, archive_path=run_dir / "archive.sqlite", heldout=heldout,
               best=_best(config, archive, heldout), stopped=outcome.stopped, report=outcome.report,
               config=config, fitness=fitness)


def _probe_spec(config: EvolveConfig, genome: Any):
    """A job spec of this run (for the plug-in checks), built like the evaluator's."""
    from harness.jobspec import AgentSpec, DesignSpec, JobSpec

    return JobSpec(job_id="probe", design=DesignSpec(name=genome.name, source=genome.source),
                   benchmark=config.eval.benchmark, agent=AgentSpec(kind=config.eval.agent))


def _best(config: EvolveConfig, archive: Any, heldout: dict | None) -> BestDesign | None:
    e = config.eval
    design = None
    chosen = (heldout or {}).get("best_evolved") or None
    if chosen and chosen.get("id") in archive:
        design = archive.get(chosen["id"])
    if design is None:
        ranked = archive.best(1, benchmark=e.benchmark, split=e.split)
        design = ranked[0] if ranked else None
    if design is None:
        return None
    fitness = design.score_on(e.benchmark, e.split)
    return BestDesign(id=design.id, name=design.name, source=design.source,
                      score=None if fitness is None else fitness.score)
