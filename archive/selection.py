"""Parent selection: which archived designs the next proposals start from.

The paper's rule (``softmax``): each candidate ``i`` gets

    s_i = sigmoid(r_i - r_nomem) - alpha * log(1 + visits_i)
    p_i = exp(s_i / tau) / sum_j exp(s_j / tau)

where ``r_i - r_nomem`` is the design's normalised reward (its score minus the no-memory baseline's score;
the raw score when the archive has no baseline, i.e. ``r_nomem = 0``) and ``visits_i`` counts how often it was
selected before. Defaults: ``tau = 0.5``, ``alpha = 0.5``. Other strategies:

* ``greedy``: the highest reward, ties to fewer visits, then to the older design; uses no randomness.
* ``novelty``: ``p_i = softmax((s_i + beta * n_i) / tau)`` with ``n_i`` the design's novelty divided by the
  largest novelty among the candidates (missing novelty: 0).
* ``elite`` (noise-aware, with stepping stones): the *elite* are the candidates whose reward is within ``margin``
  of the best (the run sets it to one fitness task, ``1 / (n_test * repeats)``: a difference the fitness suite
  cannot tell from noise). ``1 - explore`` of the probability goes to the elite, each weighted
  ``1 / (1 + visits_i)`` (so a neutral child next to the leader gets its turns instead of being starved), and
  ``explore`` (default 0.1) is spread evenly over the rest.

Candidates are the ``evaluated`` designs with a reward, except those audited ``hostile`` (and, optionally,
``suspicious``). :meth:`ParentSelector.select` draws ``k`` parents without replacement (with replacement only
for draws beyond the number of candidates) from ONE seeded ``numpy.random.Generator`` that the selector owns
and that advances across calls; it is never re-seeded. In the same archive transaction, the selected designs'
visits go up, a ``select`` event is logged and the generator state is saved, so :meth:`ParentSelector.restore`
on a resumed run continues exactly the same stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from archive.errors import ArchiveError
from archive.records import Design
from archive.store import Archive

STRATEGIES = ("softmax", "greedy", "novelty", "elite")


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


def softmax(logits: np.ndarray | Sequence[float], tau: float) -> np.ndarray:
    """``exp(l_i / tau) / sum_j exp(l_j / tau)``, computed stably."""
    z = np.asarray(logits, dtype=float) / tau
    z = np.exp(z - z.max())
    return z / z.sum()


def paper_scores(rewards: Sequence[float], visits: Sequence[int], alpha: float = 0.5) -> np.ndarray:
    """``sigmoid(r_i) - alpha * log(1 + visits_i)`` for normalised rewards ``r_i``."""
    return sigmoid(np.asarray(rewards, dtype=float)) - alpha * np.log1p(np.asarray(visits, dtype=float))


def selection_probabilities(rewards: Sequence[float], visits: Sequence[int], *, tau: float = 0.5,
                            alpha: float = 0.5, novelty: Sequence[float | None] | None = None,
                            beta: float = 0.0) -> np.ndarray:
    """The selection distribution of the ``softmax`` (``beta = 0``) and ``novelty`` strategies."""
    logits = paper_scores(rewards, visits, alpha)
    if novelty is not None and beta:
        values = np.array([v if v is not None else 0.0 for v in novelty], dtype=float)
        top = values.max() if len(values) else 0.0
        logits = logits + beta * (values / top if top > 0 else np.zeros_like(values))
    return softmax(logits, tau)


def elite_probabilities(rewards: Sequence[float], visits: Sequence[int], *, margin: float,
                        explore: float = 0.1) -> np.ndarray:
    """The ``elite`` strategy's distribution (see the module docstring)."""
    r = np.asarray(rewards, dtype=float)
    elite = r >= r.max() - margin - 1e-9
    weights = np.where(elite, 1.0 / (1.0 + np.asarray(visits, dtype=float)), 0.0)
    p = (1.0 - explore) * weights / weights.sum() if (~elite).any() else weights / weights.sum()
    if (~elite).any():
        p = p + np.where(elite, 0.0, explore / (~elite).sum())
    return p


@dataclass(frozen=True)
class Candidate:
    """A design that may be selected, with the numbers selection uses."""

    id: str
    reward: float
    visits: int
    novelty: float | None


