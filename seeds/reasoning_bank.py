"""ReasoningBank: a memory of reasoning strategies distilled from successes *and* failures.

After Ouyang et al., "ReasoningBank: Scaling Agent Self-Evolving with Reasoning Memory" (2025). A memory item
is a structured strategy -- ``title`` (a short name), ``description`` (a one-sentence summary of when it
applies) and ``content`` (the distilled steps, decision rationale or preventive lesson). The closed loop:

* **retrieval** -- ``retrieve`` embeds the new task (goal + first observation) and returns the ``TOP_K`` items
  whose embeddings are most similar (cosine), rendered as text;
* **extraction** -- ``update`` judges the finished episode (the paper's LLM-as-judge verdict is given here by
  the environment's ``won``) and asks the LLM to distil 1-3 items: from a success, the transferable strategy
  that made it work; from a failure, the cause and a preventive lesson;
* **consolidation** -- new items are embedded and appended to the bank (repeated items are skipped).

Robustness choices of this implementation: the LLM's JSON is parsed defensively; items that echo the schema,
only restate the goal, are not grounded in the episode (name nothing it acted on or started with) or repeat a
stored item are dropped. When no usable item remains, a non-LLM fallback item is written instead -- the
actions that earned reward in a failed episode. Every successful episode also adds one grounded "procedure"
item holding its exact action sequence, so the bank stays useful to an agent that matches concrete commands
even when the LLM is weak. State lives only in SQLite at ``toolkit.db_path``.
"""

from __future__ import annotations

import json
import re
import sqlite3

import numpy as np

from harness.design import MemoryDesign, Toolkit
from harness.types import Episode, Task

SYSTEM_PROMPT = (
    "You extract reusable reasoning strategies from an agent's experience in text-based games. "
    "Reply with one JSON object and nothing else."
)

SUCCESS_PROMPT = """The agent below SOLVED its task. Analyse why it succeeded and extract 1 to 3 memory items:
transferable strategies that would help on similar tasks. Name the concrete commands and objects that mattered.

Task goal: {goal}
Trajectory ("> command" then what the game answered):
{trajectory}

Reply with a JSON object of this form:
{"items": [{"title": "<short name of the strategy>", "description": "<one sentence: when it applies>", "content": "<1-3 sentences: what to do, with the key commands>"}]}"""

FAILURE_PROMPT = """The agent below FAILED its task (it reached {progress} of the maximum score). Reflect on why it
failed and extract 1 to 3 memory items: lessons and preventive strategies that would avoid this failure on similar
tasks. Name the concrete commands and objects involved.

Task goal: {goal}
Trajectory ("> command" then what the game answered):
{trajectory}

Reply with a JSON object of this form:
{"items": [{"title": "<short name of the lesson>", "description": "<one sentence: when it applies>", "content": "<1-3 sentences: what went wrong and what to do instead>"}]}"""

TOP_K = 3  # memory items shown per task
MAX_ITEMS_PER_EPISODE = 3
MAX_TEXT_CHARS = 3000
LLM_MAX_TOKENS = 400

