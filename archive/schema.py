"""The archive's SQLite schema and its state machines.

Kept in code (not a ``.sql`` data file) so that it always ships with the package. ``PRAGMA user_version``
holds :data:`SCHEMA_VERSION`; :func:`migrate` creates a fresh database and refuses one written by a newer
version. JSON columns hold UTF-8 JSON text; times are Unix seconds (float).
"""

from __future__ import annotations

import sqlite3

from archive.errors import ArchiveError

SCHEMA_VERSION = 1

DESIGN_STATUSES = ("proposed", "invalid", "evaluating", "evaluated", "failed")
#: Allowed design status changes. ``evaluated``/``failed`` may go back to ``evaluating`` (a new benchmark or
#: split, a retry after an infrastructure failure); ``invalid`` is final.
DESIGN_TRANSITIONS: dict[str, tuple[str, ...]] = {
    "proposed": ("evaluating", "invalid"),
    "evaluating": ("evaluated", "failed"),
    "evaluated": ("evaluating",),
    "failed": ("evaluating",),
    "invalid": (),
}
AUDIT_VERDICTS = ("clean", "suspicious", "hostile")

EVALUATION_STATUSES = ("running", "done", "failed")
EVALUATION_TRANSITIONS: dict[str, tuple[str, ...]] = {"running": ("done", "failed"), "done": (), "failed": ()}
#: ``score`` evaluations count towards the design's scores; ``replay`` ones (audits, re-runs) are only
#: recorded.
EVALUATION_PURPOSES = ("score", "replay")


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


DDL = f"""
CREATE TABLE IF NOT EXISTS meta (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,              -- JSON
    updated_at REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS designs (
    id            TEXT PRIMARY KEY,        -- content hash of the source (given by the caller)
    name          TEXT NOT NULL,
    source        TEXT NOT NULL,
    parents       TEXT NOT NULL DEFAULT '[]',   -- JSON list of design ids, in the proposer's order
    proposer      TEXT NOT NULL,           -- seed, meta_agent, mutate:constants, crossover, ...
    generation    INTEGER NOT NULL CHECK (generation >= 0),
    step          INTEGER NOT NULL DEFAULT 0,   -- evolve step that proposed it (seeds: 0)
    status        TEXT NOT NULL DEFAULT 'proposed' CHECK (status IN {_in(DESIGN_STATUSES)}),
    status_reason TEXT,
    score         REAL,                    -- mean over its (benchmark, split) scores
    stderr        REAL,
    reward        REAL,                    -- score minus the no-memory baseline's, mean over shared keys
    novelty       REAL,
    descriptor    TEXT,                    -- JSON: behaviour, code (raw + normalised), neighbours, k
    code_vector   TEXT,                    -- JSON list of floats from the caller (libcst structure)
    visits        INTEGER NOT NULL DEFAULT 0 CHECK (visits >= 0),
    tokens        TEXT NOT NULL DEFAULT '{{}}', -- JSON {{model: {{counter: int}}}}, proposal + evaluations
    wall_s        REAL NOT NULL DEFAULT 0,
    analysis      TEXT,
    plan          TEXT,
    findings      TEXT NOT NULL DEFAULT '[]',   -- JSON list of validation findings
    audit         TEXT CHECK (audit IS NULL OR audit IN {_in(AUDIT_VERDICTS)}),
    audit_note    TEXT,
    artefacts     TEXT NOT NULL DEFAULT '[]',   -- JSON list of paths (relative to the run directory)
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS design_parents (
    child    TEXT NOT NULL REFERENCES designs(id),
    parent   TEXT NOT NULL REFERENCES designs(id),
    position INTEGER NOT NULL,
    PRIMARY KEY (child, parent)
);
CREATE INDEX IF NOT EXISTS design_parents_parent ON design_parents(parent);

CREATE TABLE IF NOT EXISTS scores (
    design_id  TEXT NOT NULL REFERENCES designs(id),
    benchmark  TEXT NOT NULL,
    split      TEXT NOT NULL,
    score      REAL NOT NULL,
    stderr     REAL NOT NULL,
    reward     REAL,                       -- score minus the baseline's score on the same benchmark/split
    n          INTEGER NOT NULL,           -- evaluations pooled
    successes  TEXT NOT NULL DEFAULT '{{}}', -- JSON {{task_id: mean success}}
    updated_at REAL NOT NULL,
    PRIMARY KEY (design_id, benchmark, split)
);

CREATE TABLE IF NOT EXISTS evaluations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    design_id   TEXT NOT NULL REFERENCES designs(id),
    benchmark   TEXT NOT NULL,
    split       TEXT NOT NULL,
    mode        TEXT NOT NULL,
    attempt     INTEGER NOT NULL CHECK (attempt >= 1),
    purpose     TEXT NOT NULL DEFAULT 'score' CHECK (purpose IN {_in(EVALUATION_PURPOSES)}),
    status      TEXT NOT NULL CHECK (status IN {_in(EVALUATION_STATUSES)}),
    outcome     TEXT,                      -- ok, design_error, timeout, oom, sandbox_error, ...
    score       REAL,
    stderr      REAL,
    successes   TEXT,                      -- JSON {{task_id: success in [0, 1]}}
    usage       TEXT NOT NULL DEFAULT '{{}}',
    wall_s      REAL,
    error       TEXT,
    artefacts   TEXT NOT NULL DEFAULT '[]',
    runs        INTEGER NOT NULL DEFAULT 1, -- times started (restarts after a crash)
    started_at  REAL NOT NULL,
    finished_at REAL,
    UNIQUE (design_id, benchmark, split, attempt)
);
CREATE INDEX IF NOT EXISTS evaluations_status ON evaluations(status);

CREATE TABLE IF NOT EXISTS events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    step       INTEGER,
    kind       TEXT NOT NULL,
    payload    TEXT NOT NULL DEFAULT '{{}}',
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_step ON events(step);
"""


def migrate(conn: sqlite3.Connection, where: str) -> None:
    """Create the schema in an empty database; accept the current version; refuse a newer one."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise ArchiveError(
            f"archive {where} has schema version {version}, newer than this alma-engine's "
            f"{SCHEMA_VERSION}. Upgrade alma-engine to open it.")
    if version == SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in DDL.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
