"""Trajectory retrieval: episodic memory of whole past trajectories, recalled by task similarity.

The classic retrieval-augmented baseline of agent-memory work (raw-trajectory exemplars, as in Synapse /
"trajectory as exemplar" prompting, and the "trajectory retrieval" baseline of ALMA, arXiv 2602.07755):

* ``update`` stores every episode as it happened (goal, first observation, the actions with what they earned,
  the outcome) together with an embedding of *goal + first observation*.
* ``retrieve`` embeds the new task's goal + first observation, ranks the stored trajectories by cosine
  similarity with a bonus for successful ones, and renders the top ``TOP_K`` as text: for a solved task the
  action sequence that solved it, for an unsolved one only the actions that earned reward (so that a failed
  attempt's dead ends are not suggested as things to do); a failure that earned nothing is not shown.

No LLM is used. State lives only in SQLite at ``toolkit.db_path``; if the embedder fails, similarity falls back
to word overlap (Jaccard).
"""

from __future__ import annotations

import json
import re
import sqlite3

import numpy as np

from harness.design import MemoryDesign, Toolkit
from harness.types import Episode, Step, Task

TOP_K = 2  # trajectories shown per task
WIN_BONUS = 0.15  # added to the similarity of a successful trajectory ("prefer successful ones")
MAX_TEXT_CHARS = 3000  # bound of the rendered memory text
MAX_STORED_OBS = 300  # characters of each step's observation kept in the database

