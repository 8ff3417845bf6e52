"""The held-out table as data: ``runs/<id>/heldout.json``, with paired bootstrap intervals over tasks.

Written by :meth:`engine.search.loop.Evolution.heldout_phase`; printed by :mod:`engine.search.heldout_table` and
shown in the report. ``best_evolved`` is the evolved design with the best *selection* score among those evaluated
on the held-out suite: its fitness and validation-suite results pooled (``picked_by: "fitness+validation"``, each
such row has its ``selection_score``), or its fitness score alone when validation is off (``eval.validation_top =
0``); chosen without looking at its held-out result, so its held-out figure is unbiased. Its
differences to the best baseline (the seed with the best held-out score, ``no_memory`` excluded) and to
``no_memory`` are paired over the held-out tasks both played, with a 95% bootstrap interval::

    {"benchmark", "split", "suite_seed", "n_tasks",
     "designs": [{"id", "name", "kind": "seed"|"evolved", "score", "stderr"}],
     "best_evolved": {"id", "name", "score", "picked_by", "vs_best_baseline": {"baseline", "diff", "ci95": [lo, hi]},
                      "vs_no_memory": {"diff", "ci95": [lo, hi]}} | null,
     "verdict": "one line a person reads"}

The loop adds what the run paid (:meth:`engine.cost.governor.CostGovernor.annotate_heldout`): each design's
``"cost": {"usd", "tokens", "heldout_usd"}`` (its proposal and all its evaluations; dollars null where a price is
unknown) and ``"costs": {"prices", "budget_usd", "usd", "tokens", "unknown_prices", "phases": {"seeding",
"steps", "heldout"}, "steps": [{"step", "usd", "tokens"}], "models"}``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from harness.files import write_text_atomic

FILE_NAME = "heldout.json"
BOOTSTRAP_SAMPLES = 4000


def paired_bootstrap(a: dict[str, float], b: dict[str, float], *, samples: int = BOOTSTRAP_SAMPLES,
                     seed: int = 0) -> tuple[float, list[float]]:
    """Mean of ``a[t] - b[t]`` over the tasks both have, and its 95% percentile bootstrap interval (tasks
    resampled with replacement; deterministic for ``seed``). No common task: (0.0, [0.0, 0.0])."""
    tasks = sorted(set(a) & set(b))
    if not tasks:
        return 0.0, [0.0, 0.0]
    diffs = [a[t] - b[t] for t in tasks]
    rng = random.Random(seed)
    means = sorted(sum(rng.choice(diffs) for _ in diffs) / len(diffs) for _ in range(samples))
    lo, hi = means[int(0.025 * samples)], means[min(samples - 1, int(0.975 * samples))]
    return round(sum(diffs) / len(diffs), 6), [round(lo, 6), round(hi, 6)]


def heldout_document(config, designs: list, successes: dict[str, dict[str, float]], split_label: str,
                     rank: dict[str, float] | None = None) -> dict:
    """Build the document from the held-out designs (archive records, seeds first) and each one's per-task
    successes on the held-out split. ``rank``: the evolved designs' selection score (fitness and validation
    pooled, :meth:`engine.search.loop.Evolution.heldout_phase`); None: their fitness score."""
    c = config.eval
    rows = []
    for d in designs:
        s = d.score_on(c.benchmark, split_label)
        rows.append({"id": d.id, "name": d.name, "kind": "seed" if d.proposer == "seed" else "evolved",
                     "score": None if s is None else s.score, "stderr": None if s is None else s.stderr})
    scored = {r["id"]: r for r in rows if r["score"] is not None and r["id"] in successes}
    seeds = [r for r in rows if r["kind"] == "seed" and r["id"] in scored]
    no_memory = next((r for r in seeds if r["name"] == "no_memory"), None)
    baselines = [r for r in seeds if r["name"] != "no_memory"] or seeds
    best_baseline = max(baselines, key=lambda r: r["score"], default=None)
    fitness = {d.id: d.score_on(c.benchmark, c.split) for d in designs}
    evolved = [r for r in rows if r["kind"] == "evolved" and r["id"] in scored]
    if rank is not None:
        for r in rows:
            if r["id"] in rank:
                r["selection_score"] = round(rank[r["id"]], 6)
        evolved.sort(key=lambda r: -rank.get(r["id"], -1.0))
    else:
        evolved.sort(key=lambda r: -(fitness[r["id"]].score if fitness[r["id"]] else -1.0))
    best = None
    if evolved:
        e = evolved[0]
        best = {"id": e["id"], "name": e["name"], "score": e["score"],
                "picked_by": "fitness+validation" if rank is not None else "fitness"}
        if best_baseline is not None:
            diff, ci = paired_bootstrap(successes[e["id"]], successes[best_baseline["id"]])
            best["vs_best_baseline"] = {"baseline": best_baseline["name"], "diff": diff, "ci95": ci}
        if no_memory is not None:
            diff, ci = paired_bootstrap(successes[e["id"]], successes[no_memory["id"]])
            best["vs_no_memory"] = {"diff": diff, "ci95": ci}
    n_tasks = max((len(v) for v in successes.values()), default=0)
    return {"benchmark": c.benchmark, "split": c.heldout_split, "suite_seed": c.heldout_seed, "n_tasks": n_tasks,
            "designs": rows, "best_evolved": best, "verdict": verdict_line(best)}


def verdict_line(best: dict[str, Any] | None) -> str:
    """One honest sentence about the run's result."""
    if best is None:
        return "no evolved design was evaluated on the held-out suite"
    vs = best.get("vs_best_baseline")
    if vs is None:
        return f"{best['name']} scored {best['score']:.3f} on the held-out suite (no baseline to compare with)"
    lo, hi = vs["ci95"]
    if lo > 0:
        return (f"{best['name']} beats the best baseline ({vs['baseline']}) by {vs['diff']:+.3f} on the held-out "
                f"suite (95% interval [{lo:+.3f}, {hi:+.3f}])")
    return (f"no evolved design beats the best baseline on the held-out suite: {best['name']} vs {vs['baseline']} "
            f"{vs['diff']:+.3f} (95% interval [{lo:+.3f}, {hi:+.3f}] includes 0 or lies below it)")


def write_heldout(run_dir: Path, doc: dict) -> Path:
    path = Path(run_dir) / FILE_NAME
    write_text_atomic(path, json.dumps(doc, indent=2) + "\n")
    return path


def read_heldout(run_dir: Path) -> dict | None:
    try:
        return json.loads((Path(run_dir) / FILE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
