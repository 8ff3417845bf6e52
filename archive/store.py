"""The archive: every design of a run, its evaluations and the run's event log, in one SQLite file.

The database is the run's truth. It runs in WAL mode with a busy timeout; every state change is one
``BEGIN IMMEDIATE`` transaction, so a crash leaves either all of a change or none of it. ``Archive.open(path,
lock=True)`` also takes the run lock (:mod:`archive.lock`) so that only one process writes to a run.
Group several changes into one atomic change with ``with archive.transaction(): ...`` (nested transactions
are savepoints). One ``Archive`` may be shared by the threads of a process; its calls are serialised.

Evaluations live in :mod:`archive.evaluations`, run metadata and the event log in :mod:`archive.runlog`,
the report/replay queries in :mod:`archive.queries`.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from archive.errors import AmbiguousDesign, ArchiveError, DuplicateDesign, InvalidTransition, UnknownDesign
from archive.evaluations import EvaluationsMixin
from archive.lock import RunLock
from archive.novelty import Descriptor, NoveltyConfig, compute_novelty
from archive.queries import QueriesMixin
from archive.records import Design, dumps, loads, merge_tokens, score_from_row
from archive.runlog import RunLogMixin
from archive.schema import AUDIT_VERDICTS, DESIGN_TRANSITIONS, migrate

DB_NAME = "archive.sqlite"
DB_SUFFIXES = (".sqlite", ".sqlite3", ".db")
BASELINE_KEY = "baseline"


class Archive(RunLogMixin, EvaluationsMixin, QueriesMixin):
    """The open archive of one run. Create it with :meth:`open`; close it (or use ``with``) when done."""

    def __init__(self, conn: sqlite3.Connection, path: Path, run_lock: RunLock | None,
                 novelty: NoveltyConfig):
        self._conn = conn
        self.path = path
        self.run_lock = run_lock
        self.novelty_config = novelty
        self._mutex = threading.RLock()
        self._depth = 0

    # -- opening and transactions -------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike, *, lock: bool = True, novelty: NoveltyConfig | None = None,
             busy_timeout_s: float = 30.0) -> Archive:
        """Open (creating if needed) the archive at ``path``: a run directory (its ``archive.sqlite``), or a
        database file named ``*.sqlite``, ``*.sqlite3`` or ``*.db``. With ``lock=True`` take the run lock
        (``<db>.lock``) first; raises :class:`~archive.errors.ArchiveLocked` naming the holder's pid if
        another live process has it. ``lock=False`` is for read-only inspection of a live run."""
        path = Path(path)
        if path.is_dir() or path.suffix not in DB_SUFFIXES:
            path = path / DB_NAME
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArchiveError(f"cannot create the run directory {path.parent}: {exc.strerror}.") from exc
        run_lock = RunLock(path.with_name(path.name + ".lock")).acquire() if lock else None
        try:
            conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.Error as exc:
            if run_lock:
                run_lock.release()
            raise ArchiveError(f"cannot open the archive {path}: {exc}. Check the path and its "
                               "permissions.") from exc
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise ArchiveError(f"the archive {path} could not switch to WAL mode (got {mode!r}); put the "
                                   "run directory on a local file system.")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            migrate(conn, str(path))
        except BaseException:
            conn.close()
            if run_lock:
                run_lock.release()
            raise
        return cls(conn, path, run_lock, novelty or NoveltyConfig())

    @property
    def run_dir(self) -> Path:
        return self.path.parent

    def close(self) -> None:
        """Close the database and release the run lock. Safe to call twice."""
        with self._mutex:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self.run_lock:
                self.run_lock.release()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ArchiveError(f"the archive {self.path} is closed; open it again with Archive.open().")
        return self._conn

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """All reads inside see one consistent state of a live archive (a deferred read transaction in WAL mode
        takes no write lock, so a running engine is never blocked)."""
        with self._mutex:
            conn = self._connection()
            conn.execute("BEGIN DEFERRED")
            try:
                yield
            finally:
                conn.execute("ROLLBACK")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic change: everything inside commits together or not at all (nested: a savepoint)."""
        with self._mutex:
            conn = self._connection()
            depth = self._depth
            try:
                conn.execute("BEGIN IMMEDIATE" if depth == 0 else f"SAVEPOINT sp{depth}")
            except sqlite3.OperationalError as exc:
                raise ArchiveError(f"cannot write to the archive {self.path}: {exc}. Another process kept it "
                                   "busy past the busy timeout; stop it or retry.") from exc
            self._depth += 1
            try:
                yield conn
            except BaseException:
                self._depth -= 1
                if depth == 0:
                    conn.execute("ROLLBACK")
                else:
                    conn.execute(f"ROLLBACK TO sp{depth}")
                    conn.execute(f"RELEASE sp{depth}")
                raise
            self._depth -= 1
            try:
                conn.execute("COMMIT" if depth == 0 else f"RELEASE sp{depth}")
            except BaseException:
                if depth == 0 and conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._mutex:
            return self._connection().execute(sql, params).fetchall()

    # -- the no-memory baseline -----------------------------------------------------------------------------

    @property
    def baseline(self) -> str | None:
        """Id of the no-memory baseline design that rewards are normalised against (``None``: not set)."""
        return self.get_meta(BASELINE_KEY)

    def set_baseline(self, design_id: str) -> None:
        """Mark ``design_id`` as the no-memory baseline and recompute every design's normalised reward."""
        with self.transaction() as conn:
            self._require(design_id)
            self.set_meta(BASELINE_KEY, design_id)
            self._recompute_rewards(conn)

    # -- designs ------------------------------------------------------------------------------------------

    def add_design(self, design_id: str, source: str, *, proposer: str, parents: Sequence[str] = (),
                   name: str | None = None, generation: int | None = None, step: int = 0,
                   analysis: str | None = None, plan: str | None = None,
                   code_vector: Sequence[float] | None = None, tokens: Mapping | None = None,
                   wall_s: float = 0.0, exist_ok: bool = False) -> Design:
        """Archive a new design with status ``proposed``.

        ``design_id`` is the content hash of ``source`` (the caller computes it); ``parents`` must already be
        archived; ``generation`` defaults to 1 + the parents' highest (0 without parents);
        ``tokens``/``wall_s`` are the proposal's costs. Raises :class:`DuplicateDesign` if the id exists
        (``exist_ok``: return it).
        """
        if not design_id or not isinstance(design_id, str):
            raise ArchiveError(f"a design id must be a non-empty string, got {design_id!r}.")
        if not proposer:
            raise ArchiveError(f"design {design_id!r}: proposer must name who proposed it (e.g. 'seed').")
        parents = list(dict.fromkeys(parents))
        code = [float(x) for x in code_vector] if code_vector is not None else None
        now = time.time()
        with self.transaction() as conn:
            if design_id in self:
                if exist_ok:
                    return self.get(design_id)
                raise DuplicateDesign(design_id, str(self.path))
            parent_generations = [self._require(p)["generation"] for p in parents]
            if generation is None:
                generation = 1 + max(parent_generations) if parents else 0
            conn.execute(
                "INSERT INTO designs(id, name, source, parents, proposer, generation, step, analysis, plan, "
                "code_vector, tokens, wall_s, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (design_id, name or design_id[:12], source, dumps(parents), proposer, generation, step,
                 analysis, plan, dumps(code) if code is not None else None, dumps(merge_tokens({}, tokens)),
                 float(wall_s), now, now))
            conn.executemany("INSERT INTO design_parents(child, parent, position) VALUES (?, ?, ?)",
                             [(design_id, p, i) for i, p in enumerate(parents)])
            if code is not None:
                self.refresh_novelty()
        return self.get(design_id)

    def __contains__(self, design_id: object) -> bool:
        return bool(self._rows("SELECT 1 FROM designs WHERE id = ?", (design_id,)))

    def _require(self, design_id: str) -> sqlite3.Row:
        rows = self._rows("SELECT * FROM designs WHERE id = ?", (design_id,))
        if not rows:
            raise UnknownDesign(design_id, str(self.path))
        return rows[0]

    def resolve(self, id_or_prefix: str) -> str:
        """The full id of the design whose id is or starts with ``id_or_prefix``."""
        if not id_or_prefix:
            raise UnknownDesign(id_or_prefix, str(self.path), "Pass a design id or a prefix of one.")
        if id_or_prefix in self:
            return id_or_prefix
        rows = self._rows("SELECT id FROM designs WHERE substr(id, 1, ?) = ? ORDER BY rowid LIMIT 50",
                          (len(id_or_prefix), id_or_prefix))
        ids = [r["id"] for r in rows]
        if len(ids) > 1:
            raise AmbiguousDesign(id_or_prefix, str(self.path), ids)
        if not ids:
            raise UnknownDesign(id_or_prefix, str(self.path))
        return ids[0]

    def get(self, id_or_prefix: str) -> Design:
        """The design with this id or unique id prefix (:class:`UnknownDesign` / :class:`AmbiguousDesign`)."""
        return self._designs("WHERE id = ?", (self.resolve(id_or_prefix),))[0]

    def designs(self, status: str | Iterable[str] | None = None) -> list[Design]:
        """All designs (optionally only those with the given status or statuses), oldest first."""
        if status is None:
            return self._designs("", ())
        statuses = [status] if isinstance(status, str) else list(status)
        return self._designs(f"WHERE status IN ({','.join('?' * len(statuses))})", statuses)

    def count(self, status: str | None = None) -> int:
        if status is None:
            return self._rows("SELECT count(*) FROM designs")[0][0]
        return self._rows("SELECT count(*) FROM designs WHERE status = ?", (status,))[0][0]

    def _designs(self, where: str, params: Sequence[Any]) -> list[Design]:
        with self._mutex:
            rows = self._rows(f"SELECT * FROM designs {where} ORDER BY rowid", params)
            ids = [r["id"] for r in rows]
            scores: dict[str, list] = {i: [] for i in ids}
            for chunk in range(0, len(ids), 500):
                part = ids[chunk:chunk + 500]
                for s in self._rows(f"SELECT * FROM scores WHERE design_id IN ({','.join('?' * len(part))}) "
                                    "ORDER BY benchmark, split", part):
                    scores[s["design_id"]].append(score_from_row(s))
        return [Design.from_row(r, scores[r["id"]]) for r in rows]

    def _update(self, design_id: str, **columns: Any) -> None:
        sets = ", ".join(f"{name} = ?" for name in columns)
        with self.transaction() as conn:
            cur = conn.execute(f"UPDATE designs SET {sets}, updated_at = ? WHERE id = ?",
                               (*columns.values(), time.time(), design_id))
            if cur.rowcount == 0:
                raise UnknownDesign(design_id, str(self.path))

    def set_status(self, design_id: str, status: str, reason: str | None = None) -> Design:
        """Move a design along ``proposed -> evaluating -> evaluated | failed`` (or ``proposed -> invalid``;
        ``evaluated``/``failed -> evaluating`` for more evaluations). Raises :class:`InvalidTransition`."""
        with self.transaction():
            current = self._require(design_id)["status"]
            allowed = DESIGN_TRANSITIONS.get(current, ())
            if status not in allowed:
                raise InvalidTransition(f"design {design_id!r} in {self.path}", current, status, allowed)
            self._update(design_id, status=status, status_reason=reason)
            if status == "invalid" or current == "invalid":
                self.refresh_novelty()
        return self.get(design_id)

    def set_notes(self, design_id: str, *, analysis: str | None = None, plan: str | None = None) -> None:
        """Store the meta agent's analysis and plan text (``None`` leaves a field as it is)."""
        columns = {k: v for k, v in (("analysis", analysis), ("plan", plan)) if v is not None}
        if columns:
            self._update(design_id, **columns)

    def set_findings(self, design_id: str, findings: Sequence[Any]) -> None:
        """Store the validation findings (JSON-serialisable items: strings or dicts)."""
        self._update(design_id, findings=dumps(list(findings)))

    def set_audit(self, design_id: str, verdict: str, note: str | None = None) -> None:
        """Record the replay/audit verdict: ``clean``, ``suspicious`` or ``hostile`` (hostile: never a
        parent)."""
        if verdict not in AUDIT_VERDICTS:
            raise ArchiveError(f"audit verdict must be one of {', '.join(AUDIT_VERDICTS)}, got {verdict!r}.")
        self._update(design_id, audit=verdict, audit_note=note)

    def set_code_vector(self, design_id: str, vector: Sequence[float]) -> None:
        """Store the design's code-structure vector and refresh every design's novelty (one transaction)."""
        with self.transaction():
            self._update(design_id, code_vector=dumps([float(x) for x in vector]))
            self.refresh_novelty()

    def add_artefacts(self, design_id: str, paths: Iterable[str | os.PathLike]) -> None:
        """Append evaluation artefact paths (prefer paths relative to the run directory)."""
        with self.transaction():
            current = loads(self._require(design_id)["artefacts"], [])
            new = [p for p in dict.fromkeys(str(p) for p in paths) if p not in current]
            if new:
                self._update(design_id, artefacts=dumps(current + new))

    def add_costs(self, design_id: str, tokens: Mapping | None = None, wall_s: float = 0.0) -> None:
        """Add token counts (``{model: {counter: n}}``) and wall time to the design's costs."""
        with self.transaction():
            row = self._require(design_id)
            merged = merge_tokens(loads(row["tokens"], {}), tokens)
            self._update(design_id, tokens=dumps(merged), wall_s=row["wall_s"] + float(wall_s))

    # -- novelty ------------------------------------------------------------------------------------------

    def refresh_novelty(self) -> dict[str, float | None]:
        """Recompute every design's novelty against the others (one transaction); returns ``{id: novelty}``.

        Designs take part unless ``invalid``: behaviour is the pooled per-task success over all benchmark/
        splits (task key ``benchmark/split/task_id``), code the stored code vector. The ``descriptor`` column
        keeps what else the value came from (k, weights, normalised code, nearest neighbours); the record
        adds the behaviour and raw code back. Called automatically when a score or code vector changes; only
        rows whose values changed are written.
        """
        cfg = self.novelty_config
        with self.transaction() as conn:
            rows = conn.execute("SELECT id, code_vector, novelty, descriptor FROM designs "
                                "WHERE status != 'invalid' ORDER BY rowid").fetchall()
            behaviour: dict[str, dict[str, float]] = {r["id"]: {} for r in rows}
            for s in conn.execute("SELECT design_id, benchmark, split, successes FROM scores"):
                if s["design_id"] in behaviour:
                    for task, value in loads(s["successes"], {}).items():
                        behaviour[s["design_id"]][f"{s['benchmark']}/{s['split']}/{task}"] = value
            ids, descriptors, old = [], [], {}
            for r in rows:
                code = loads(r["code_vector"])
                if behaviour[r["id"]] or code is not None:
                    ids.append(r["id"])
                    descriptors.append(Descriptor(behaviour=behaviour[r["id"]], code=code))
                    old[r["id"]] = (r["novelty"], r["descriptor"])
            results = compute_novelty(ids, descriptors, cfg)
            placeholders = ",".join("?" * len(ids))
            conn.execute(f"UPDATE designs SET novelty = NULL, descriptor = NULL WHERE descriptor IS NOT NULL "
                         f"AND id NOT IN ({placeholders})", ids)
            weights = {"behaviour": cfg.behaviour_weight, "code": cfg.code_weight}
            for design_id in ids:
                res = results[design_id]
                text = dumps({"k": res.k, "weights": weights, "code_normalised": res.code_normalised,
                              "neighbours": [{"id": i, "distance": d} for i, d in res.neighbours]})
                if old[design_id] != (res.novelty, text):
                    conn.execute("UPDATE designs SET novelty = ?, descriptor = ? WHERE id = ?",
                                 (res.novelty, text, design_id))
        return {i: results[i].novelty for i in ids}
