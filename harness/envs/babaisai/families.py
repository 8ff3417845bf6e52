"""Level families: random layouts of rules, objects and walls, in the spirit of BALROG's BabaIsAI.

A family builder takes a ``random.Random`` and a distractor level and returns a :class:`Layout`: every thing
of the level except the player (the BABA object), the cells where the player may start, and the rules that
must be active at the start. :mod:`.levels` places the player and checks the level with the solver.

Families (``<goal>`` is ball, key or door; the player is always ``baba`` under ``baba is you``):

- ``goto_win``: ``<goal> is win`` is already formed; walk to a ``<goal>`` object.
- ``make_win``: ``<goal> is win`` lacks one block (noun, ``is`` or ``win``), which lies in line with its slot;
  push it into place, then walk to the goal.
- ``break_stop``: the goal is boxed in by walls under ``wall is stop``; push a block out of ``wall is stop``,
  then walk through the walls to the goal.
- ``two_room-goto_win`` / ``two_room-make_win``: a wall column under ``wall is stop`` splits the grid into two
  rooms with a one-cell gap; the goal is in the other room.
- ``two_room-break_stop``: the wall column has no gap; break ``wall is stop`` to cross.
- ``break_stop-make_win`` and ``two_room-break_stop-make_win`` (held out for the ood split): both mechanics.

Distractors: 1-2 objects of other kinds (ball, key, door; plus plain walls where walls are not structural)
and 0-1 distractor rules (``<noun> is win`` for a noun with no object on the map, or ``push`` / ``stop`` /
``defeat`` for a distractor object); ``extra`` adds that many more of each. Colours are cosmetic variety.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.envs.babaisai.rules import OPERATOR, Rule
from harness.envs.babaisai.world import Thing

GOALS: tuple[str, ...] = ("ball", "key", "door")
COLOURS: tuple[str, ...] = ("red", "green", "blue", "purple", "yellow", "grey")
SINGLE_ROOM = (7, 7)
TWO_ROOMS = (9, 7)

Cell = tuple[int, int]


@dataclass
class Layout:
    """A level without its player: ``things``, the start cells allowed for the player, the rules that must
    be active at the start (exactly these) and the cells of the text blocks the family's intended solution
    pushes (the solver check holds every other text block in place)."""

    width: int
    height: int
    things: list[Thing]
    player_cells: list[Cell]
    rules: frozenset[Rule]
    movable: frozenset[Cell]


@dataclass
class _Builder:
    rng: random.Random
    width: int
    height: int
    things: list[Thing] = field(default_factory=list)
    taken: set[Cell] = field(default_factory=set)
    rules: set[Rule] = field(default_factory=set)
    on_map: set[str] = field(default_factory=set)
    movable: set[Cell] = field(default_factory=set)

    def inside(self, cell: Cell) -> bool:
        return 0 <= cell[0] < self.width and 0 <= cell[1] < self.height

    def put(self, cell: Cell, name: str, colour: str = "", text: bool = False) -> None:
        self.things.append(Thing(cell[0], cell[1], name, colour, text))
        self.taken.add(cell)
        if not text:
            self.on_map.add(name)

    def free(self, region: list[Cell]) -> list[Cell]:
        return [c for c in region if c not in self.taken]

    def put_object(self, name: str, region: list[Cell]) -> Cell | None:
        cells = self.free(region)
        if not cells:
            return None
        cell = self.rng.choice(cells)
        colour = self.rng.choice(COLOURS) if name in GOALS else ""
        self.put(cell, name, colour)
        return cell

    def line(self, region: list[Cell], margin: bool) -> tuple[list[Cell], Cell] | None:
        """Three free in-region cells in a row or column (and the direction across it); with ``margin`` the
        cells on both sides across the line are inside the grid, so a block can be pushed out of line."""
        inside = set(region)
        options = []
        for x, y in self.free(region):
            for along, across in (((1, 0), (0, 1)), ((0, 1), (1, 0))):
                cells = [(x + along[0] * k, y + along[1] * k) for k in range(3)]
                if not all(c in inside and c not in self.taken for c in cells):
                    continue
                if margin and not all(self.inside((c[0] + s * across[0], c[1] + s * across[1]))
                                      for c in cells for s in (-1, 1)):
                    continue
                options.append((cells, across))
        return self.rng.choice(options) if options else None

    def put_rule(self, noun: str, prop: str, region: list[Cell], breakable: bool = False) -> bool:
        """A formed rule; a ``breakable`` one has room to push its blocks out of line, and one of them (drawn at
        random) is the block the intended solution moves."""
        found = self.line(region, margin=breakable)
        if found is None:
            return False
        for cell, word in zip(found[0], (noun, OPERATOR, prop), strict=True):
            self.put(cell, word, text=True)
        if breakable:
            self.movable.add(self.rng.choice(found[0]))
        self.rules.add(Rule(noun, prop))
        return True

    def put_partial_rule(self, noun: str, prop: str, region: list[Cell]) -> bool:
        """``noun is prop`` with one block missing; the block lies 1-3 cells across the line from its slot, with
        free cells between and a free cell behind it for the player to push from."""
        found = self.line(region, margin=True)
        if found is None:
            return False
        cells, (ax, ay) = found
        words = (noun, OPERATOR, prop)
        missing = self.rng.randrange(3)
        slot = cells[missing]
        inside = set(region)
        spots = []
        for sign in (-1, 1):
            for k in (1, 2, 3):
                path = [(slot[0] + sign * ax * i, slot[1] + sign * ay * i) for i in range(1, k + 2)]
                if all(c in inside and c not in self.taken for c in path):
                    spots.append(path[k - 1])
        if not spots:
            return False
        for cell, word in zip(cells, words, strict=True):
            if cell != slot:
                self.put(cell, word, text=True)
        self.taken.add(slot)  # keep the slot clear of other things
        piece = self.rng.choice(spots)
        self.put(piece, words[missing], text=True)
        self.movable.add(piece)
        return True

    def distractors(self, goal: str, region: list[Cell], walls_free: bool, extra: int) -> bool:
        pool = [n for n in GOALS if n != goal] + (["wall"] if walls_free else [])
        placed: list[str] = []
        for _ in range(self.rng.randint(1, 2) + extra):
            name = self.rng.choice(pool)
            if self.put_object(name, region) is None:
                return False
            placed.append(name)
        for _ in range(self.rng.randint(0, 1) + extra):
            absent = [n for n in GOALS if n not in self.on_map and n != goal]
            present = sorted({n for n in placed if n != "wall"})
            if absent and (not present or self.rng.random() < 0.5):
                noun, prop = self.rng.choice(absent), "win"
            elif present:
                noun, prop = self.rng.choice(present), self.rng.choice(("push", "stop", "defeat"))
            else:
                continue
            if Rule(noun, prop) in self.rules:
                continue
            if not self.put_rule(noun, prop, region):
                return False
        return True


def _room(x0: int, x1: int, height: int) -> list[Cell]:
    return [(x, y) for y in range(height) for x in range(x0, x1)]


def _single_room(rng: random.Random, extra: int, make_win: bool, break_stop: bool) -> Layout | None:
    width, height = SINGLE_ROOM
    b = _Builder(rng, width, height)
    everywhere = _room(0, width, height)
    goal = rng.choice(GOALS)
    inner = _room(1, width - 1, height) if break_stop else everywhere
    goal_cell = b.put_object(goal, inner)
    if goal_cell is None:
        return None
    if break_stop:
        for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            cell = (goal_cell[0] + dx, goal_cell[1] + dy)
            if b.inside(cell):
                b.put(cell, "wall")
        if not b.put_rule("wall", "stop", everywhere, breakable=True):
            return None
    if not b.put_rule("baba", "you", everywhere):
        return None
    placed = b.put_partial_rule(goal, "win", everywhere) if make_win else b.put_rule(goal, "win", everywhere)
    if not placed or not b.distractors(goal, everywhere, walls_free=not break_stop, extra=extra):
        return None
    return Layout(width, height, b.things, b.free(everywhere), frozenset(b.rules), frozenset(b.movable))


def _two_room(rng: random.Random, extra: int, make_win: bool, break_stop: bool) -> Layout | None:
    width, height = TWO_ROOMS
    wx = width // 2
    b = _Builder(rng, width, height)
    left, right = _room(0, wx, height), _room(wx + 1, width, height)
    home, away = (left, right) if rng.random() < 0.5 else (right, left)
    gap = None if break_stop else rng.randrange(height)
    for y in range(height):
        if y != gap:
            b.put((wx, y), "wall")
    if gap is not None:
        b.taken.add((wx, gap))  # keep the gap open
    goal = rng.choice(GOALS)
    if b.put_object(goal, away) is None:
        return None
    if not b.put_rule("wall", "stop", home if break_stop else rng.choice((home, away)), breakable=break_stop):
        return None
    if not b.put_rule("baba", "you", rng.choice((home, away))):
        return None
    placed = (b.put_partial_rule(goal, "win", home) if make_win
              else b.put_rule(goal, "win", rng.choice((home, away))))
    if not placed or not b.distractors(goal, home + away, walls_free=False, extra=extra):
        return None
    return Layout(width, height, b.things, b.free(home), frozenset(b.rules), frozenset(b.movable))


def _family(builder: Callable[..., Layout | None], make_win: bool, break_stop: bool) -> Callable[..., Layout | None]:
    def build(rng: random.Random, extra: int = 0) -> Layout | None:
        return builder(rng, extra, make_win=make_win, break_stop=break_stop)

    return build


#: family name -> builder(rng, extra) returning a Layout, or None when this draw could not be placed.
FAMILIES: dict[str, Callable[..., Layout | None]] = {
    "goto_win": _family(_single_room, make_win=False, break_stop=False),
    "make_win": _family(_single_room, make_win=True, break_stop=False),
    "break_stop": _family(_single_room, make_win=False, break_stop=True),
    "two_room-goto_win": _family(_two_room, make_win=False, break_stop=False),
    "two_room-make_win": _family(_two_room, make_win=True, break_stop=False),
    "two_room-break_stop": _family(_two_room, make_win=False, break_stop=True),
    "break_stop-make_win": _family(_single_room, make_win=True, break_stop=True),
    "two_room-break_stop-make_win": _family(_two_room, make_win=True, break_stop=True),
}
#: families of the train and id splits.
IN_FAMILIES: tuple[str, ...] = tuple(list(FAMILIES)[:6])
#: held-out family combinations of the ood split.
OOD_FAMILIES: tuple[str, ...] = ("break_stop-make_win", "two_room-break_stop-make_win")
