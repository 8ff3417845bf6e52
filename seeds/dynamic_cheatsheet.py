"""Dynamic Cheatsheet, cumulative variant (DC-Cu): one evolving cheatsheet rewritten after every episode.

After Suzgun et al., "Dynamic Cheatsheet: Test-Time Learning with Adaptive Memory" (2025). The memory is a
single, bounded text of reusable knowledge -- strategies, solution patterns, pitfalls -- that is carried from one
problem to the next:

* ``retrieve`` returns the current cheatsheet, the same for every task (the cumulative variant has no
  retrieval step; that is DC-RS);
* ``update`` runs the *curator*: the LLM receives the previous cheatsheet and the record of the episode just
  played (goal, trajectory, outcome) and writes the complete new cheatsheet, keeping what is still useful,
  merging duplicates, correcting what the new experience contradicts and adding what it teaches. The reply
  is read from between ``<cheatsheet>`` tags, as in the paper.

Robustness choices of this implementation: every version is kept in SQLite at ``toolkit.db_path`` (the latest
is the memory). A curator reply is rejected -- the old sheet is kept -- when it is missing, untagged, trivially
short, an echo of the prompt, or a collapse that drops most of a substantial sheet. Without an accepted
rewrite, a deterministic entry is appended instead (the solving action sequence of a win, or the actions that
earned reward in a loss). After a win, if the accepted sheet names fewer than half of the winning actions, the
solving sequence is appended too, so the sheet keeps concrete, executable knowledge even with a weak curator. The sheet
is bounded to ``MAX_SHEET_CHARS`` by dropping its oldest entries.
"""

from __future__ import annotations

import re
import sqlite3

from harness.design import MemoryDesign, Toolkit
from harness.types import Episode, Task

CURATOR_SYSTEM = (
    "You are the curator of a cheatsheet: compact, reusable knowledge that helps an agent play text-based "
    "games. You rewrite the whole cheatsheet after every game."
)

CURATOR_PROMPT = """Rewrite the cheatsheet using the game the agent just played.
- Keep every entry that is still useful; merge duplicates; correct entries this game contradicts.
- Add what this game teaches. After a success: the exact commands that solved it and why they worked.
  After a failure: what went wrong and what to do instead.
- Be concise: short bullet points with concrete commands and object names, at most {max_chars} characters.

CURRENT CHEATSHEET:
{cheatsheet}

GAME JUST PLAYED
Goal: {goal}
Outcome: {outcome}
Trajectory ("> command" then what the game answered):
{trajectory}

Reply with the complete new cheatsheet between <cheatsheet> and </cheatsheet>."""

EMPTY_SHEET = "(empty: this is the first game)"
MAX_SHEET_CHARS = 2000  # bound of the cheatsheet (~500 tokens; the retrieved text adds a one-line header)
MIN_SHEET_CHARS = 30  # a shorter curator reply is not a cheatsheet
COLLAPSE_RATIO = 0.4  # a rewrite shorter than this share of a substantial old sheet is rejected
LLM_MAX_TOKENS = 400  # room for a full sheet plus its tags; keeps a small local model within its timeout
HEADER = "Cheatsheet (knowledge accumulated from past games):"

