"""``python -m harness.run JOBFILE --out RESULT --events EVENTS``: play one job spec (what the sandbox runs).

Reads a :class:`harness.jobspec.JobSpec`, evaluates the design, writes the :class:`harness.jobspec.EvalResult`
atomically to ``--out`` and the runtime audit events as JSON lines to ``--events``. This process (the scorer)
never imports or executes the design's code: the design runs only in its worker process (under its own uid where
one can be given), whose every process is killed before the result is written.
Exit codes: 0 evaluated; 2 unreadable or invalid job (a job that asks to run the design in this process is
invalid); 3 the design does not load or breaks the contract; 4 model or benchmark failure; 5 a design call ran
past its deadline.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import ValidationError

from harness.errors import BenchmarkError, DesignError, ModelError
from harness.files import write_json_atomic
from harness.isolation.proxy import DesignTimeout
from harness.jobspec import JobSpec
from harness.protocol import ProtocolRun

EXIT_BAD_JOB, EXIT_DESIGN, EXIT_MODEL, EXIT_TIMEOUT = 2, 3, 4, 5


def write_events(path: str | Path, events: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for event in events:
            fh.write(json.dumps(event, default=str) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.run", description=__doc__.split("\n")[0])
    parser.add_argument("job", help="job spec (JSON)")
    parser.add_argument("--out", required=True, help="where to write the result JSON")
    parser.add_argument("--events", help="where to write runtime events (JSON lines)")
    parser.add_argument("--scratch", help="scratch root for the design's memory (default: a temp dir)")
    args = parser.parse_args(argv)
    try:
        job = JobSpec.model_validate_json(Path(args.job).read_text(encoding="utf-8"))
    except (OSError, ValidationError) as exc:
        print(f"error: invalid job spec {args.job}: {exc}", file=sys.stderr)
        return 2
    if not job.isolate_design:
        print("error: harness.run always runs the design in its own worker process; isolate_design=false is "
              "only for harness.evaluate --no-isolation", file=sys.stderr)
        return EXIT_BAD_JOB
    try:
        compile(job.design.source, job.design.name, "exec")
    except (SyntaxError, ValueError) as exc:
        print(f"error: memory design {job.design.name!r} does not compile: {exc}", file=sys.stderr)
        if args.events:
            write_events(args.events, [{"kind": "design_error", "event": "load", "detail": str(exc)[:2000],
                                        "refused": False}])
        return EXIT_DESIGN
    from harness.models.factory import ModelSettings, open_models

    events: list[dict] = []
    failure = None
    try:
        with open_models(ModelSettings(**job.models.model_dump())) as models:
            run = ProtocolRun(job, models, scratch_root=Path(args.scratch or job.scratch_dir) if (
                args.scratch or job.scratch_dir) else None, events=events)
            result = run.run_sync()
    except DesignError as exc:
        events.append({"kind": "design_error", "event": "load", "detail": str(exc)[:2000], "refused": False})
        failure = (EXIT_DESIGN, exc)
    except DesignTimeout as exc:
        events.append({"kind": "limit", "event": "design_timeout", "detail": str(exc)[:500]})
        failure = (EXIT_TIMEOUT, exc)
    except (BenchmarkError, ModelError) as exc:
        failure = (EXIT_MODEL, exc)
    if failure is not None:
        print(f"error: {failure[1]}", file=sys.stderr)
        if args.events:
            write_events(args.events, events)
        return failure[0]
    if args.events:
        write_events(args.events, events)
    write_json_atomic(args.out, result.model_dump())
    print(f"score={result.score:.4f} stderr={result.stderr:.4f} episodes={len(result.episodes)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