class ParentSelector:
    """Samples parents from an archive with one seeded random stream (see the module docstring).

    ``benchmark``/``split`` pick the reward used (default: the design's overall reward); ``name`` keys the
    saved generator state in the archive's metadata, so several selectors can coexist in one run.
    """

    def __init__(self, strategy: str = "softmax", *, seed: int = 0, tau: float = 0.5, alpha: float = 0.5,
                 beta: float = 0.5, benchmark: str | None = None, split: str | None = None,
                 exclude_suspicious: bool = False, name: str = "parents", margin: float = 0.125,
                 explore: float = 0.1):
        if strategy not in STRATEGIES:
            raise ArchiveError(f"unknown selection strategy {strategy!r}; choose one of "
                               f"{', '.join(STRATEGIES)}.")
        if not tau > 0 or alpha < 0 or beta < 0:
            raise ArchiveError(f"selection needs tau > 0, alpha >= 0, beta >= 0; got tau={tau}, "
                               f"alpha={alpha}, beta={beta}. Fix the selection settings in the run config.")
        if margin < 0 or not 0 <= explore < 1:
            raise ArchiveError(f"elite selection needs margin >= 0 and 0 <= explore < 1; got margin={margin}, "
                               f"explore={explore}.")
        self.strategy, self.seed, self.tau, self.alpha, self.beta = strategy, seed, tau, alpha, beta
        self.margin, self.explore = margin, explore
        self.benchmark, self.split, self.exclude_suspicious = benchmark, split, exclude_suspicious
        self.state_key = f"selector/{name}"
        self._rng = np.random.Generator(np.random.PCG64(seed))

    # -- the random stream --------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The generator's state as JSON-serialisable data."""
        return {"seed": self.seed, "bit_generator": self._rng.bit_generator.state}

    def set_state(self, state: dict[str, Any]) -> None:
        inner = state.get("bit_generator") if isinstance(state, dict) else None
        if not isinstance(inner, dict) or inner.get("bit_generator") != "PCG64":
            raise ArchiveError(f"saved selector state under {self.state_key!r} is not a PCG64 state; the "
                               "run was written by an incompatible version. Start a new run or drop that "
                               "meta key.")
        self._rng.bit_generator.state = inner

    def restore(self, archive: Archive) -> bool:
        """Continue the stream saved in ``archive`` by the last :meth:`select`; ``False`` if none was
        saved."""
        state = archive.get_meta(self.state_key)
        if state is None:
            return False
        self.set_state(state)
        return True

    # -- the distribution ---------------------------------------------------------------------------------

    def _reward(self, design: Design) -> float | None:
        if self.benchmark is None and self.split is None:
            return design.reward if design.reward is not None else design.score
        score = design.score_on(self.benchmark, self.split)
        if score is None:
            return None
        return score.reward if score.reward is not None else score.score

    def candidates(self, archive: Archive) -> list[Candidate]:
        """Selectable designs, oldest first: evaluated, with a reward, not hostile (nor suspicious, if
        set)."""
        banned = {"hostile", "suspicious"} if self.exclude_suspicious else {"hostile"}
        out = []
        for design in archive.designs("evaluated"):
            reward = self._reward(design)
            if reward is not None and design.audit not in banned:
                out.append(Candidate(design.id, reward, design.visits, design.novelty))
        return out

    def _distribution(self, candidates: list[Candidate]) -> np.ndarray:
        rewards = [c.reward for c in candidates]
        visits = [c.visits for c in candidates]
        if self.strategy == "greedy":
            best = min(range(len(candidates)), key=lambda i: (-rewards[i], visits[i], i))
            return np.eye(len(candidates))[best]
        if self.strategy == "elite":
            return elite_probabilities(rewards, visits, margin=self.margin, explore=self.explore)
        novelty = [c.novelty for c in candidates] if self.strategy == "novelty" else None
        return selection_probabilities(rewards, visits, tau=self.tau, alpha=self.alpha, novelty=novelty,
                                       beta=self.beta if self.strategy == "novelty" else 0.0)

    def probabilities(self, archive: Archive) -> dict[str, float]:
        """``{design id: probability}`` of the next single draw (greedy: 1 for its pick)."""
        candidates = self.candidates(archive)
        if not candidates:
            return {}
        return {c.id: float(p) for c, p in zip(candidates, self._distribution(candidates), strict=True)}

    # -- drawing ------------------------------------------------------------------------------------------

    def _draw(self, p: np.ndarray, k: int) -> list[int]:
        picks: list[int] = []
        while len(picks) < k:
            available = np.ones(len(p), dtype=bool)
            for _ in range(min(k - len(picks), len(p))):
                weights = np.where(available, p, 0.0)
                total = weights.sum()
                if total <= 0:  # the rest underflowed to 0: fall back to uniform over what is left
                    weights, total = available.astype(float), float(available.sum())
                cumulative = np.cumsum(weights) / total
                index = int(np.searchsorted(cumulative, self._rng.random(), side="right"))
                index = min(index, len(p) - 1)
                while not available[index]:  # guard against rounding at the top end
                    index -= 1
                available[index] = False
                picks.append(index)
        return picks

    def _greedy(self, candidates: list[Candidate], k: int) -> list[int]:
        order = sorted(range(len(candidates)), key=lambda i: (-candidates[i].reward, candidates[i].visits, i))
        return [order[i % len(order)] for i in range(k)]

    def select(self, archive: Archive, k: int = 1, *, step: int | None = None) -> list[Design]:
        """Draw ``k`` parents, record the draw (visits, ``select`` event, generator state) in one transaction
        and return the selected designs (as stored after the visit was counted), in draw order."""
        if k < 1:
            raise ArchiveError(f"select needs k >= 1 parents, got {k}.")
        candidates = self.candidates(archive)
        if not candidates:
            raise ArchiveError(
                f"no design in {archive.path} can be a parent: none is evaluated with a score and not "
                "hostile. Evaluate the seed designs (and set the no-memory baseline) before evolving.")
        p = self._distribution(candidates)
        before = self._rng.bit_generator.state
        try:
            picks = self._greedy(candidates, k) if self.strategy == "greedy" else self._draw(p, k)
            ids = [candidates[i].id for i in picks]
            shown = {c.id: round(float(x), 12) for c, x in zip(candidates, p, strict=True)}
            archive.record_selection(ids, step=step, strategy=self.strategy, state_key=self.state_key,
                                     state=self.state(), probabilities=shown)
        except BaseException:
            self._rng.bit_generator.state = before  # nothing was recorded: neither did the stream advance
            raise
        return [archive.get(i) for i in ids]

