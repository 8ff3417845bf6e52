"""Read-only questions the report and replay ask (mixed into :class:`archive.store.Archive`)."""

from __future__ import annotations

from collections import deque
from typing import Any

from archive.errors import ArchiveError
from archive.records import Design, loads, merge_tokens

_BY = ("reward", "score", "novelty")


def _value(design: Design, by: str, benchmark: str | None, split: str | None) -> float | None:
    if by == "novelty":
        return design.novelty
    if benchmark is None and split is None:
        return design.reward if by == "reward" else design.score
    score = design.score_on(benchmark, split)
    if score is None:
        return None
    return score.reward if by == "reward" else score.score


class QueriesMixin:
    """Best designs, lineage, best-score history, cost totals; relies on the Archive core."""

    def best(self, n: int = 5, *, benchmark: str | None = None, split: str | None = None, by: str = "score",
             include_hostile: bool = False) -> list[Design]:
        """The ``n`` evaluated designs with the highest ``by`` (``score``, ``reward`` or ``novelty``),
        overall or on ``benchmark``/``split``; ties go to fewer visits, then to the older design. Hostile
        designs are left out unless ``include_hostile``."""
        if by not in _BY:
            raise ArchiveError(f"best(by=...) must be one of {', '.join(_BY)}, got {by!r}.")
        ranked = []
        for order, design in enumerate(self.designs("evaluated")):
            value = _value(design, by, benchmark, split)
            if value is None or (design.audit == "hostile" and not include_hostile):
                continue
            ranked.append((-value, design.visits, order, design))
        ranked.sort(key=lambda item: item[:3])
        return [item[3] for item in ranked[:n]]

    def children(self, design_id: str) -> list[Design]:
        """Designs that name ``design_id`` among their parents, oldest first."""
        design_id = self.resolve(design_id)
        return self._designs("WHERE id IN (SELECT child FROM design_parents WHERE parent = ?)", (design_id,))

    def ancestors(self, design_id: str) -> list[tuple[int, Design]]:
        """All ancestors as ``(depth, design)``, breadth first (parents at depth 1, in the proposer's order);
        each ancestor appears once, at its smallest depth."""
        start = self.resolve(design_id)
        seen, out, queue = {start}, [], deque([(start, 0)])
        while queue:
            current, depth = queue.popleft()
            for parent in self.get(current).parents:
                if parent not in seen:
                    seen.add(parent)
                    out.append((depth + 1, self.get(parent)))
                    queue.append((parent, depth + 1))
        return out

    def descendants(self, design_id: str) -> list[tuple[int, Design]]:
        """All descendants as ``(depth, design)``, breadth first."""
        start = self.resolve(design_id)
        seen, out, queue = {start}, [], deque([(start, 0)])
        while queue:
            current, depth = queue.popleft()
            for child in self.children(current):
                if child.id not in seen:
                    seen.add(child.id)
                    out.append((depth + 1, child))
                    queue.append((child.id, depth + 1))
        return out

    def best_history(self, *, benchmark: str | None = None, split: str | None = None,
                     by: str = "score") -> list[tuple[int, float, str]]:
        """Best-so-far ``(step, value, design id)`` for each step at which designs were proposed, counting
        evaluated, non-hostile designs proposed at or before that step (steps before the first such design
        are left out)."""
        if by not in _BY:
            raise ArchiveError(f"best_history(by=...) must be one of {', '.join(_BY)}, got {by!r}.")
        steps = sorted({d.step for d in self.designs()})
        candidates = sorted(((d.step, order, d) for order, d in enumerate(self.designs("evaluated"))
                             if d.audit != "hostile" and _value(d, by, benchmark, split) is not None),
                            key=lambda item: item[:2])
        history: list[tuple[int, float, str]] = []
        best: tuple[float, str] | None = None
        i = 0
        for step in steps:
            while i < len(candidates) and candidates[i][0] <= step:
                design = candidates[i][2]
                value = _value(design, by, benchmark, split)
                if best is None or value > best[0]:
                    best = (value, design.id)
                i += 1
            if best is not None:
                history.append((step, best[0], best[1]))
        return history

    def cost_totals(self) -> dict[str, Any]:
        """Run totals: tokens per model (proposals and evaluations), wall seconds, counts by status."""
        tokens: dict[str, dict[str, int]] = {}
        wall = 0.0
        for row in self._rows("SELECT tokens, wall_s FROM designs"):
            merge_tokens(tokens, loads(row["tokens"], {}))
            wall += row["wall_s"]
        by_status = {r["status"]: r["n"] for r in self._rows(
            "SELECT status, count(*) AS n FROM designs GROUP BY status")}
        evals = {r["status"]: r["n"] for r in self._rows(
            "SELECT status, count(*) AS n FROM evaluations GROUP BY status")}
        return {"tokens": tokens, "wall_s": wall, "designs": by_status, "evaluations": evals}
