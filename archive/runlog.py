"""Run metadata and the run's event log (mixed into :class:`archive.store.Archive`).

``meta`` holds JSON values by key (the no-memory baseline, selector states, whatever the engine needs to
resume). ``events`` is the append-only log of the run: a step number, a kind (``propose``, ``select``,
``step_done``, ...) and a JSON payload, so that a run can be resumed from the database alone.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from archive.errors import UnknownDesign
from archive.records import Event, dumps, loads


class RunLogMixin:
    """Metadata and event log; relies on the :class:`~archive.store.Archive` core."""

    def get_meta(self, key: str, default: Any = None) -> Any:
        rows = self._rows("SELECT value FROM meta WHERE key = ?", (key,))
        return loads(rows[0]["value"]) if rows else default

    def set_meta(self, key: str, value: Any) -> None:
        """Store a JSON value under ``key`` (run config, selector state, ...)."""
        text = dumps(value)
        with self.transaction() as conn:
            conn.execute("INSERT INTO meta(key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT(key) "
                         "DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                         (key, text, time.time()))

    def record_event(self, kind: str, payload: Any = None, *, step: int | None = None) -> Event:
        """Append an event (``kind`` and a JSON payload) to the run log; returns it with its sequence
        number."""
        text = dumps(payload if payload is not None else {})
        with self.transaction() as conn:
            cur = conn.execute("INSERT INTO events(step, kind, payload, created_at) VALUES (?, ?, ?, ?)",
                               (step, kind, text, time.time()))
            row = conn.execute("SELECT * FROM events WHERE seq = ?", (cur.lastrowid,)).fetchone()
        return Event.from_row(row)

    def events(self, kind: str | None = None, *, step: int | None = None, after_seq: int = 0) -> list[Event]:
        """Events in order, optionally of one ``kind``, one ``step``, or after sequence number
        ``after_seq``."""
        sql, params = "SELECT * FROM events WHERE seq > ?", [after_seq]
        if kind is not None:
            sql, params = sql + " AND kind = ?", [*params, kind]
        if step is not None:
            sql, params = sql + " AND step = ?", [*params, step]
        return [Event.from_row(r) for r in self._rows(sql + " ORDER BY seq", params)]

    def last_step(self) -> int | None:
        """The highest step number in the event log (where a resumed run continues from)."""
        return self._rows("SELECT max(step) FROM events")[0][0]

    def record_selection(self, selected: Sequence[str], *, step: int | None, strategy: str,
                         probabilities: Mapping[str, float] | None = None, state_key: str | None = None,
                         state: Any = None) -> Event:
        """In one transaction: add a visit to each selected design (once per time it was drawn), log a
        ``select`` event and, if ``state_key`` is given, save the selector's RNG ``state`` under it."""
        with self.transaction() as conn:
            for design_id in selected:
                cur = conn.execute("UPDATE designs SET visits = visits + 1, updated_at = ? WHERE id = ?",
                                   (time.time(), design_id))
                if cur.rowcount == 0:
                    raise UnknownDesign(design_id, str(self.path))
            if state_key is not None:
                self.set_meta(state_key, state)
            return self.record_event("select", {"selected": list(selected), "strategy": strategy,
                                                "probabilities": dict(probabilities or {})}, step=step)
