"""Evaluation attempts and the scores pooled from them (mixed into :class:`archive.store.Archive`).

Life of an evaluation: :meth:`begin_evaluation` records it as ``running`` *before* the sandbox starts;
:meth:`finish_evaluation` (or :meth:`record_result` with a harness result document) moves it to ``done``
(outcome ``ok``) or ``failed`` (any other outcome) exactly once. After a crash, :meth:`running_evaluations`
lists the attempts that never finished: re-run each and finish it (optionally :meth:`restart_evaluation` first
to note the restart). ``(design, benchmark, split, attempt)`` is unique and a finished attempt cannot be
finished again, so no result is ever counted twice.

A design's score on a benchmark/split pools its ``done`` evaluations of purpose ``score``: the mean score,
stderr ``sqrt(sum se_i^2) / n`` and the mean per-task success. Its normalised reward there is that score
minus the no-memory baseline's score on the same benchmark/split. The design's overall score (and reward) is
the mean over its benchmark/splits (those the baseline has, for the reward).
"""

from __future__ import annotations

import math
import re
import sqlite3
import time
from collections.abc import Mapping, Sequence
from typing import Any

from archive.errors import ArchiveError, DuplicateEvaluation, InvalidTransition
from archive.novelty import task_successes
from archive.records import Evaluation, dumps, loads, merge_tokens
from archive.schema import EVALUATION_PURPOSES, EVALUATION_TRANSITIONS

_OUTCOME = re.compile(r"^[a-z][a-z0-9_]*$")


