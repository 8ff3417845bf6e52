"""Read-only records returned by the archive: :class:`Design`, :class:`Score`, :class:`Evaluation`,
:class:`Event`. They are snapshots; change the archive through :class:`archive.store.Archive` methods."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any


def dumps(value: Any) -> str:
    """JSON text for a column; raises ``TypeError`` for values JSON cannot hold (before anything is
    written)."""
    return json.dumps(value, sort_keys=True, allow_nan=False)


def loads(text: str | None, default: Any = None) -> Any:
    return default if text is None else json.loads(text)


@dataclass(frozen=True)
class Score:
    """A design's pooled score on one benchmark/split.

    ``reward`` is ``score`` minus the no-memory baseline's score on the same benchmark/split (``None`` while
    the baseline has none); ``n`` is the number of evaluations pooled; ``successes`` maps task id to mean
    success.
    """

    benchmark: str
    split: str
    score: float
    stderr: float
    reward: float | None
    n: int
    successes: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Design:
    """One archived memory design and everything the run learned about it."""

    id: str
    name: str
    source: str
    parents: tuple[str, ...]
    proposer: str
    generation: int
    step: int
    status: str
    status_reason: str | None
    score: float | None
    stderr: float | None
    reward: float | None
    scores: dict[tuple[str, str], Score]
    novelty: float | None
    descriptor: dict[str, Any] | None
    code_vector: tuple[float, ...] | None
    visits: int
    tokens: dict[str, dict[str, int]]
    wall_s: float
    analysis: str | None
    plan: str | None
    findings: list[Any]
    audit: str | None
    audit_note: str | None
    artefacts: tuple[str, ...]
    created_at: float
    updated_at: float

    @property
    def short_id(self) -> str:
        return self.id[:12]

    def score_on(self, benchmark: str | None = None, split: str | None = None) -> Score | None:
        """The pooled score on ``benchmark``/``split``; ``None`` where it was never evaluated there."""
        if benchmark is None and split is None:
            return None
        matches = [s for (b, sp), s in self.scores.items()
                   if (benchmark is None or b == benchmark) and (split is None or sp == split)]
        return matches[0] if len(matches) == 1 else None

    @classmethod
    def from_row(cls, row: sqlite3.Row, scores: list[Score]) -> Design:
        code = loads(row["code_vector"])
        return cls(
            id=row["id"], name=row["name"], source=row["source"], parents=tuple(loads(row["parents"], [])),
            proposer=row["proposer"], generation=row["generation"], step=row["step"], status=row["status"],
            status_reason=row["status_reason"], score=row["score"], stderr=row["stderr"],
            reward=row["reward"],
            scores={(s.benchmark, s.split): s for s in scores}, novelty=row["novelty"],
            descriptor=_descriptor(row, code, scores), code_vector=tuple(code) if code is not None else None,
            visits=row["visits"], tokens=loads(row["tokens"], {}), wall_s=row["wall_s"],
            analysis=row["analysis"], plan=row["plan"], findings=loads(row["findings"], []),
            audit=row["audit"], audit_note=row["audit_note"], artefacts=tuple(loads(row["artefacts"], [])),
            created_at=row["created_at"], updated_at=row["updated_at"])


def _descriptor(row: sqlite3.Row, code: list[float] | None, scores: list[Score]) -> dict[str, Any] | None:
    """What the design's novelty came from: behaviour (``benchmark/split/task_id`` -> success), raw and
    normalised code vector, k, weights and nearest neighbours."""
    stored = loads(row["descriptor"])
    if stored is None:
        return None
    behaviour = {f"{s.benchmark}/{s.split}/{task}": value
                 for s in scores for task, value in s.successes.items()}
    return {"behaviour": behaviour, "code": code, **stored}


def score_from_row(row: sqlite3.Row) -> Score:
    return Score(benchmark=row["benchmark"], split=row["split"], score=row["score"], stderr=row["stderr"],
                 reward=row["reward"], n=row["n"], successes=loads(row["successes"], {}))


@dataclass(frozen=True)
class Evaluation:
    """One evaluation attempt of a design on a benchmark/split (a row of the ``evaluations`` table)."""

    id: int
    design_id: str
    benchmark: str
    split: str
    mode: str
    attempt: int
    purpose: str
    status: str
    outcome: str | None
    score: float | None
    stderr: float | None
    successes: dict[str, float] | None
    usage: dict[str, dict[str, int]]
    wall_s: float | None
    error: str | None
    artefacts: tuple[str, ...]
    runs: int
    started_at: float
    finished_at: float | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Evaluation:
        return cls(
            id=row["id"], design_id=row["design_id"], benchmark=row["benchmark"], split=row["split"],
            mode=row["mode"], attempt=row["attempt"], purpose=row["purpose"], status=row["status"],
            outcome=row["outcome"], score=row["score"], stderr=row["stderr"],
            successes=loads(row["successes"]), usage=loads(row["usage"], {}), wall_s=row["wall_s"],
            error=row["error"], artefacts=tuple(loads(row["artefacts"], [])), runs=row["runs"],
            started_at=row["started_at"], finished_at=row["finished_at"])


@dataclass(frozen=True)
class Event:
    """One entry of the run's event log (``select``, ``propose``, ``step_done``, ... with a JSON payload)."""

    seq: int
    step: int | None
    kind: str
    payload: Any
    created_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Event:
        return cls(seq=row["seq"], step=row["step"], kind=row["kind"], payload=loads(row["payload"], {}),
                   created_at=row["created_at"])


def merge_tokens(into: dict[str, dict[str, int]], more: dict[str, dict[str, int]] | None) -> dict:
    """Add per-model token counters (``{model: {"prompt_tokens": n, ...}}``) of ``more`` into ``into``."""
    for model, counters in (more or {}).items():
        slot = into.setdefault(str(model), {})
        for name, value in counters.items():
            slot[str(name)] = slot.get(str(name), 0) + int(value)
    return into
