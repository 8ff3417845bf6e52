"""Novelty of designs: mean distance to the k nearest other designs in a descriptor space.

A design's descriptor has two parts, either of which may be missing:

* **behaviour**: ``{task key: success in [0, 1]}``, aligned by task key (the archive uses
  ``"benchmark/split/task_id"``). The behaviour distance of two designs is the mean absolute difference over
  the tasks both were evaluated on (the fraction of shared tasks on which they behave differently, for 0/1
  success); tasks only one of them has are ignored; no shared task means no behaviour distance.
* **code**: a numeric code-structure vector from the caller (the engine computes it with libcst). Each
  dimension is min-max normalised over the designs being compared (a constant dimension becomes 0); the code
  distance is the Euclidean distance divided by ``sqrt(dimensions)``, so it lies in [0, 1].

The combined distance is the weighted mean of the parts both designs have (weights from
:class:`NoveltyConfig`); a pair with no common part has no distance. Novelty is the mean distance to the
``k`` nearest designs that have a distance (fewer when fewer exist; ``None`` when none do). Ties are broken by
the order of the input, so results are deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from archive.errors import ArchiveError


@dataclass(frozen=True)
class NoveltyConfig:
    """``k`` nearest neighbours; the weights of the behaviour and code distances (need not sum to 1)."""

    k: int = 5
    behaviour_weight: float = 1.0
    code_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ArchiveError(f"novelty k must be >= 1, got {self.k}; set novelty.k in the run config.")
        if self.behaviour_weight < 0 or self.code_weight < 0 or self.behaviour_weight + self.code_weight <= 0:
            raise ArchiveError(
                f"novelty weights must be >= 0 and not both 0, got behaviour={self.behaviour_weight}, "
                f"code={self.code_weight}; fix novelty.behaviour_weight / novelty.code_weight in the run "
                "config.")


@dataclass(frozen=True)
class Descriptor:
    """What novelty is computed from: behaviour ``{task key: success}`` and a raw code-structure vector."""

    behaviour: Mapping[str, float] = field(default_factory=dict)
    code: Sequence[float] | None = None


@dataclass(frozen=True)
class NoveltyResult:
    """A design's novelty, its ``k`` used, nearest neighbours ``[(id, distance)]`` and normalised code."""

    novelty: float | None
    k: int
    neighbours: list[tuple[str, float]]
    code_normalised: list[float] | None


def task_successes(episodes: Iterable[Any], phase: str | None = "deploy") -> dict[str, float]:
    """Per-task success rate (mean of ``won`` over repeats) from episode records.

    ``episodes`` are mappings or objects with ``task_id``, ``won`` and ``phase`` (e.g. the ``episodes`` of a
    harness result, dumped or not). Only episodes of ``phase`` count (``None``: all).
    """
    wins: dict[str, list[float]] = {}
    for episode in episodes:
        if isinstance(episode, Mapping):
            get = episode.get
        else:
            get = lambda name, e=episode: getattr(e, name, None)  # noqa: E731
        if phase is not None and get("phase") != phase:
            continue
        wins.setdefault(str(get("task_id")), []).append(1.0 if get("won") else 0.0)
    return {task: sum(values) / len(values) for task, values in sorted(wins.items())}


def normalise_code(vectors: Sequence[Sequence[float] | None]) -> list[np.ndarray | None]:
    """Min-max normalise each dimension over the given vectors (``None`` entries are passed through)."""
    present = [np.asarray(v, dtype=float) for v in vectors if v is not None]
    if not present:
        return [None for _ in vectors]
    dims = {v.shape for v in present}
    if len(dims) != 1 or len(next(iter(dims))) != 1:
        raise ArchiveError(
            f"code-structure vectors have different shapes {sorted(str(d) for d in dims)}; every design's "
            "vector must come from the same feature extractor. Recompute them with one engine version.")
    matrix = np.vstack(present)
    if not np.all(np.isfinite(matrix)):
        raise ArchiveError("a code-structure vector holds NaN or infinity; the feature extractor must return "
                           "finite numbers.")
    low, span = matrix.min(axis=0), np.ptp(matrix, axis=0)
    scaled = np.divide(matrix - low, span, out=np.zeros_like(matrix), where=span > 0)
    rows = iter(scaled)
    return [next(rows) if v is not None else None for v in vectors]


def _behaviour_matrix(descriptors: Sequence[Descriptor]) -> np.ndarray:
    tasks = sorted({task for d in descriptors for task in d.behaviour})
    column = {task: j for j, task in enumerate(tasks)}
    matrix = np.full((len(descriptors), len(tasks)), np.nan)
    for i, d in enumerate(descriptors):
        for task, value in d.behaviour.items():
            matrix[i, column[task]] = float(value)
    return matrix


def distance_matrix(descriptors: Sequence[Descriptor], config: NoveltyConfig | None = None) -> np.ndarray:
    """Pairwise combined distances (n x n); NaN where a pair has no common descriptor part."""
    config = config or NoveltyConfig()
    n = len(descriptors)
    behaviour = _behaviour_matrix(descriptors)
    code_rows = normalise_code([d.code for d in descriptors])
    dim = next((len(r) for r in code_rows if r is not None), 0)
    code = np.full((n, max(dim, 1)), np.nan)
    for i, row in enumerate(code_rows):
        if row is not None and dim:
            code[i] = row
    out = np.full((n, n), np.nan)
    with np.errstate(invalid="ignore"):
        for i in range(n):
            diff = np.abs(behaviour - behaviour[i])
            shared = np.sum(~np.isnan(diff), axis=1)
            d_behaviour = np.where(shared > 0, np.nansum(diff, axis=1) / np.maximum(shared, 1), np.nan)
            d_code = np.full(n, np.nan)
            if dim:
                d_code = np.sqrt(np.sum((code - code[i]) ** 2, axis=1) / dim)
            total = np.zeros(n)
            weight = np.zeros(n)
            for part, w in ((d_behaviour, config.behaviour_weight), (d_code, config.code_weight)):
                have = ~np.isnan(part) & (w > 0)
                total += np.where(have, part * w, 0.0)
                weight += np.where(have, w, 0.0)
            out[i] = np.where(weight > 0, total / np.where(weight > 0, weight, 1.0), np.nan)
            out[i, i] = np.nan
    return out


def compute_novelty(ids: Sequence[str], descriptors: Sequence[Descriptor],
                    config: NoveltyConfig | None = None) -> dict[str, NoveltyResult]:
    """Novelty of every design against all the others (see the module docstring)."""
    config = config or NoveltyConfig()
    if len(ids) != len(descriptors):
        raise ValueError("ids and descriptors must have the same length")
    if not ids:
        return {}
    distances = distance_matrix(descriptors, config)
    code_rows = normalise_code([d.code for d in descriptors])
    results = {}
    for i, design_id in enumerate(ids):
        row = distances[i]
        candidates = np.flatnonzero(~np.isnan(row))
        nearest = candidates[np.argsort(row[candidates], kind="stable")][: config.k]
        neighbours = [(ids[j], float(row[j])) for j in nearest]
        novelty = float(np.mean(row[nearest])) if len(nearest) else None
        code = [float(x) for x in code_rows[i]] if code_rows[i] is not None else None
        results[design_id] = NoveltyResult(novelty=novelty, k=len(nearest), neighbours=neighbours,
                                           code_normalised=code)
    return results