_NOOP_ACTIONS = {"look", "l", "inventory", "i", "score", "goal", "help", "wait", "z"}
_NO_EFFECT_RE = re.compile(
    r"^\s*(you can't|you cannot|that's not|i don't|i didn't|i only understood|you don't see|"
    r"nothing happens|there is no|you see no)",
    re.IGNORECASE,
)
_TAG_RE = re.compile(r"<cheatsheet>(.*?)(?:</cheatsheet>|$)", re.IGNORECASE | re.DOTALL)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sheets (
    version INTEGER PRIMARY KEY AUTOINCREMENT,
    text TEXT NOT NULL,
    source TEXT NOT NULL,          -- 'curator' (LLM rewrite), 'curator+procedure' or 'fallback'
    task_id TEXT NOT NULL,
    won INTEGER NOT NULL
);
"""


# ---------------------------------------------------------------- helpers (a genome is one module)


def _one_line(text: object, limit: int) -> str:
    return " ".join(str(text).split())[:limit] if isinstance(text, str) else ""


def _key_actions(episode: Episode) -> list[str]:
    """The actions of a trajectory without look/inventory, no-effect commands and immediate repeats."""
    out: list[str] = []
    for step in episode.steps:
        action = " ".join(str(step.action).split())
        if not action or action.lower() in _NOOP_ACTIONS:
            continue
        if (step.reward or 0) <= 0 and _NO_EFFECT_RE.match(step.observation or ""):
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


def _render_trajectory(episode: Episode, budget: int = 1600) -> str:
    """``> action`` / observation lines for the curator, keeping the start and the end when too long."""
    lines = []
    for step in episode.steps:
        mark = f" [reward +{step.reward:g}]" if step.reward and step.reward > 0 else ""
        lines.append(f"> {_one_line(step.action, 80)}{mark}\n{_one_line(step.observation, 120)}")
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


def _extract_sheet(reply: str | None) -> str | None:
    """The text between ``<cheatsheet>`` tags (an unclosed tag runs to the end), else ``None``."""
    if not isinstance(reply, str):
        return None
    matches = [m.strip() for m in _TAG_RE.findall(reply)]
    matches = [m for m in matches if m]
    if not matches:
        return None
    sheet = max(matches, key=len)
    sheet = re.sub(r"</?cheatsheet>", "", sheet, flags=re.IGNORECASE)
    lines = [line.rstrip() for line in sheet.splitlines()]
    sheet = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return sheet or None


def _acceptable(new: str | None, old: str) -> bool:
    if not new or len(new) < MIN_SHEET_CHARS:
        return False
    if new.strip() == EMPTY_SHEET or "{cheatsheet}" in new or "CURRENT CHEATSHEET" in new:
        return False
    if len(old) >= 600 and len(new) < COLLAPSE_RATIO * len(old):
        return False
    return True


def _fit(sheet: str, limit: int = MAX_SHEET_CHARS) -> str:
    """Bound the sheet by dropping its oldest entries: first the oldest appended procedure, then the oldest
    bullet, then the first line; the last line (the newest entry) goes last."""
    lines = sheet.splitlines()
    while len("\n".join(lines)) > limit and len(lines) > 1:
        older = range(len(lines) - 1)
        drop = next((i for i in older if lines[i].startswith("- Solved '")), None)
        if drop is None:
            drop = next((i for i in older if lines[i].lstrip().startswith(("- ", "* "))), 0)
        del lines[drop]
    return "\n".join(lines)[:limit]


def _entry(episode: Episode) -> str | None:
    """The deterministic cheatsheet entry of an episode (``None`` when it teaches nothing concrete)."""
    goal = _one_line(episode.task.goal, 160)
    if episode.won:
        actions = _key_actions(episode)
        if actions:
            return f"- Solved '{goal}': actions that solved it: {_join_actions(actions, 400)}"
        return None
    rewarded = [_one_line(s.action, 80) for s in episode.steps if s.reward and s.reward > 0]
    if rewarded:
        return (f"- Partial progress on '{goal}': {_join_actions(rewarded, 400)} earned reward, "
                f"then it failed after {len(episode.steps)} steps; try other objects or rooms next.")
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


class DynamicCheatsheet(MemoryDesign):
    """One cheatsheet, rewritten by the LLM curator after every episode and shown whole before every task."""

    def __init__(self, toolkit: Toolkit):
        super().__init__(toolkit)
        self.toolkit.scratch_dir.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(_SCHEMA)

    def _connect(self) -> _Database:
        return _Database(self.toolkit.db_path)

    def _latest(self) -> tuple[int, str]:
        with self._connect() as db:
            row = db.execute("SELECT version, text FROM sheets ORDER BY version DESC LIMIT 1").fetchone()
        return (row[0], row[1]) if row else (0, "")

    async def retrieve(self, task: Task) -> dict:
        version, sheet = self._latest()
        if not sheet.strip():
            return {}
        return {"text": f"{HEADER}\n{sheet}", "version": version}

    async def update(self, episode: Episode) -> None:
        _, old = self._latest()
        outcome = "SUCCESS" if episode.won else f"FAILURE (reached {float(episode.progress or 0.0):.0%} of the score)"
        prompt = (CURATOR_PROMPT.replace("{max_chars}", str(MAX_SHEET_CHARS))
                  .replace("{goal}", _one_line(episode.task.goal, 400)).replace("{outcome}", outcome)
                  .replace("{trajectory}", _render_trajectory(episode))
                  .replace("{cheatsheet}", old or EMPTY_SHEET))
        try:
            reply = await self.toolkit.llm.complete(
                prompt, system=CURATOR_SYSTEM, max_tokens=LLM_MAX_TOKENS, temperature=0.0
            )
        except Exception:
            reply = None
        new = _extract_sheet(reply)
        entry = _entry(episode)
        if _acceptable(new, old):
            source = "curator"
            actions = set(_key_actions(episode)) if episode.won else set()
            named = sum(a.lower() in new.lower() for a in actions)
            if entry and actions and named < max(1, len(actions) // 2):
                new, source = f"{new}\n{entry}", "curator+procedure"
        elif entry:
            new, source = (f"{old}\n{entry}" if old else entry), "fallback"
        else:
            return
        new = _fit(new.strip())
        if new == old:
            return
        with self._connect() as db:
            db.execute(
                "INSERT INTO sheets (text, source, task_id, won) VALUES (?, ?, ?, ?)",
                (new, source, episode.task.task_id, int(bool(episode.won))),
            )
