"""``python -m harness.evaluate``: evaluate one memory design on a benchmark, print a summary, write JSON.

Example::

    python -m harness.evaluate --design seeds/trajectory_retrieval.py --benchmark textworld \\
        --agent heuristic --train 6 --test 4 --repeats 3 --mode batched --seed 0 --out result.json

Exit codes: 0 evaluated (whatever the score), 2 bad input (unreadable design, unknown benchmark, bad flags),
3 the design could not be loaded or violates the contract, 4 model or benchmark failure, 5 a design call ran
past its deadline. The design runs in its own worker process (under its own uid when run as root); this
process never executes its code unless ``--no-isolation`` is given.
"""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from harness.api import run_job
from harness.cli_common import add_job_arguments, job_from_args
from harness.errors import BenchmarkError, DesignError, ModelError, PluginError
from harness.files import write_json_atomic
from harness.isolation.proxy import DesignTimeout
from harness.summary import print_summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness.evaluate", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_job_arguments(parser)
    parser.add_argument("--out", help="write the result JSON here")
    parser.add_argument("--no-isolation", action="store_true",
                        help="run the design inside the harness process (development only: no score integrity)")
    parser.add_argument("--quiet", action="store_true", help="no per-episode progress")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(stderr=True)
    try:
        job = job_from_args(args)
    except OSError as exc:
        console.print(f"[red]error:[/] cannot read the design {args.design!r}: {exc.strerror}")
        return 2
    except ValueError as exc:
        console.print(f"[red]error:[/] invalid arguments: {exc}")
        return 2
    job.isolate_design = not args.no_isolation

    def progress(rec):
        if not args.quiet:
            mark = "won " if rec.won else ("ERR " if rec.error else "lost")
            console.print(f"  {rec.phase:7} r{rec.repeat} {rec.task_id:32} {mark} {rec.steps:3d} steps")

    def started(run):
        console.print(f"evaluating {job.design.name} on {job.benchmark}: {len(run.suite.train)} train tasks, "
                      f"{job.protocol.n_test} x {job.protocol.repeats} deployment ({job.protocol.mode})")

    try:
        result = run_job(job, on_episode=progress, on_start=started)
    except DesignError as exc:
        console.print(f"[red]error:[/] {exc}")
        return 3
    except DesignTimeout as exc:
        console.print(f"[red]design timeout:[/] {exc}")
        return 5
    except BenchmarkError as exc:
        console.print(f"[red]benchmark error:[/] {exc}")
        return 2 if isinstance(exc, PluginError) else 4
    except ModelError as exc:
        console.print(f"[red]model error:[/] {exc}")
        return 4
    print_summary(result, Console())
    if args.out:
        write_json_atomic(args.out, result.model_dump())
        console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
