"""Search ablation: the same offline run with one part of the search changed at a time, over several run seeds;
prints the held-out gain of the best evolved design over the best hand-crafted baseline for each.

Each cell is one ``engine.api.evolve`` run (its own run directory under ``--runs-dir``) with the base settings
below and the variant's overrides; the figures come from the run's ``heldout.json`` (paired bootstrap 95%
interval over the held-out tasks). A cell wins when the interval's lower bound is above 0.

    python benchmarks/search_ablation.py [--benchmark textworld] [--run-seeds 0 1 2] [--budget-minutes 60]
        [--variants all] [--suite-seed 0] [--heldout-seed 1000] [--heldout-n-test 32] [--train 6] [--test 8]
        [--seeds-dir DIR] [--meta-share 0.0] [--runs-dir runs/ablation] [--backend auto]

Variants (``--variants`` picks some by name):

* ``full``: greedy selection, every structural operator (compound edits included), the final pick re-evaluated
  on a validation suite (``eval.validation_top`` 5);
* ``elite``: the noise-aware ``elite`` selection (stepping stones within one fitness task of the best) instead
  of greedy;
* ``no-validation``: ``full`` with the final pick by fitness alone (``eval.validation_top = 0``);
* ``no-compound``: ``full`` without the ``compound`` operator;
* ``softmax``: the paper's selection rule (softmax over sigmoid reward with a visit penalty) instead of greedy;
* ``novelty``: softmax with a novelty term.

The evaluation cache makes a repeated cell cheap (seeds and children already evaluated are answered from it), so
``--budget-minutes`` counts the search's own work on a fresh machine only.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import time

from engine.api import evolve
from engine.code.mutate import OPERATORS

VARIANTS: dict[str, dict] = {
    "full": {"selection": "greedy"},
    "elite": {"selection": "elite"},
    "no-validation": {"selection": "greedy", "eval": {"validation_top": 0}},
    "no-compound": {"selection": "greedy", "operators": sorted(set(OPERATORS) - {"compound"})},
    "softmax": {"selection": "softmax"},
    "novelty": {"selection": "novelty"},
}


#: two-sided 95% Student t quantiles by degrees of freedom
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def cell(args, variant: str, run_seed: int) -> dict:
    config = {"steps": args.steps, "seed": run_seed, "meta_share": args.meta_share,
              "budget_minutes": args.budget_minutes, "runs_dir": args.runs_dir,
              "eval": {"benchmark": args.benchmark, "n_train": args.train, "n_test": args.test,
                       "seed": args.suite_seed, "heldout_seed": args.heldout_seed,
                       "heldout_n_test": args.heldout_n_test},
              "sandbox": {"backend": args.backend}}
    for key, value in VARIANTS[variant].items():
        if isinstance(value, dict):
            config[key] = {**config.get(key, {}), **value}
        else:
            config[key] = value
    if args.seeds_dir:
        config["seeds_dir"] = args.seeds_dir
    started = time.monotonic()
    run = evolve(config, name=f"{args.benchmark.replace(':', '_')}-{variant}-s{run_seed}-{int(time.time())}")
    best = (run.heldout or {}).get("best_evolved") or {}
    vs = best.get("vs_best_baseline") or {}
    with sqlite3.connect(run.archive_path) as db:
        evaluations = db.execute("SELECT COUNT(*) FROM evaluations WHERE status = 'done'").fetchone()[0]
    minutes = (time.monotonic() - started) / 60
    return {"variant": variant, "seed": run_seed, "gain": vs.get("diff"), "ci": vs.get("ci95"),
            "best": best.get("name", "-"), "baseline": vs.get("baseline", "-"),
            "minutes": minutes, "evals_per_hour": evaluations / max(minutes, 1e-9) * 60, "run": run.run_dir}


def interval(values: list[float]) -> str:
    """Mean and a 95% t-interval over run seeds (the seeds' spread, not the tasks')."""
    if len(values) < 2:
        return "-"
    half = T95.get(len(values) - 1, 2.0) * statistics.stdev(values) / len(values) ** 0.5
    mean = statistics.mean(values)
    return f"[{mean - half:+.3f}, {mean + half:+.3f}]"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--benchmark", default="textworld")
    p.add_argument("--run-seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--budget-minutes", type=float, default=60.0)
    p.add_argument("--steps", type=int, default=10_000, help="a step cap (the time budget usually stops first)")
    p.add_argument("--suite-seed", type=int, default=0)
    p.add_argument("--heldout-seed", type=int, default=1000)
    p.add_argument("--heldout-n-test", type=int, default=32)
    p.add_argument("--train", type=int, default=6)
    p.add_argument("--test", type=int, default=8)
    p.add_argument("--seeds-dir", help="the baselines (default: the packaged seeds/)")
    p.add_argument("--meta-share", type=float, default=0.0)
    p.add_argument("--runs-dir", default="runs/ablation")
    p.add_argument("--backend", default="auto")
    args = p.parse_args()
    rows = []
    for variant in args.variants:
        for seed in args.run_seeds:
            row = cell(args, variant, seed)
            rows.append(row)
            ci = "-" if not row["ci"] else f"[{row['ci'][0]:+.3f}, {row['ci'][1]:+.3f}]"
            gain = "-" if row["gain"] is None else f"{row['gain']:+.3f}"
            print(f"{variant:14} seed {seed}: held-out gain {gain} {ci} ({row['best']} vs {row['baseline']}), "
                  f"{row['minutes']:.1f} min, {row['run']}", flush=True)
    print(f"\n{args.benchmark}, budget {args.budget_minutes:g} min, held-out suite {args.heldout_seed} "
          f"({args.heldout_n_test} tasks), run seeds {args.run_seeds}")
    print(f"{'variant':14} {'mean gain':>10} {'95% over seeds':>18} {'wins (CI > 0)':>14} {'evals/hour':>11}")
    for variant in args.variants:
        mine = [r for r in rows if r["variant"] == variant and r["gain"] is not None]
        mean = statistics.mean(r["gain"] for r in mine) if mine else float("nan")
        wins = sum(1 for r in mine if r["ci"] and r["ci"][0] > 0)
        rate = statistics.mean(r["evals_per_hour"] for r in rows if r["variant"] == variant)
        print(f"{variant:14} {mean:+10.3f} {interval([r['gain'] for r in mine]):>18} {wins:>9}/{len(mine):<4} "
              f"{rate:11.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
