"""G-Memory: a three-tier hierarchical graph memory (insights / queries / interactions).

After Zhang et al., "G-Memory: Tracing Hierarchical Memory for Multi-Agent Systems" (2025), for one agent:

* **query graph** (middle tier) -- one node per task played (goal + first observation, its embedding and
  outcome); an edge links a new query to the queries that were retrieved for it and to its most similar
  predecessors, so related tasks form neighbourhoods;
* **interaction graph** (bottom tier) -- per query, the trajectory as a chain of step nodes (action, what the
  game answered, reward), sparsified at read time to its key steps (the cleaned action sequence of a success,
  the rewarded actions of a failure);
* **insight graph** (top tier) -- short LLM-distilled rules, each linked to the set of queries that support it.

``retrieve`` finds the ``SEED_K`` query nodes most similar to the new task, expands them by one hop on the
query graph, then traverses *upward* to the insights supported by those queries (ranked by how strongly the
related queries support them and by their track record) and *downward* to their interaction graphs (successful
ones preferred; a failure that earned no reward has no key step and is skipped), and renders both.
``update`` adds the query node and its edges, stores the interaction graph, reinforces the insights that were
shown (score up after a win, down after a loss; a win also adds the query to their support) and asks the LLM
for 1-3 new insights by contrasting the new trajectory with related ones; a near-duplicate of an existing
insight is merged into it instead of added.

Robustness choices: malformed LLM output, and insights that only restate the goal or name nothing the episode
acted on or started with, are ignored; without a usable insight a non-LLM one is written instead (the decisive
actions of a win -- those that earned reward and the ones that finished it -- or the rewarded actions of a
loss). If the embedder fails, similarity falls back to word overlap. The graph lives only in SQLite at
``toolkit.db_path``.
"""

from __future__ import annotations

import json
import re
import sqlite3

import numpy as np

from harness.design import MemoryDesign, Toolkit
from harness.types import Episode, Task

INSIGHT_SYSTEM = (
    "You distil short, general, reusable insights from an agent's experience in text-based games. "
    "Reply with one JSON object and nothing else."
)

INSIGHT_PROMPT = """The agent just {outcome} the task below. Related past tasks and how they went are listed for
comparison. Write 1 to 3 insights: short general rules that explain the success or failure and would help on
similar tasks. Name the concrete commands and objects that mattered.

CURRENT TASK
Goal: {goal}
Trajectory ("> command" then what the game answered):
{trajectory}

RELATED PAST TASKS
{related}

Reply with a JSON object of this form: {"insights": ["<insight 1>", "<insight 2>"]}"""

SEED_K = 2  # most similar query nodes the walk starts from
MAX_QUERIES = 5  # query nodes kept after the 1-hop expansion
TRAJ_K = 2  # interaction graphs shown
INSIGHT_K = 4  # insights shown
LINK_K = 3  # similar earlier queries a new query is linked to
WIN_BONUS = 0.15  # similarity bonus of a successful trajectory when choosing which to show
MERGE_SIMILARITY = 0.92  # a new insight at least this similar to an existing one is merged into it
MIN_INSIGHT_SCORE = -2.0  # insights whose score fell to this are no longer shown
MAX_TEXT_CHARS = 3000
INSIGHT_BUDGET = 1100  # characters of the insight tier in the retrieved text; the rest is for trajectories
LLM_MAX_TOKENS = 300

