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
import sys
from pathlib import Path

from rich.console import Console

from archive.errors import ArchiveError, ArchiveLocked
from engine.config import ConfigError, load_config


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine.evolve", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", help="TOML file (see README); flags override it")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    p.add_argument("--benchmark", help="benchmark to evolve on (default from config: textworld)")
    p.add_argument("--steps", type=int, help="evolution steps (default from config: 8)")
    p.add_argument("--budget-tokens", type=int, help="stop cleanly when meta+task tokens reach this")
    p.add_argument("--budget-usd", type=float,
                   help="hard cap in US dollars over meta, task and embedding calls (prices: engine/cost/prices.toml "
                        "or the config's `prices`); the run stops cleanly before passing it")
    p.add_argument("--budget-minutes", type=float,
                   help="start no new step after this many minutes of seeding and steps (across resumes)")
    p.add_argument("--meta-edit", choices=["patch", "rewrite"],
                   help="the meta agent writes only changed definitions (patch) or whole modules (rewrite)")
    p.add_argument("--seed", type=int, help="run seed (selection, proposers, task suite)")
    p.add_argument("--backend", choices=["auto", "docker", "bubblewrap", "none"], help="sandbox backend")
    p.add_argument("--agent", help="task agent: heuristic, llm, random, an installed plug-in's name or module:Class")
    p.add_argument("--meta-base-url", help="OpenAI-compatible endpoint of the meta model (default: embedded)")
    p.add_argument("--meta-model", help="meta model name")
    p.add_argument("--task-base-url", help="OpenAI-compatible endpoint of the task model (default: embedded)")
    p.add_argument("--task-model", help="task model name")
    p.add_argument("--runs-dir", help="where run directories are created (default: runs)")
    p.add_argument("--executor", choices=["local", "ray"], help="run evaluations here or on a Ray cluster")
    p.add_argument("--ray-address", help="Ray cluster address (head:port); with --executor ray")
    p.add_argument("--name", help="run id (default: a timestamp)")
    p.add_argument("--selection", choices=["softmax", "greedy", "novelty", "elite"],
                   help="parent selection (default from config: greedy; softmax is the paper's rule with a visit "
                        "penalty, elite keeps designs within one fitness task of the best selectable)")
    p.add_argument("--meta-share", type=float, help="share of steps proposed by the meta agent (default 0.25)")
    p.add_argument("--concurrency", type=int, help="evaluations in flight at once (default from config: 1)")
    p.add_argument("--episode-concurrency", type=int,
                   help="deployment episodes each evaluation plays at once in batched mode (default from "
                        "config: 1; raise it for a remote task model)")
    p.add_argument("--no-eval-cache", dest="eval_cache", action="store_false", default=None,
                   help="evaluate every design afresh instead of reusing an identical evaluation's report")
    p.add_argument("--quiet", action="store_true", help="only the final table")
    return p


def overrides(args: argparse.Namespace) -> dict:
    return {"eval.benchmark": args.benchmark, "steps": args.steps, "budget_tokens": args.budget_tokens,
            "budget_usd": args.budget_usd,
            "budget_minutes": args.budget_minutes, "meta_edit": args.meta_edit,
            "seed": args.seed, "sandbox.backend": args.backend, "eval.agent": args.agent,
            "meta.base_url": args.meta_base_url, "meta.model": args.meta_model, "task.base_url": args.task_base_url,
            "task.model": args.task_model, "runs_dir": args.runs_dir, "executor": args.executor,
            "ray_address": args.ray_address, "concurrency": args.concurrency,
            "eval.episode_concurrency": args.episode_concurrency,
            "selection": args.selection, "meta_share": args.meta_share, "eval_cache": args.eval_cache}


def main(argv: list[str] | None = None) -> int:
    """The CLI over :func:`engine.api.evolve`: flags -> config, progress on stderr, the held-out table at the end,
    errors as messages and exit codes."""
    args = build_parser().parse_args(argv)
    console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)
    from engine.api import evolve
    from engine.search.loop import EngineError
    from harness.errors import BenchmarkError
    from sandbox.errors import SandboxError

    run_dir: list[Path] = []
    quiet = args.quiet

    def log(message: str) -> None:
        if message.startswith("run directory: "):
            run_dir.append(Path(message.removeprefix("run directory: ")))
            console.print(message, markup=False, highlight=False)
        elif not quiet:
            console.print(message, markup=False, highlight=False)

    try:
        if args.resume:
            resume = Path(args.resume)
            if not (resume / "config.toml").is_file():
                raise ConfigError(f"{resume} is not a run directory (no config.toml)")
            run = evolve(load_config(resume / "config.toml", overrides(args)), resume=resume, log=log)
        else:
            run = evolve(load_config(args.config, overrides(args)), name=args.name, log=log)
    except (ConfigError, BenchmarkError, ArchiveLocked) as exc:
        console.print(f"[red]error:[/] {exc}")
        return 2
    except SandboxError as exc:
        console.print(f"[red]error:[/] sandbox unavailable: {exc}")
        return 3
    except EngineError as exc:
        console.print(f"[red]error:[/] {exc}")
        return 3
    except ArchiveError as exc:
        console.print(f"[red]archive error:[/] {exc}")
        return 3
    except KeyboardInterrupt:
        where = f" with --resume {run_dir[0]}" if run_dir else ""
        console.print(f"[yellow]interrupted; resume{where}")
        return 130
    if run.stopped:
        console.print(f"[yellow]stopping: {run.stopped}")
    if run.heldout is not None:
        from engine.search.heldout_table import print_heldout

        print_heldout(run.config, run.heldout, run.fitness, console)
        console.print(f"held-out table: {run.run_dir / 'heldout.json'}")
    if run.report:
        console.print(f"report: {run.report}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
