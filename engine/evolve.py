"""``python -m engine.evolve``: open-ended meta-learning of memory designs (ALMA), offline by default.

It seeds the archive with the hand-crafted baselines (seeds/), then iterates select -> propose (meta agent or
libcst mutation/crossover) -> validate -> evaluate in the sandbox -> archive, and ends with a table of the best
designs against every baseline on the held-out split. Everything lives in ``runs/<run-id>/``; after a crash
or kill, ``--resume RUN_DIR`` continues with nothing lost or counted twice.

Exit codes: 0 done (or stopped cleanly at the token or time budget), 2 bad input (config, benchmark, seeds, a run
directory that is locked or missing), 3 the run could not go on (infrastructure), 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from pathlib import Path

from rich.console import Console

from archive import Archive
from archive.errors import ArchiveError, ArchiveLocked
from engine.code.genome import Genome
from engine.config import ConfigError, EvolveConfig, load_config, to_toml
from harness.files import write_text_atomic

SEEDS_DIR = Path(__file__).resolve().parents[1] / "seeds"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine.evolve", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", help="TOML file (see README); flags override it")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    p.add_argument("--benchmark", help="benchmark to evolve on (default from config: textworld)")
    p.add_argument("--steps", type=int, help="evolution steps (default from config: 8)")
    p.add_argument("--budget-tokens", type=int, help="stop cleanly when meta+task tokens reach this")
    p.add_argument("--budget-minutes", type=float,
                   help="start no new step after this many minutes of seeding and steps (across resumes)")
    p.add_argument("--meta-edit", choices=["patch", "rewrite"],
                   help="the meta agent writes only changed definitions (patch) or whole modules (rewrite)")
    p.add_argument("--seed", type=int, help="run seed (selection, proposers, task suite)")
    p.add_argument("--backend", choices=["auto", "docker", "bubblewrap", "none"], help="sandbox backend")
    p.add_argument("--agent", choices=["heuristic", "llm"], help="task agent")
    p.add_argument("--meta-base-url", help="OpenAI-compatible endpoint of the meta model (default: embedded)")
    p.add_argument("--meta-model", help="meta model name")
    p.add_argument("--task-base-url", help="OpenAI-compatible endpoint of the task model (default: embedded)")
    p.add_argument("--task-model", help="task model name")
    p.add_argument("--runs-dir", help="where run directories are created (default: runs)")
    p.add_argument("--executor", choices=["local", "ray"], help="run evaluations here or on a Ray cluster")
    p.add_argument("--ray-address", help="Ray cluster address (head:port); with --executor ray")
    p.add_argument("--name", help="run id (default: a timestamp)")
    p.add_argument("--concurrency", type=int, help="evaluations in flight at once (default from config: 1)")
    p.add_argument("--no-eval-cache", dest="eval_cache", action="store_false", default=None,
                   help="evaluate every design afresh instead of reusing an identical evaluation's report")
    p.add_argument("--quiet", action="store_true", help="only the final table")
    return p


def overrides(args: argparse.Namespace) -> dict:
    return {"eval.benchmark": args.benchmark, "steps": args.steps, "budget_tokens": args.budget_tokens,
            "budget_minutes": args.budget_minutes, "meta_edit": args.meta_edit,
            "seed": args.seed, "sandbox.backend": args.backend, "eval.agent": args.agent,
            "meta.base_url": args.meta_base_url, "meta.model": args.meta_model, "task.base_url": args.task_base_url,
            "task.model": args.task_model, "runs_dir": args.runs_dir, "executor": args.executor,
            "ray_address": args.ray_address, "concurrency": args.concurrency, "eval_cache": args.eval_cache}


def preflight(config: EvolveConfig) -> list[Genome]:
    """Check what can be checked before anything is written; returns the validated seed designs."""
    from engine.search.loop import EngineError, load_seeds
    from harness.envs import get_benchmark

    get_benchmark(config.eval.benchmark)  # BenchmarkError for an unknown or missing benchmark
    try:
        return load_seeds(Path(config.seeds_dir) if config.seeds_dir else SEEDS_DIR)
    except EngineError as exc:
        raise ConfigError(str(exc)) from exc


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)
    from harness.errors import BenchmarkError

    try:
        if args.resume:
            run_dir = Path(args.resume)
            if not (run_dir / "config.toml").is_file():
                raise ConfigError(f"{run_dir} is not a run directory (no config.toml)")
            config = load_config(run_dir / "config.toml", overrides(args))
            seeds = preflight(config)
        else:
            config = load_config(args.config, overrides(args))
            seeds = preflight(config)
            run_id = args.name or time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)
            run_dir = Path(config.runs_dir) / run_id
            if run_dir.exists():
                raise ConfigError(f"{run_dir} already exists; resume it with --resume {run_dir}")
            run_dir.mkdir(parents=True)
            write_text_atomic(run_dir / "config.toml", to_toml(config))
        archive = Archive.open(run_dir, lock=True)
    except (ConfigError, BenchmarkError) as exc:
        console.print(f"[red]error:[/] {exc}")
        return 2
    except ArchiveLocked as exc:
        console.print(f"[red]error:[/] {exc}")
        return 2
    console.print(f"run directory: {run_dir}")
    try:
        return _run(config, run_dir, archive, seeds, console, args.quiet)
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted; resume with --resume {run_dir}")
        return 130
    finally:
        archive.close()


def _run(config, run_dir: Path, archive: Archive, seeds: list[Genome], console: Console, quiet: bool) -> int:
    from engine.models import meta_settings
    from engine.search.evaluator import Evaluator
    from engine.search.heldout import read_heldout
    from engine.search.heldout_table import print_heldout
    from engine.search.loop import EngineError, Evolution
    from harness.models.factory import open_models
    from sandbox.errors import SandboxError

    log = (lambda _m: None) if quiet else (lambda m: console.print(m))
    try:
        evaluator = Evaluator(config, run_dir)
    except SandboxError as exc:
        console.print(f"[red]error:[/] sandbox unavailable: {exc}")
        return 3
    log(f"sandbox backend: {evaluator.backend_name}")
    jobs = None
    if config.executor == "ray":
        from engine.search.executors import job_executor

        jobs = job_executor("ray", config, run_dir, workers=config.concurrency, ray_address=config.ray_address)
        log(f"executor: ray ({config.ray_address or 'started on this machine'})")
    with open_models(meta_settings(config.meta)) as meta_models:
        evo = Evolution(config, run_dir, archive, evaluator, meta_models, log=log, jobs=jobs)
        try:
            outcome = evo.run(seeds)
        except EngineError as exc:
            console.print(f"[red]error:[/] {exc}")
            return 3
        except ArchiveError as exc:
            console.print(f"[red]archive error:[/] {exc}")
            return 3
        finally:
            evo.jobs.close()
            evaluator.close()
    if outcome.stopped:
        console.print(f"[yellow]stopping: {outcome.stopped}")
    doc = read_heldout(run_dir)
    if doc is not None:
        fitness = {}
        for d in outcome.heldout:
            s = d.score_on(config.eval.benchmark, config.eval.split)
            fitness[d.id] = "-" if s is None else f"{s.score:.3f} ± {s.stderr:.3f}"
        print_heldout(config, doc, fitness, console)
        console.print(f"held-out table: {run_dir / 'heldout.json'}")
    if outcome.report:
        console.print(f"report: {outcome.report}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