_WORD_RE = re.compile(r"[a-z0-9']+")
_NOOP_ACTIONS = {"look", "l", "inventory", "i", "score", "goal", "help", "wait", "z"}
_NO_EFFECT_RE = re.compile(
    r"^\s*(you can't|you cannot|that's not|i don't|i didn't|i only understood|you don't see|"
    r"nothing happens|there is no|you see no)",
    re.IGNORECASE,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL,
    goal TEXT NOT NULL,
    observation TEXT NOT NULL,
    key_text TEXT NOT NULL,
    embedding BLOB,
    won INTEGER NOT NULL,
    progress REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS query_edges (
    src INTEGER NOT NULL,
    dst INTEGER NOT NULL,
    weight REAL NOT NULL,
    PRIMARY KEY (src, dst)
);
CREATE TABLE IF NOT EXISTS interactions (
    query_id INTEGER PRIMARY KEY,
    steps TEXT NOT NULL            -- JSON chain of step nodes {action, observation, reward}
);
CREATE TABLE IF NOT EXISTS insights (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    text TEXT NOT NULL,
    embedding BLOB,
    score REAL NOT NULL,
    origin TEXT NOT NULL           -- 'llm' or 'fallback'
);
CREATE TABLE IF NOT EXISTS insight_support (
    insight_id INTEGER NOT NULL,
    query_id INTEGER NOT NULL,
    PRIMARY KEY (insight_id, query_id)
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


def _one_line(text: object, limit: int) -> str:
    return " ".join(str(text).split())[:limit] if isinstance(text, str) else ""


def _task_key(goal: str, observation: str) -> str:
    return f"{_one_line(goal, 400)}\n{_one_line(observation, 400)}"


def _pack(vec: np.ndarray | None) -> bytes | None:
    return None if vec is None else np.asarray(vec, dtype=np.float32).tobytes()


def _unpack(blob: bytes | None) -> np.ndarray | None:
    return np.frombuffer(blob, dtype=np.float32) if blob else None


async def _embed_texts(toolkit: Toolkit, texts: list[str]) -> list[np.ndarray | None]:
    """Unit vectors for ``texts``; ``None`` for any the embedder could not give (never raises)."""
    if not texts:
        return []
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


def _parse_json(text: str | None) -> object:
    """The first JSON value found in ``text`` (code fences and chatter tolerated), else ``None``."""
    if not text:
        return None
    text = re.sub(r"```(?:json)?", "", text).strip()
    candidates = [text]
    for open_ch, close_ch in (("{", "}"), ("[", "]")):
        start, end = text.find(open_ch), text.rfind(close_ch)
        if 0 <= start < end:
            candidates.append(text[start:end + 1])
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except (ValueError, RecursionError):
            continue
    return None


def _key_actions(steps: list[dict]) -> list[str]:
    """Sparsified trajectory: actions without look/inventory, no-effect commands and immediate repeats."""
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


def _rewarded_actions(steps: list[dict]) -> list[str]:
    return [" ".join(str(s.get("action", "")).split()) for s in steps if float(s.get("reward", 0) or 0) > 0]


def _join_actions(actions: list[str], budget: int) -> str:
    """``a -> b -> c``; when too long, keeps the start and (mostly) the end, where the task is finished."""
    sep = " -> "
    text = sep.join(actions)
    if len(text) <= budget:
        return text
    head: list[str] = []
    used = len(sep) + 3
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


def _render_steps(steps: list[dict], budget: int = 1400) -> str:
    """``> action`` / observation lines for an LLM prompt, keeping the start and the end when too long."""
    lines = []
    for step in steps:
        reward = float(step.get("reward", 0) or 0)
        mark = f" [reward +{reward:g}]" if reward > 0 else ""
        lines.append(f"> {_one_line(step.get('action', ''), 80)}{mark}\n{_one_line(step.get('observation', ''), 120)}")
    if not lines:
        return "(no actions taken)"
    text = "\n".join(lines)
    if len(text) <= budget:
        return text
    head = lines[:3]
    tail: list[str] = []
    used = sum(len(x) + 1 for x in head) + 30
    for line in reversed(lines[3:]):
        if used + len(line) + 1 > budget:
            break
        tail.insert(0, line)
        used += len(line) + 1
    skipped = len(lines) - len(head) - len(tail)
    return "\n".join(head + [f"... ({skipped} steps omitted) ..."] + tail)


def _safe_steps(steps_json: str | None) -> list[dict]:
    try:
        steps = json.loads(steps_json or "[]")
    except (TypeError, ValueError):
        return []
    return [s for s in steps if isinstance(s, dict)] if isinstance(steps, list) else []


def _sparse_trajectory(goal: str, won: bool, progress: float, steps: list[dict], budget: int) -> str:
    """One interaction graph, sparsified to its key steps, as text."""
    lines = [f"{'SOLVED' if won else 'NOT SOLVED'}: {_one_line(goal, 250)}"]
    if won:
        lines.append(f"Actions that solved it: {_join_actions(_key_actions(steps), max(80, budget - 320))}")
    else:
        rewarded = _rewarded_actions(steps)
        if rewarded:
            lines.append(f"Actions that earned progress: {_join_actions(rewarded, max(80, budget // 2))}")
        lines.append(f"It did not solve the task in {len(steps)} steps (progress {progress:.0%}).")
    return "\n".join(lines)


_GENERIC_WORDS = frozenset(
    "the and but for with from into onto this that these those was were are been being did does not also could "
    "would should can will then than when while because agent agents task tasks goal game games player fail "
    "failed failing failure failures success succeed succeeded successful successfully solve solved solving "
    "unable able try tried trying attempt attempted avoid focus improve make sure need needs use using way "
    "order able step steps action actions command commands".split()
)


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def _content_words(text: str) -> set[str]:
    return {_stem(w) for w in _WORD_RE.findall(text.lower()) if len(w) > 2 and w not in _GENERIC_WORDS}


def _informative(text: str, goal: str, episode_text: str) -> bool:
    """A distilled lesson must say more than the goal and its outcome, and be grounded in what happened: it
    names something beyond the goal's words, and something from the episode's actions or observations."""
    words = _content_words(text)
    return bool(words - _content_words(goal)) and bool(words & _content_words(episode_text))


def _parse_insights(reply: str | None, prompt: str, episode: Episode) -> list[str]:
    """Valid insights from the LLM's reply; echoed placeholders, restatements of the goal and advice not
    grounded in the episode are dropped."""
    grounding = " ".join([episode.task.observation, *(s.action for s in episode.steps)])
    data = _parse_json(reply)
    if isinstance(data, dict):
        for key in ("insights", "rules", "lessons", "items"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
        else:
            data = [data.get("insight")] if isinstance(data.get("insight"), str) else []
    if not isinstance(data, list):
        return []
    out = []
    for raw in data[:3]:
        if isinstance(raw, dict):
            raw = raw.get("insight") or raw.get("text") or raw.get("content")
        text = _one_line(raw, 300)
        if len(text) < 12 or text.startswith("<") or text in prompt or text in out:
            continue
        if not _informative(text, episode.task.goal, grounding):
            continue
        out.append(text)
    return out


def _fallback_insight(episode: Episode, steps: list[dict]) -> str | None:
    """Without the LLM, an insight made of the episode's decisive actions: those that earned reward and, for a
    win, the last actions that finished it (the full sequence stays in the interaction tier)."""
    goal = _one_line(episode.task.goal, 120)
    rewarded = _rewarded_actions(steps)
    if episode.won:
        key = _key_actions(steps)
        decisive = [a for i, a in enumerate(key) if a in rewarded or i >= len(key) - 3]
        return f"To '{goal}', the decisive actions were: {_join_actions(decisive, 220)}." if decisive else None
    if rewarded:
        return (f"On '{goal}', {_join_actions(rewarded, 200)} earned progress but the task still failed; "
                "after those, try objects or rooms not yet used.")
    return None


# ---------------------------------------------------------------- the design


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


class GMemory(MemoryDesign):
    """Insight graph over a query graph over per-query interaction graphs, walked from the most similar tasks."""

    def __init__(self, toolkit: Toolkit):
        super().__init__(toolkit)
        self.toolkit.scratch_dir.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(_SCHEMA)

    def _connect(self) -> _Database:
        return _Database(self.toolkit.db_path)

    def _rank_queries(self, key: str, qvec: np.ndarray | None) -> tuple[dict[int, float], dict[int, tuple]]:
        """Similarity of every query node to ``key``, and the nodes' rows (id -> (goal, won, progress))."""
        with self._connect() as db:
            rows = db.execute("SELECT id, goal, won, progress, key_text, embedding FROM queries").fetchall()
        if not rows:
            return {}, {}
        sims = {row[0]: _similarity(qvec, key, _unpack(row[5]), row[4]) for row in rows}
        return sims, {row[0]: (row[1], bool(row[2]), float(row[3])) for row in rows}

    async def retrieve(self, task: Task) -> dict:
        with self._connect() as db:
            empty = db.execute("SELECT COUNT(*) FROM queries").fetchone()[0] == 0
        if empty:
            return {}
        key = _task_key(task.goal, task.observation)
        sims, nodes = self._rank_queries(key, (await _embed_texts(self.toolkit, [key]))[0])
        if not sims:
            return {}
        seeds = sorted(sims, key=lambda q: (sims[q], q), reverse=True)[:SEED_K]
        marks = ",".join("?" * len(seeds))
        with self._connect() as db:
            hop = [r[0] for r in db.execute(f"SELECT dst FROM query_edges WHERE src IN ({marks})", seeds)]
        expanded = set(seeds) | {q for q in hop if q in sims}
        related = sorted(expanded, key=lambda q: (sims[q], q), reverse=True)[:MAX_QUERIES]

        marks = ",".join("?" * len(related))
        with self._connect() as db:
            steps = {q: _safe_steps(s) for q, s in db.execute(
                f"SELECT query_id, steps FROM interactions WHERE query_id IN ({marks})", related)}
            support = db.execute(
                f"SELECT s.insight_id, s.query_id, i.text, i.score FROM insight_support s "
                f"JOIN insights i ON i.id = s.insight_id WHERE s.query_id IN ({marks}) AND i.score > ?",
                [*related, MIN_INSIGHT_SCORE],
            ).fetchall()

        # upward: insights supported by the related queries
        # (closest supporting query, then breadth of support among the related queries, then track record)
        best: dict[int, float] = {}
        count: dict[int, int] = {}
        record: dict[int, float] = {}
        texts: dict[int, str] = {}
        for insight_id, query_id, text, score in support:
            best[insight_id] = max(best.get(insight_id, -1.0), sims[query_id])
            count[insight_id] = count.get(insight_id, 0) + 1
            record[insight_id], texts[insight_id] = float(score), text
        strength = {i: best[i] + 0.1 * min(count[i] - 1, 3) + 0.05 * record[i] for i in best}
        insight_ids = sorted(strength, key=lambda i: (strength[i], i), reverse=True)[:INSIGHT_K]

        # downward: interaction graphs of the related queries, successful ones preferred; a failure that earned
        # nothing has no key step to show
        useful = [q for q in related if nodes[q][1] or _rewarded_actions(steps.get(q, []))]
        shown = sorted(useful, key=lambda q: (sims[q] + WIN_BONUS * nodes[q][1], q), reverse=True)[:TRAJ_K]

        parts: list[str] = []
        lines = [f"- {texts[i]}" for i in insight_ids]
        while lines and sum(len(x) + 1 for x in lines) > INSIGHT_BUDGET:
            lines.pop()  # the weakest goes first; the interaction tier keeps most of the room
        insight_ids = insight_ids[:len(lines)]
        if lines:
            parts.append("Insights from related tasks:")
            parts.extend(lines)
        room = (MAX_TEXT_CHARS - sum(len(p) + 1 for p in parts) - 60) // max(1, len(shown))
        if shown:
            parts.append("How the most related past tasks went:")
            for n, q in enumerate(shown, 1):
                goal, won, progress = nodes[q]
                parts.append(f"[{n}] " + _sparse_trajectory(goal, won, progress, steps.get(q, []), room))
        if not parts:
            return {"text": "", "query_ids": related, "insight_ids": []}
        return {"text": "\n".join(parts)[:MAX_TEXT_CHARS], "query_ids": related, "insight_ids": insight_ids}

    async def update(self, episode: Episode) -> None:
        task = episode.task
        key = _task_key(task.goal, task.observation)
        vec = (await _embed_texts(self.toolkit, [key]))[0]
        sims, nodes = self._rank_queries(key, vec)
        steps = [{"action": str(s.action), "observation": str(s.observation)[:300], "reward": float(s.reward or 0)}
                 for s in episode.steps]
        retrieved = episode.retrieved if isinstance(episode.retrieved, dict) else {}
        used_queries = [q for q in retrieved.get("query_ids", []) or [] if isinstance(q, int) and q in sims]
        used_insights = [i for i in retrieved.get("insight_ids", []) or [] if isinstance(i, int)]
        nearest = [q for q in sorted(sims, key=lambda q: (sims[q], q), reverse=True)[:LINK_K] if sims[q] > 0]

        # middle and bottom tiers: the query node, its edges, its interaction graph
        with self._connect() as db:
            cur = db.execute(
                "INSERT INTO queries (task_id, goal, observation, key_text, embedding, won, progress) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (task.task_id, task.goal, task.observation[:2000], key, _pack(vec), int(bool(episode.won)),
                 float(episode.progress or 0.0)),
            )
            qid = cur.lastrowid
            db.execute("INSERT INTO interactions (query_id, steps) VALUES (?, ?)", (qid, json.dumps(steps)))
            for other in dict.fromkeys(used_queries + nearest):
                weight = max(sims.get(other, 0.0), 0.0)
                db.executemany("INSERT OR REPLACE INTO query_edges (src, dst, weight) VALUES (?, ?, ?)",
                               [(qid, other, weight), (other, qid, weight)])
            # top tier: reinforce the insights that were shown for this episode
            for insight_id in used_insights:
                db.execute("UPDATE insights SET score = score + ? WHERE id = ?",
                           (1.0 if episode.won else -0.5, insight_id))
                if episode.won:
                    db.execute("INSERT OR IGNORE INTO insight_support (insight_id, query_id) "
                               "SELECT id, ? FROM insights WHERE id = ?", (qid, insight_id))

        # top tier: distil new insights, contrasting with related trajectories
        evidence = nearest[:2]
        with self._connect() as db:
            marks = ",".join("?" * len(evidence))
            related_steps = dict(db.execute(
                f"SELECT query_id, steps FROM interactions WHERE query_id IN ({marks})", evidence
            ).fetchall()) if evidence else {}
        related = "\n".join(
            _sparse_trajectory(nodes[q][0], nodes[q][1], nodes[q][2], _safe_steps(related_steps.get(q)), 400)
            for q in evidence
        ) or "(none yet)"
        prompt = (INSIGHT_PROMPT.replace("{outcome}", "SOLVED" if episode.won else "FAILED")
                  .replace("{goal}", _one_line(task.goal, 400)).replace("{trajectory}", _render_steps(steps))
                  .replace("{related}", related))
        try:
            reply = await self.toolkit.llm.complete(
                prompt, system=INSIGHT_SYSTEM, json_mode=True, max_tokens=LLM_MAX_TOKENS, temperature=0.0
            )
        except Exception:
            reply = None
        new = [(text, "llm") for text in _parse_insights(reply if isinstance(reply, str) else None, prompt, episode)]
        if new:
            await self._add_insights(new, [qid, *evidence])  # supported by the task and the ones it was contrasted with
        else:
            fallback = _fallback_insight(episode, steps)
            if fallback:
                await self._add_insights([(fallback, "fallback")], [qid])

    async def _add_insights(self, new: list[tuple[str, str]], supporters: list[int]) -> None:
        vectors = await _embed_texts(self.toolkit, [text for text, _ in new])
        with self._connect() as db:
            existing = [(i, t, _unpack(b)) for i, t, b in db.execute("SELECT id, text, embedding FROM insights")]
            for (text, origin), vec in zip(new, vectors, strict=True):
                match = next((i for i, t, v in existing
                              if t == text or (vec is not None and v is not None and v.shape == vec.shape
                                               and float(np.dot(vec, v)) >= MERGE_SIMILARITY)), None)
                if match is None:
                    match = db.execute("INSERT INTO insights (text, embedding, score, origin) VALUES (?, ?, ?, ?)",
                                       (text, _pack(vec), 1.0, origin)).lastrowid
                    existing.append((match, text, vec))
                else:
                    db.execute("UPDATE insights SET score = score + 1 WHERE id = ?", (match,))
                db.executemany("INSERT OR IGNORE INTO insight_support (insight_id, query_id) VALUES (?, ?)",
                               [(match, q) for q in supporters])