class EvaluationsMixin:
    """Evaluation bookkeeping; relies on the :class:`~archive.store.Archive` core."""

    def begin_evaluation(self, design_id: str, benchmark: str, split: str, *, mode: str = "batched",
                         attempt: int | None = None, purpose: str = "score") -> Evaluation:
        """Record an evaluation as ``running`` before it starts; returns it (its ``id`` finishes it later).

        ``attempt`` defaults to the next number for this design/benchmark/split. Raises
        :class:`DuplicateEvaluation` if that attempt already exists. ``purpose="replay"`` records an
        evaluation that does not count towards the design's scores (audits, re-runs).
        """
        if purpose not in EVALUATION_PURPOSES:
            raise ArchiveError(f"evaluation purpose must be one of {EVALUATION_PURPOSES}, got {purpose!r}.")
        with self.transaction() as conn:
            row = self._require(design_id)
            if row["status"] == "invalid":
                reason = row["status_reason"] or "failed validation"
                raise ArchiveError(f"design {design_id!r} in {self.path} is invalid ({reason}); it cannot be "
                                   "evaluated.")
            if attempt is None:
                attempt = 1 + conn.execute(
                    "SELECT coalesce(max(attempt), 0) FROM evaluations WHERE design_id = ? AND benchmark = ? "
                    "AND split = ?", (design_id, benchmark, split)).fetchone()[0]
            try:
                cur = conn.execute(
                    "INSERT INTO evaluations(design_id, benchmark, split, mode, attempt, purpose, status, "
                    "started_at) VALUES (?, ?, ?, ?, ?, ?, 'running', ?)",
                    (design_id, benchmark, split, mode, attempt, purpose, time.time()))
            except sqlite3.IntegrityError as exc:
                existing = conn.execute(
                    "SELECT status FROM evaluations WHERE design_id = ? AND benchmark = ? AND split = ? "
                    "AND attempt = ?", (design_id, benchmark, split, attempt)).fetchone()
                if existing is None:
                    raise ArchiveError(f"cannot record the evaluation of {design_id!r}: {exc}") from exc
                raise DuplicateEvaluation(design_id, benchmark, split, attempt, existing["status"]) from None
            return self.evaluation(cur.lastrowid)

    def evaluation(self, evaluation_id: int) -> Evaluation:
        rows = self._rows("SELECT * FROM evaluations WHERE id = ?", (evaluation_id,))
        if not rows:
            raise ArchiveError(f"no evaluation with id {evaluation_id} in {self.path}; list them with "
                               "Archive.evaluations().")
        return Evaluation.from_row(rows[0])

    def evaluations(self, design_id: str | None = None, *, benchmark: str | None = None,
                    split: str | None = None, status: str | None = None) -> list[Evaluation]:
        """Evaluation attempts in the order they began, filtered by any of the arguments."""
        clauses, params = [], []
        for column, value in (("design_id", design_id), ("benchmark", benchmark), ("split", split),
                              ("status", status)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return [Evaluation.from_row(r) for r in self._rows(f"SELECT * FROM evaluations {where} ORDER BY id",
                                                           params)]

    def running_evaluations(self) -> list[Evaluation]:
        """Evaluations marked ``running``. Right after ``open`` these are the ones a crash interrupted."""
        return self.evaluations(status="running")

    def restart_evaluation(self, evaluation_id: int) -> Evaluation:
        """Note that an interrupted ``running`` evaluation is started again (same attempt: counted once)."""
        with self.transaction() as conn:
            ev = self.evaluation(evaluation_id)
            if ev.status != "running":
                raise InvalidTransition(self._describe(ev), ev.status, "running",
                                        EVALUATION_TRANSITIONS[ev.status])
            conn.execute("UPDATE evaluations SET runs = runs + 1, started_at = ? WHERE id = ?",
                         (time.time(), evaluation_id))
        return self.evaluation(evaluation_id)

    def finish_evaluation(self, evaluation_id: int, *, outcome: str, score: float | None = None,
                          stderr: float | None = None, successes: Mapping[str, float] | None = None,
                          usage: Mapping | None = None, wall_s: float | None = None, error: str | None = None,
                          artefacts: Sequence[str] = ()) -> Evaluation:
        """Record how a ``running`` evaluation ended, in one transaction with everything it changes.

        ``outcome="ok"`` (needs ``score``) makes it ``done`` and, for purpose ``score``, updates the design's
        pooled scores, rewards (every design's, if it is the baseline) and all novelty values. Any other
        outcome (``design_error``, ``timeout``, ``oom``, ``sandbox_error``, ...) makes it ``failed`` and
        changes no score. ``usage`` ({model: {counter: n}}) and ``wall_s`` are added to the design's costs;
        ``artefacts`` (paths) to the evaluation and the design. Raises :class:`InvalidTransition` if the
        evaluation already finished: a result is never counted twice.
        """
        if not _OUTCOME.match(outcome or ""):
            raise ArchiveError(f"outcome must be a lower-case word like 'ok' or 'timeout', got {outcome!r}.")
        status = "done" if outcome == "ok" else "failed"
        if status == "done" and (score is None or not math.isfinite(score)):
            raise ArchiveError(f"evaluation {evaluation_id}: outcome 'ok' needs a finite score, "
                               f"got {score!r}.")
        tasks = {str(t): float(v) for t, v in (successes or {}).items()}
        if any(not 0.0 <= v <= 1.0 for v in tasks.values()):
            raise ArchiveError(f"evaluation {evaluation_id}: per-task successes must lie in [0, 1].")
        with self.transaction() as conn:
            ev = self.evaluation(evaluation_id)
            if status not in EVALUATION_TRANSITIONS[ev.status]:
                raise InvalidTransition(self._describe(ev), ev.status, status,
                                        EVALUATION_TRANSITIONS[ev.status])
            if stderr is None and score is not None:
                stderr = 0.0
            conn.execute(
                "UPDATE evaluations SET status = ?, outcome = ?, score = ?, stderr = ?, successes = ?, "
                "usage = ?, wall_s = ?, error = ?, artefacts = ?, finished_at = ? WHERE id = ?",
                (status, outcome, score, stderr, dumps(tasks) if successes is not None else None,
                 dumps(merge_tokens({}, usage)), wall_s, error, dumps([str(a) for a in artefacts]),
                 time.time(), evaluation_id))
            self.add_costs(ev.design_id, usage, wall_s or 0.0)
            if artefacts:
                self.add_artefacts(ev.design_id, artefacts)
            if status == "done" and ev.purpose == "score":
                self._pool_scores(conn, ev.design_id, ev.benchmark, ev.split)
                self.refresh_novelty()
        return self.evaluation(evaluation_id)

    def record_result(self, evaluation_id: int, result: Mapping[str, Any], *, outcome: str | None = None,
                      artefacts: Sequence[str] = ()) -> Evaluation:
        """Finish an evaluation from a harness result document (``EvalResult.model_dump()``): score, stderr,
        per-task deploy success, usage and wall time. ``outcome`` defaults to ``ok``."""
        return self.finish_evaluation(
            evaluation_id, outcome=outcome or "ok", score=result.get("score"), stderr=result.get("stderr"),
            successes=task_successes(result.get("episodes", [])), usage=result.get("usage"),
            wall_s=result.get("wall_s"), artefacts=artefacts)

    @staticmethod
    def _describe(ev: Evaluation) -> str:
        return (f"evaluation {ev.id} (design {ev.design_id!r} on {ev.benchmark}/{ev.split}, "
                f"attempt {ev.attempt})")

    def _pool_scores(self, conn: sqlite3.Connection, design_id: str, benchmark: str, split: str) -> None:
        rows = conn.execute(
            "SELECT score, stderr, successes FROM evaluations WHERE design_id = ? AND benchmark = ? "
            "AND split = ? AND status = 'done' AND purpose = 'score' ORDER BY id",
            (design_id, benchmark, split)).fetchall()
        n = len(rows)
        score = sum(r["score"] for r in rows) / n
        stderr = math.sqrt(sum((r["stderr"] or 0.0) ** 2 for r in rows)) / n
        per_task: dict[str, list[float]] = {}
        for r in rows:
            for task, value in loads(r["successes"], {}).items():
                per_task.setdefault(task, []).append(value)
        successes = {t: sum(v) / len(v) for t, v in sorted(per_task.items())}
        conn.execute(
            "INSERT INTO scores(design_id, benchmark, split, score, stderr, n, successes, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(design_id, benchmark, split) DO UPDATE SET "
            "score = excluded.score, stderr = excluded.stderr, n = excluded.n, "
            "successes = excluded.successes, updated_at = excluded.updated_at",
            (design_id, benchmark, split, score, stderr, n, dumps(successes), time.time()))
        self._recompute_rewards(conn, None if design_id == self.baseline else [design_id])

    def _recompute_rewards(self, conn: sqlite3.Connection, design_ids: list[str] | None = None) -> None:
        """Refresh per-benchmark/split and overall score, stderr and reward of the given (default: all)."""
        baseline = self.baseline
        base = {}
        if baseline:
            base = {(r["benchmark"], r["split"]): r["score"] for r in conn.execute(
                "SELECT benchmark, split, score FROM scores WHERE design_id = ?", (baseline,))}
        if design_ids is None:
            design_ids = [r["id"] for r in conn.execute("SELECT id FROM designs")]
        for design_id in design_ids:
            rows = conn.execute("SELECT benchmark, split, score, stderr FROM scores WHERE design_id = ?",
                                (design_id,)).fetchall()
            rewards = []
            for r in rows:
                key = (r["benchmark"], r["split"])
                reward = r["score"] - base[key] if key in base else None
                if reward is not None:
                    rewards.append(reward)
                conn.execute("UPDATE scores SET reward = ? WHERE design_id = ? AND benchmark = ? "
                             "AND split = ?", (reward, design_id, *key))
            score = sum(r["score"] for r in rows) / len(rows) if rows else None
            stderr = math.sqrt(sum(r["stderr"] ** 2 for r in rows)) / len(rows) if rows else None
            reward = sum(rewards) / len(rewards) if rewards else None
            conn.execute("UPDATE designs SET score = ?, stderr = ?, reward = ?, updated_at = ? WHERE id = ?",
                         (score, stderr, reward, time.time(), design_id))