_WORD_RE = re.compile(r"[a-z0-9']+")
_NOOP_ACTIONS = {"look", "l", "inventory", "i", "score", "goal", "help", "wait", "z"}
_NO_EFFECT_RE = re.compile(
    r"^\s*(you can't|you cannot|that's not|i don't|i didn't|i only understood|you don't see|"
    r"nothing happens|there is no|you see no)",
    re.IGNORECASE,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS trajectories (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL,
    benchmark TEXT NOT NULL,
    goal TEXT NOT NULL,
    observation TEXT NOT NULL,
    steps TEXT NOT NULL,          -- JSON list of {action, observation, reward}
    won INTEGER NOT NULL,
    reward REAL NOT NULL,
    progress REAL NOT NULL,
    key_text TEXT NOT NULL,       -- goal + first observation, the text that was embedded
    embedding BLOB                -- float32 unit vector, NULL if the embedder failed
);
"""


# ---------------------------------------------------------------- helpers (a genome is one module)


def _words(text: str) -> set[str]:
    return {w for w in _WORD_RE.findall(text.lower()) if len(w) > 2}


def _lexical_similarity(a: str, b: str) -> float:
    wa, wb = _words(a), _words(b)
    if not wa or not wb:
        return 0.0
    return len(wa & wb) / len(wa | wb)


def _task_key(goal: str, observation: str) -> str:
    return f"{' '.join(goal.split())}\n{' '.join(observation.split())[:400]}"


def _pack(vec: np.ndarray | None) -> bytes | None:
    return None if vec is None else np.asarray(vec, dtype=np.float32).tobytes()


def _unpack(blob: bytes | None) -> np.ndarray | None:
    if not blob:
        return None
    return np.frombuffer(blob, dtype=np.float32)


async def _embed_texts(toolkit: Toolkit, texts: list[str]) -> list[np.ndarray | None]:
    """Unit vectors for ``texts``; ``None`` for any the embedder could not give (never raises)."""
    try:
        raw = await toolkit.embed(list(texts))
    except Exception:
        return [None] * len(texts)
    if not isinstance(raw, (list, tuple)) or len(raw) != len(texts):
        return [None] * len(texts)
    out: list[np.ndarray | None] = []
    for vec in raw:
        try:
            arr = np.asarray(vec, dtype=np.float32).reshape(-1)
        except (TypeError, ValueError):
            out.append(None)
            continue
        norm = float(np.linalg.norm(arr)) if arr.size else 0.0
        out.append(arr / norm if arr.size and np.isfinite(norm) and norm > 0 else None)
    return out


def _similarity(qvec: np.ndarray | None, qtext: str, vec: np.ndarray | None, text: str) -> float:
    if qvec is not None and vec is not None and qvec.shape == vec.shape:
        return float(np.dot(qvec, vec))
    return _lexical_similarity(qtext, text)


def _key_actions(steps: list[dict]) -> list[str]:
    """The actions of a trajectory without look/inventory, no-effect commands and immediate repeats."""
    out: list[str] = []
    for step in steps:
        action = " ".join(str(step.get("action", "")).split())
        if not action or action.lower() in _NOOP_ACTIONS:
            continue
        if float(step.get("reward", 0.0) or 0.0) <= 0 and _NO_EFFECT_RE.match(str(step.get("observation", ""))):
            continue
        if out and out[-1] == action:
            continue
        out.append(action)
    return out


def _join_actions(actions: list[str], budget: int) -> str:
    """``a -> b -> c``; when too long, keeps the start and (mostly) the end, where the task is finished."""
    sep = " -> "
    text = sep.join(actions)
    if len(text) <= budget:
        return text
    head: list[str] = []
    used = len(sep) + 3  # the "..." marker
    for action in actions:
        if used + len(action) + len(sep) > budget // 3:
            break
        head.append(action)
        used += len(action) + len(sep)
    tail: list[str] = []
    for action in reversed(actions[len(head):]):
        if used + len(action) + len(sep) > budget:
            break
        tail.insert(0, action)
        used += len(action) + len(sep)
    if not head and not tail:
        return text[:budget]
    return sep.join(head + ["..."] + tail)


def _step_record(step: Step) -> dict:
    return {
        "action": str(step.action),
        "observation": str(step.observation)[:MAX_STORED_OBS],
        "reward": float(step.reward or 0.0),
    }


class _Database:
    """``with _Database(path) as db:`` -- a short-lived connection: committed (or rolled back) and closed on
    exit, so the scratch directory can be copied between episodes."""

    def __init__(self, path):
        self.path = str(path)
        self.conn: sqlite3.Connection | None = None

    def __enter__(self) -> sqlite3.Connection:
        self.conn = sqlite3.connect(self.path, timeout=30)
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is None:
                self.conn.commit()
            else:
                self.conn.rollback()
        finally:
            self.conn.close()
        return False


# ---------------------------------------------------------------- the design


class TrajectoryRetrieval(MemoryDesign):
    """Stores every trajectory; recalls the ``TOP_K`` most similar ones (successful first) as text."""

    def __init__(self, toolkit: Toolkit):
        super().__init__(toolkit)
        self.toolkit.scratch_dir.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(_SCHEMA)

    def _connect(self) -> _Database:
        return _Database(self.toolkit.db_path)

    async def retrieve(self, task: Task) -> dict:
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, goal, observation, steps, won, progress, key_text, embedding FROM trajectories"
            ).fetchall()
        if not rows:
            return {}
        query = _task_key(task.goal, task.observation)
        qvec = (await _embed_texts(self.toolkit, [query]))[0]
        scored = []
        for row_id, goal, obs, steps_json, won, progress, key_text, blob in rows:
            sim = _similarity(qvec, query, _unpack(blob), key_text)
            scored.append((sim + WIN_BONUS * bool(won), sim, row_id, goal, obs, steps_json, bool(won), progress))
        scored.sort(key=lambda r: (r[0], r[2]), reverse=True)

        chosen, seen = [], set()
        for entry in scored:
            steps = _safe_steps(entry[5])
            if not entry[6] and not any(float(s.get("reward", 0) or 0) > 0 for s in steps):
                continue  # a failure that earned nothing has nothing to show but its goal's (misleading) words
            signature = (entry[3], tuple(_key_actions(steps)), entry[6])
            if signature in seen:
                continue
            seen.add(signature)
            chosen.append((entry, steps))
            if len(chosen) == TOP_K:
                break
        if not chosen:
            return {}

        budget = (MAX_TEXT_CHARS - 120) // max(1, len(chosen))
        parts = [f"Past trajectories of the {len(chosen)} most similar tasks (successful ones preferred):"]
        for n, ((_, sim, _, goal, obs, _, won, progress), steps) in enumerate(chosen, 1):
            parts.append(_render(n, sim, goal, obs, steps, won, progress, budget))
        text = "\n".join(parts)[:MAX_TEXT_CHARS]
        return {"text": text, "trajectory_ids": [entry[2] for entry, _ in chosen]}

    async def update(self, episode: Episode) -> None:
        task = episode.task
        key = _task_key(task.goal, task.observation)
        vec = (await _embed_texts(self.toolkit, [key]))[0]
        steps = [_step_record(s) for s in episode.steps]
        with self._connect() as db:
            db.execute(
                "INSERT INTO trajectories (task_id, benchmark, goal, observation, steps, won, reward, progress, "
                "key_text, embedding) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    task.task_id, task.benchmark, task.goal, task.observation[:2000], json.dumps(steps),
                    int(bool(episode.won)), float(episode.reward or 0.0), float(episode.progress or 0.0),
                    key, _pack(vec),
                ),
            )


def _safe_steps(steps_json: str) -> list[dict]:
    try:
        steps = json.loads(steps_json)
    except (TypeError, ValueError):
        return []
    return [s for s in steps if isinstance(s, dict)] if isinstance(steps, list) else []


def _render(n: int, sim: float, goal: str, obs: str, steps: list[dict], won: bool, progress: float,
            budget: int) -> str:
    goal_line = " ".join(goal.split())[:300]
    start = " ".join(obs.split())[:200]
    rewarded = [" ".join(s["action"].split()) for s in steps if float(s.get("reward", 0) or 0) > 0]
    head = f"[{n}] {'SOLVED' if won else 'NOT SOLVED'} (similarity {sim:.2f}"
    head += ")" if won else f", progress {progress:.0%})"
    lines = [head, f"Goal: {goal_line}"]
    if won:
        lines.append(f"Start: {start}")  # where the remembered sequence begins; noise for a failed attempt
    room = max(80, budget - sum(len(x) + 1 for x in lines) - 60)
    if won:
        actions = _key_actions(steps)
        lines.append(f"Actions that solved it: {_join_actions(actions, room)}")
        if rewarded and len(rewarded) < len(actions):
            lines.append(f"Steps that earned reward: {_join_actions(rewarded, 300)}")
    else:
        if rewarded:
            lines.append(f"Actions that earned progress: {_join_actions(rewarded, room // 2)}")
        lines.append(f"It did not solve the task in {len(steps)} steps.")
    return "\n".join(lines)
