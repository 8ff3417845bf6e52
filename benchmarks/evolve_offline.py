"""The offline default of ``python -m engine.evolve`` with a fixed budget; prints the best held-out success of an
evolved design against no memory and against the best hand-crafted baseline.

    python benchmarks/evolve_offline.py [--steps N] [--budget-tokens N] [--budget-minutes M] [--run-dir RUN_DIR]

With no flags it runs exactly the default command (``python -m engine.evolve`` with no flags) and times it.

With --run-dir it only summarises an existing run (e.g. one that ``python -m engine.evolve`` already made).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from archive import Archive
from engine.config import load_config
from engine.search.evaluator import HELDOUT

REPO = Path(__file__).resolve().parents[1]


def summarise(run_dir: Path) -> None:
    config = load_config(run_dir / "config.toml")
    b = config.eval.benchmark
    with Archive.open(run_dir, lock=False) as archive:
        rows = []
        for d in archive.designs():
            fit, held = d.score_on(b, config.eval.split), d.score_on(b, HELDOUT)
            rows.append((d, fit, held))
        seeds = [(d, f, h) for d, f, h in rows if d.proposer == "seed" and h is not None]
        evolved = [(d, f, h) for d, f, h in rows if d.proposer != "seed" and h is not None]
        baseline = next((h for d, f, h in seeds if d.id == archive.baseline), None)
        best_seed = max(seeds, key=lambda r: r[2].score, default=None)
        best_evolved = max(evolved, key=lambda r: r[2].score, default=None)
        totals = archive.cost_totals()
    print(f"run {run_dir}: benchmark {b}, {len(rows)} designs, statuses {totals['designs']}")
    print(f"held-out = {config.eval.heldout_split} split of suite seed {config.eval.heldout_seed}; "
          f"fitness = {config.eval.split} split of suite seed {config.eval.seed}")
    for label, row in (("no memory", (None, None, baseline)), ("best baseline", best_seed),
                       ("best evolved", best_evolved)):
        if row is None or row[2] is None:
            print(f"{label:14}: -")
            continue
        d, _, h = row
        name = d.name if d is not None else "no_memory"
        print(f"{label:14}: {h.score:.3f} ± {h.stderr:.3f}  ({name})")
    if best_evolved and baseline and best_seed:
        print(f"evolved - no memory = {best_evolved[2].score - baseline.score:+.3f}; "
              f"evolved - best baseline = {best_evolved[2].score - best_seed[2].score:+.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, help="default: the config's (8)")
    parser.add_argument("--budget-tokens", type=int, help="default: none")
    parser.add_argument("--budget-minutes", type=float, help="default: the config's (12)")
    parser.add_argument("--run-dir", type=Path)
    args = parser.parse_args()
    run_dir = args.run_dir
    if run_dir is None:
        name = "bench-" + time.strftime("%Y%m%d-%H%M%S")
        started = time.monotonic()
        flags = [f"--{k.replace('_', '-')}={v}" for k, v in
                 (("steps", args.steps), ("budget_tokens", args.budget_tokens),
                  ("budget_minutes", args.budget_minutes)) if v is not None]
        proc = subprocess.run([sys.executable, "-m", "engine.evolve", "--name", name, *flags], cwd=REPO)
        print(f"engine.evolve exited {proc.returncode} after {time.monotonic() - started:.0f} s")
        run_dir = REPO / "runs" / name
    summarise(run_dir)


if __name__ == "__main__":
    main()
