"""Pooling per-task successes over run seeds and comparing designs on them.

A pooled table is ``{"<run seed>/<task id>": success}``: each run seed has its own held-out suite, so a (seed,
task) pair is one held-out task played once. Differences are paired on the pairs both sides played and get the
same 95% percentile bootstrap interval as the runs' own held-out tables (:func:`engine.search.heldout.
paired_bootstrap`, deterministic).
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.search.heldout import paired_bootstrap


def pool(per_seed: Mapping[int, Mapping[str, float] | None]) -> dict[str, float]:
    """``{seed: {task: success}}`` -> ``{"seed/task": success}`` (a seed without successes adds nothing)."""
    return {f"{seed}/{task}": float(v) for seed, tasks in sorted(per_seed.items()) if tasks
            for task, v in sorted(tasks.items())}


def mean(values: Mapping[str, float] | list[float]) -> float | None:
    vals = list(values.values()) if isinstance(values, Mapping) else list(values)
    return round(sum(vals) / len(vals), 6) if vals else None


def compare(a: Mapping[str, float], b: Mapping[str, float]) -> dict:
    """``a - b`` on the pairs both have: ``{"diff", "ci95": [lo, hi], "n": pairs}``."""
    diff, ci = paired_bootstrap(dict(a), dict(b))
    return {"diff": diff, "ci95": ci, "n": len(set(a) & set(b))}


def resolved(cmp: Mapping | None) -> str:
    """``better`` (interval above 0), ``worse`` (below 0) or ``unresolved``; ``missing`` without a comparison."""
    if not cmp or not cmp.get("n"):
        return "missing"
    lo, hi = cmp["ci95"]
    return "better" if lo > 0 else "worse" if hi < 0 else "unresolved"


def band(rows: list[list[float | None]]) -> dict:
    """Mean, lowest and highest of several curves step by step (a curve shorter than the others, or with a gap,
    adds nothing where it has no value)."""
    length = max((len(r) for r in rows), default=0)
    out = {"mean": [], "lo": [], "hi": []}
    for i in range(length):
        vals = [r[i] for r in rows if i < len(r) and r[i] is not None]
        out["mean"].append(round(sum(vals) / len(vals), 6) if vals else None)
        out["lo"].append(min(vals) if vals else None)
        out["hi"].append(max(vals) if vals else None)
    return out


def fmt_cmp(cmp: Mapping | None) -> str:
    if not cmp or not cmp.get("n"):
        return "-"
    return f"{cmp['diff']:+.3f} [{cmp['ci95'][0]:+.3f}, {cmp['ci95'][1]:+.3f}]"
