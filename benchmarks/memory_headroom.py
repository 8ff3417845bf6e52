"""How much memory can help the heuristic agent: deployment success of designs over several suites.

Evaluates each design in process (no sandbox: these are trusted files) with the heuristic agent and the hashing
embedder on ``--suites`` suite seeds of one benchmark, and prints one row per design with its score per suite,
the mean and the mean difference to no memory. Designs are seed names, paths of design files, or
``SEED+PATCH``: a seed with a patch file merged by ``engine.code.patch.apply_patch`` (the meta agent's merge), e.g.
``trajectory_retrieval+benchmarks/designs/trajectory_map.patch`` -- a hand-written design that writes maps,
which shows the headroom that evolution can find.

    python benchmarks/memory_headroom.py [--benchmark textworld] [--suites 0 1 2 1000 1001]
        [--designs no_memory trajectory_retrieval trajectory_retrieval+benchmarks/designs/trajectory_map.patch]
        [--train 6] [--test 8] [--repeats 1] [--step-limit N] [--split id|ood]

The seeds that call an LLM in ``update`` (reasoning_bank, dynamic_cheatsheet, g_memory) use the embedded local
model: add them to ``--designs`` only with time to spare (minutes per suite on 2 cores).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from engine.code.patch import apply_patch
from harness.api import evaluate

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DESIGNS = ["no_memory", "trajectory_retrieval",
                   "trajectory_retrieval+benchmarks/designs/trajectory_map.patch"]


def design_source(spec: str) -> tuple[str, str]:
    """(name, source) of ``spec``: a seed name, a file, or SEED+PATCH."""
    base, _, patch = spec.partition("+")
    path = REPO / "seeds" / f"{base}.py" if (REPO / "seeds" / f"{base}.py").exists() else Path(base)
    if not path.exists():
        raise SystemExit(f"error: no seed or design file {base!r}")
    source = path.read_text(encoding="utf-8")
    if not patch:
        return path.stem, source
    patch_path = Path(patch) if Path(patch).exists() else REPO / patch
    return f"{path.stem}+{Path(patch).stem}", apply_patch(source, patch_path.read_text(encoding="utf-8"))


def score(name: str, source: str, args, seed: int) -> float:
    """Deployment success of one design on suite ``seed`` (in process, through :func:`harness.api.evaluate`)."""
    return evaluate(source, name=name, benchmark=args.benchmark, agent="heuristic", embedder="hashing",
                    n_train=args.train, n_test=args.test, repeats=args.repeats, seed=seed, split=args.split,
                    step_limit=args.step_limit, isolate=False).score


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--benchmark", default="textworld")
    parser.add_argument("--suites", type=int, nargs="+", default=[0, 1, 2, 1000, 1001])
    parser.add_argument("--designs", nargs="+", default=DEFAULT_DESIGNS)
    parser.add_argument("--train", type=int, default=6)
    parser.add_argument("--test", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--step-limit", type=int, help="override the benchmark's step limit")
    parser.add_argument("--split", choices=["id", "ood"], default="id", help="the deployment split")
    args = parser.parse_args()
    designs = [design_source(spec) for spec in args.designs]
    rows: dict[str, list[float]] = {}
    for name, source in designs:
        rows[name] = [score(name, source, args, seed) for seed in args.suites]
        print(f"{name:45} " + " ".join(f"{s:.3f}" for s in rows[name]), flush=True)
    base = rows.get("no_memory")
    print(f"\n{args.benchmark} ({args.split}), heuristic agent, {args.train} train / {args.test} test x {args.repeats}, "
          f"step limit {args.step_limit or 'default'}, suites {' '.join(map(str, args.suites))}")
    print(f"{'design':45} {'mean':>6} {'vs no memory':>12} {'suites better/worse':>20}")
    for name, scores in rows.items():
        diff = "" if base is None else f"{statistics.mean(scores) - statistics.mean(base):+12.3f}"
        wins = "" if base is None else (f"{sum(s > b for s, b in zip(scores, base, strict=True))}/"
                                        f"{sum(s < b for s, b in zip(scores, base, strict=True))}")
        print(f"{name:45} {statistics.mean(scores):6.3f} {diff:>12} {wins:>20}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