_WORD_RE = re.compile(r"[a-z0-9']+")
_NOOP_ACTIONS = {"look", "l", "inventory", "i", "score", "goal", "help", "wait", "z"}
_NO_EFFECT_RE = re.compile(
    r"^\s*(you can't|you cannot|that's not|i don't|i didn't|i only understood|you don't see|"
    r"nothing happens|there is no|you see no)",
    re.IGNORECASE,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    content TEXT NOT NULL,
    origin TEXT NOT NULL,          -- 'llm', 'procedure' (successful action sequence) or 'fallback'
    source_task_id TEXT NOT NULL,
    source_goal TEXT NOT NULL,
    won INTEGER NOT NULL,          -- outcome of the episode the item was distilled from
    key_text TEXT NOT NULL,        -- the text that was embedded
    embedding BLOB                 -- float32 unit vector, NULL if the embedder failed
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


async def _ask_llm(toolkit: Toolkit, prompt: str, system: str) -> str | None:
    """The LLM's reply, or ``None`` on any failure of the call (never raises)."""
    try:
        reply = await toolkit.llm.complete(
            prompt, system=system, json_mode=True, max_tokens=LLM_MAX_TOKENS, temperature=0.0
        )
    except Exception:
        return None
    return reply if isinstance(reply, str) else None


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


def _key_actions(actions: list[str], observations: list[str], rewards: list[float]) -> list[str]:
    """The actions of a trajectory without look/inventory, no-effect commands and immediate repeats."""
    out: list[str] = []
    for action, obs, reward in zip(actions, observations, rewards, strict=False):
        action = " ".join(str(action).split())
        if not action or action.lower() in _NOOP_ACTIONS:
            continue
        if reward <= 0 and _NO_EFFECT_RE.match(obs or ""):
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


def _render_trajectory(episode: Episode, budget: int = 1800) -> str:
    """``> action`` / observation lines for an LLM prompt, keeping the start and the end when too long."""
    lines = []
    for step in episode.steps:
        mark = f" [reward +{step.reward:g}]" if step.reward and step.reward > 0 else ""
        lines.append(f"> {_one_line(step.action, 80)}{mark}\n{_one_line(step.observation, 140)}")
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


# ---------------------------------------------------------------- item extraction


def _parse_items(reply: str | None, prompt: str, episode: Episode) -> list[dict]:
    """Valid memory items from the LLM's reply; echoed placeholders, restatements of the goal, advice not
    grounded in the episode, and duplicates are dropped."""
    grounding = " ".join([episode.task.observation, *(s.action for s in episode.steps)])
    data = _parse_json(reply)
    if isinstance(data, dict):
        for key in ("items", "memory_items", "memories", "strategies", "lessons"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
        else:
            data = [data]
    if not isinstance(data, list):
        return []
    items = []
    for raw in data[:MAX_ITEMS_PER_EPISODE]:
        if not isinstance(raw, dict):
            continue
        title = _one_line(raw.get("title"), 120)
        description = _one_line(raw.get("description"), 300)
        content = _one_line(raw.get("content"), 700)
        if len(content) < 12 or content.startswith("<") or content in prompt:
            continue
        if title.startswith("<"):
            title = ""
        if not _informative(f"{title} {description} {content}", episode.task.goal, grounding):
            continue
        if any(item["content"].lower() == content.lower() for item in items):
            continue
        items.append({"title": title or content[:60], "description": description, "content": content})
    return items


def _procedure_item(episode: Episode) -> dict | None:
    """The grounded item of a successful episode: its exact (cleaned) action sequence."""
    steps = episode.steps
    actions = _key_actions([s.action for s in steps], [s.observation for s in steps],
                           [float(s.reward or 0.0) for s in steps])
    if not actions:
        return None
    goal = _one_line(episode.task.goal, 160)
    return {
        "title": f"Procedure that solved: {goal[:90]}",
        "description": "The exact action sequence of a successful episode.",
        "content": f"Actions that solved a similar task: {_join_actions(actions, 600)}",
    }


def _fallback_failure_item(episode: Episode) -> dict | None:
    """Without the LLM, a failure still teaches which actions earned progress before it stalled."""
    rewarded = [_one_line(s.action, 80) for s in episode.steps if s.reward and s.reward > 0]
    if not rewarded:
        return None
    goal = _one_line(episode.task.goal, 160)
    return {
        "title": f"Partial progress on: {goal[:90]}",
        "description": "Actions that earned reward in an attempt that still failed.",
        "content": (f"These actions earned progress: {_join_actions(rewarded, 400)}. The attempt then stalled "
                    f"after {len(episode.steps)} steps: after them, try objects or rooms not yet used."),
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


class ReasoningBank(MemoryDesign):
    """Strategy items (title, description, content) distilled by the LLM, retrieved by embedding similarity."""

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
                "SELECT id, title, description, content, won, key_text, embedding FROM items"
            ).fetchall()
        if not rows:
            return {}
        query = _task_key(task.goal, task.observation)
        qvec = (await _embed_texts(self.toolkit, [query]))[0]
        scored = sorted(
            ((_similarity(qvec, query, _unpack(blob), key), row_id, title, desc, content, won)
             for row_id, title, desc, content, won, key, blob in rows),
            key=lambda r: (r[0], r[1]), reverse=True,
        )[:TOP_K]
        parts = ["Relevant memory items distilled from past successes and failures:"]
        for n, (_, _, title, desc, content, won) in enumerate(scored, 1):
            source = "from a success" if won else "from a failure"
            parts.append(f"[{n}] {title} ({source})\n{desc}\n{content}".replace("\n\n", "\n"))
        return {"text": "\n".join(parts)[:MAX_TEXT_CHARS], "item_ids": [r[1] for r in scored]}

    async def update(self, episode: Episode) -> None:
        task = episode.task
        trajectory = _render_trajectory(episode)
        goal = _one_line(task.goal, 400)
        if episode.won:
            prompt = SUCCESS_PROMPT.replace("{goal}", goal).replace("{trajectory}", trajectory)
        else:
            prompt = (FAILURE_PROMPT.replace("{progress}", f"{float(episode.progress or 0.0):.0%}")
                      .replace("{goal}", goal).replace("{trajectory}", trajectory))
        items = [dict(item, origin="llm") for item in
                 _parse_items(await _ask_llm(self.toolkit, prompt, SYSTEM_PROMPT), prompt, episode)]
        if episode.won:
            procedure = _procedure_item(episode)
            if procedure:
                items.append(dict(procedure, origin="procedure"))
        elif not items:
            fallback = _fallback_failure_item(episode)
            if fallback:
                items.append(dict(fallback, origin="fallback"))
        if not items:
            return
        task_key = _task_key(task.goal, task.observation)
        keys = [f"{task_key}\n{item['title']}. {item['description']}" for item in items]
        vectors = await _embed_texts(self.toolkit, keys)
        with self._connect() as db:
            existing = {c.lower() for (c,) in db.execute("SELECT content FROM items")}
            for item, key, vec in zip(items, keys, vectors, strict=True):
                if item["content"].lower() in existing:
                    continue
                existing.add(item["content"].lower())
                db.execute(
                    "INSERT INTO items (title, description, content, origin, source_task_id, source_goal, won, "
                    "key_text, embedding) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (item["title"], item["description"], item["content"], item["origin"], task.task_id,
                     task.goal, int(bool(episode.won)), key, _pack(vec)),
                )
