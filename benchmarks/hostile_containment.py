"""Containment of the hostile corpus (tests/hostile/*.py) on the available sandbox backends.

    python benchmarks/hostile_containment.py [--backend bubblewrap|docker|all] [--only NAME ...]
                                             [--workers 2] [--json FILE]

Each design runs as a tiny TextWorld job (1 train, 1 test, 1 repeat, step limit 1: honest designs score
exactly 0.0) under tight limits, with planted host secrets; see tests/hostile_corpus.py for what "contained"
means. Prints one row per design and backend (design | attack | where | backend | outcome | score | verdict |
contained), why each uncontained row failed, totals and wall time per backend, and the honest baselines.
Exit status 0 when every row is contained with an expected verdict, else 1 (2: no backend available).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.hostile_corpus import (  # noqa: E402
    BACKEND_NAMES,
    CorpusRunner,
    available_backends,
    load_corpus,
    run_baseline,
    run_corpus,
    table,
)

HONEST = sorted(p for p in (REPO / "seeds").glob("*.py") if not p.name.startswith("_"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=[*BACKEND_NAMES, "all"], default="all",
                        help="backend to run on (default: every available one)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only this case (repeatable, or comma-separated)")
    parser.add_argument("--workers", type=int, default=2, help="cases run at once (default 2)")
    parser.add_argument("--json", metavar="FILE", help="write every row as JSON")
    parser.add_argument("--no-baselines", action="store_true", help="skip the honest-design check")
    args = parser.parse_args(argv)
    only = [n.strip() for item in args.only for n in item.split(",") if n.strip()]
    cases = load_corpus(only=only or None)
    wanted = BACKEND_NAMES if args.backend == "all" else (args.backend,)
    status = available_backends(wanted)
    for name, why in status.items():
        if why:
            print(f"{name}: skipped ({why})", file=sys.stderr)
    backends = [n for n in wanted if status[n] is None]
    if not backends:
        print("no sandbox backend is available", file=sys.stderr)
        return 2
    rows, times, baselines = [], {}, {}
    for backend in backends:
        started = time.monotonic()
        with CorpusRunner(backend) as runner:
            if not args.no_baselines:
                baselines[backend] = {p.stem: run_baseline(p, runner) for p in HONEST}
            rows += run_corpus(cases, runner, workers=args.workers,
                               on_row=lambda r: print(f"  {r.backend} {r.name}: {r.outcome} {r.verdict} "
                                                      f"{'contained' if r.contained else 'NOT contained'} "
                                                      f"({r.wall_s:.0f} s)", file=sys.stderr, flush=True))
        times[backend] = time.monotonic() - started
    print(table(rows))
    for backend in backends:
        print(f"{backend}: {times[backend]:.0f} s wall for {len(cases)} cases")
        for name, (outcome, score, verdict, detail) in baselines.get(backend, {}).items():
            flag = "ok" if (outcome, score, verdict) == ("ok", 0.0, "clean") else \
                f"BROKEN (an honest design must score exactly 0.0 and be clean: {detail[:200]})"
            print(f"  baseline {name}: outcome {outcome}, score {score:.3f}, verdict {verdict} {flag}")
    failed = [r for r in rows if not (r.contained and r.verdict_expected)]
    if failed:
        print("\nnot contained:")
        for r in failed:
            print(f"  {r.backend} {r.name}: {r.why_not()}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": [r.to_dict() for r in rows], "wall_s": times,
                                               "baselines": baselines}, indent=1))
    broken = [name for b in baselines.values() for name, (o, sc, v, _d) in b.items() if (o, sc, v) != ("ok", 0.0, "clean")]
    return 0 if not failed and not broken else 1


if __name__ == "__main__":
    sys.exit(main())
