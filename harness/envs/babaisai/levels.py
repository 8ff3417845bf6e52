"""Levels: what a task plays, generated deterministically from ``(family, layout_seed, variant, extra)``.

A *layout* (walls, rule blocks, goal and distractor objects) comes from ``(family, layout_seed, extra)``; the
*variant* only chooses the player's start cell. Tasks that share a layout share a world (``world_id``), so what
an agent learns on one carries over to the others.

Every level returned by :func:`generate` is checked with the solver: the active rules are exactly those the
family intends, the game is neither won nor lost at the start, and a winning plan of between ``MIN_PLAN`` and
``STEP_LIMIT`` moves exists. A layout draw that fails (cannot be placed, or its variant-0 start is not
solvable) is redrawn from the next sub-seed; a variant whose start cell is not solvable moves on to the next
start cell of the layout's shuffled list.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from harness.envs.babaisai.families import FAMILIES, Layout
from harness.envs.babaisai.solver import solve
from harness.envs.babaisai.world import State, Thing, canonical, judge

STEP_LIMIT = 20
MIN_PLAN = 3
MAX_LAYOUT_TRIES = 400


@dataclass(frozen=True)
class Level:
    """A playable level: a ``width x height`` grid and its starting things (see :mod:`.world`)."""

    width: int
    height: int
    things: State
    family: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form: ``things`` as ``[x, y, name, colour, is_text]`` lists."""
        return {
            "width": self.width, "height": self.height, "family": self.family,
            "things": [[t.x, t.y, t.name, t.colour, t.text] for t in self.things],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Level:
        things = canonical([Thing(int(x), int(y), str(n), str(c), bool(t)) for x, y, n, c, t in data["things"]])
        return cls(int(data["width"]), int(data["height"]), things, str(data.get("family", "")))

    def grid(self) -> str:
        """An ASCII picture, one character per cell (see :data:`SYMBOLS`; the last thing of a cell wins)."""
        rows = [["." for _ in range(self.width)] for _ in range(self.height)]
        for t in self.things:
            rows[t.y][t.x] = _CHAR[(t.name, t.text)]
        return "\n".join("".join(r) for r in rows)

    @classmethod
    def from_grid(cls, rows: list[str], family: str = "") -> Level:
        """A level from an ASCII picture (see :data:`SYMBOLS`; ``.`` is empty). Objects get no colour."""
        things = []
        for y, row in enumerate(rows):
            for x, char in enumerate(row):
                if char != ".":
                    name, text = SYMBOLS[char]
                    things.append(Thing(x, y, name, "", text))
        return cls(max(len(r) for r in rows), len(rows), canonical(things), family)


#: ASCII symbol -> (name, is_text): objects ``@`` baba, ``#`` wall, ``o`` ball, ``k`` key, ``d`` door; text
#: blocks ``B`` baba, ``W`` wall, ``O`` ball, ``K`` key, ``D`` door, ``I`` is, ``Y`` you, ``!`` win, ``S`` stop,
#: ``P`` push, ``X`` defeat.
SYMBOLS: dict[str, tuple[str, bool]] = {
    "@": ("baba", False), "#": ("wall", False), "o": ("ball", False), "k": ("key", False), "d": ("door", False),
    "B": ("baba", True), "W": ("wall", True), "O": ("ball", True), "K": ("key", True), "D": ("door", True),
    "I": ("is", True), "Y": ("you", True), "!": ("win", True), "S": ("stop", True), "P": ("push", True),
    "X": ("defeat", True),
}
_CHAR = {v: k for k, v in SYMBOLS.items()}


@dataclass(frozen=True)
class Generated:
    """A generated level, the solver's shortest plan for it and the sub-seed of the layout draw used."""

    level: Level
    plan: list[str]
    layout_sub: int


def _rng(*parts: object) -> random.Random:
    return random.Random("babaisai/" + "/".join(str(p) for p in parts))


def _check(level: Level, layout: Layout, max_steps: int) -> list[str] | None:
    start = judge(level.things)
    if start.won or start.lost or start.rules != layout.rules:
        return None
    held = frozenset((t.x, t.y) for t in level.things if t.text) - layout.movable
    plan = solve(level.width, level.height, level.things, max_steps=max_steps, held=held)
    if plan is None or len(plan) < MIN_PLAN:
        return None
    return plan


def _with_player(layout: Layout, cell: tuple[int, int], family: str) -> Level:
    things = canonical([*layout.things, Thing(cell[0], cell[1], "baba")])
    return Level(layout.width, layout.height, things, family)


def generate(family: str, layout_seed: int, variant: int = 0, extra: int = 0,
             max_steps: int = STEP_LIMIT) -> Generated:
    """Generate the level ``variant`` of layout ``layout_seed`` of ``family`` (deterministic).

    Args:
        family: a key of :data:`.families.FAMILIES`.
        layout_seed: picks the layout (rules, walls, objects).
        variant: picks the player's start cell among the layout's solvable ones (0 is the layout's own).
        extra: additional distractor objects and rules.
        max_steps: a winning plan must exist within this many moves.

    Raises ``KeyError`` for an unknown family and ``RuntimeError`` if no solvable layout was found.
    """
    if family not in FAMILIES:
        raise KeyError(f"unknown BabaIsAI family {family!r}; known: {', '.join(FAMILIES)}")
    builder = FAMILIES[family]
    for sub in range(MAX_LAYOUT_TRIES):
        layout = builder(_rng(family, layout_seed, extra, sub), extra)
        if layout is None or not layout.player_cells:
            continue
        cells = sorted(layout.player_cells)
        _rng(family, layout_seed, extra, sub, "start").shuffle(cells)
        base = _with_player(layout, cells[0], family)
        plan = _check(base, layout, max_steps)
        if plan is None:
            continue
        if variant == 0:
            return Generated(base, plan, sub)
        for k in range(len(cells) - 1):
            cell = cells[1 + (variant - 1 + k) % (len(cells) - 1)]
            level = _with_player(layout, cell, family)
            found = _check(level, layout, max_steps)
            if found is not None:
                return Generated(level, found, sub)
        return Generated(base, plan, sub)
    raise RuntimeError(f"no solvable {family} level for layout seed {layout_seed} after {MAX_LAYOUT_TRIES} draws")
