"""Grid state and game mechanics of BabaIsAI: movement, push chains, STOP, DEFEAT, WIN, YOU.

The world is a ``width x height`` grid; ``(0, 0)`` is the top-left cell, x grows rightwards and y downwards.
The grid's edges block movement (there is no border object). A state is a sorted tuple of :class:`Thing`
(objects and text blocks); several things may share a cell. States are immutable and hashable so the solver
can search over them; :func:`step` is a pure function used by both the environment and the solver, so a plan
found by the solver replays identically in the environment.

One turn (:func:`step`):

1. Rules are read from the text blocks (see :mod:`.rules`).
2. For a move, every YOU object tries to move one cell, front-most first. Moving into a cell pushes the
   pushable things there (text blocks, PUSH objects) one cell further, in a chain; the move fails if the chain
   meets the grid's edge or a STOP object that is not also PUSH. ``idle`` moves nothing.
3. Rules are read again (pushing text may form or break rules).
4. YOU objects sharing a cell with a DEFEAT object (or DEFEAT themselves) are destroyed.
5. Won if a remaining YOU object shares a cell with a WIN object (itself included: ``baba is you`` plus
   ``baba is win`` wins at once). Otherwise lost if no YOU object remains (no YOU rule, or none of its objects).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from harness.envs.babaisai.rules import Rule, parse_rules

#: action -> (dx, dy)
DELTAS: dict[str, tuple[int, int]] = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0), "idle": (0, 0)}
#: the admissible actions, sorted; the same at every step.
ACTIONS: tuple[str, ...] = tuple(sorted(DELTAS))
#: the actions that can change the state (``idle`` never does).
MOVES: tuple[str, ...] = ("up", "down", "left", "right")


class Thing(NamedTuple):
    """An object (``text=False``: a noun such as ``"ball"``, with a colour) or a text block (``text=True``:
    ``name`` is its word, ``colour`` is empty) at cell ``(x, y)``."""

    x: int
    y: int
    name: str
    colour: str = ""
    text: bool = False

    def describe(self) -> str:
        """How the observation names it: ``"rule `win`"``, ``"red ball"``, ``"wall"``."""
        if self.text:
            return f"rule `{self.name}`"
        return f"{self.colour} {self.name}" if self.colour else self.name


State = tuple[Thing, ...]


def canonical(things: list[Thing] | tuple[Thing, ...]) -> State:
    """The canonical (sorted) state for a collection of things."""
    return tuple(sorted(things))


def rules_of(state: State) -> frozenset[Rule]:
    """The rules the text blocks of ``state`` spell."""
    return parse_rules({(t.x, t.y): t.name for t in state if t.text})


class Roles(NamedTuple):
    """For each property, the nouns that have it under a rule set."""

    you: frozenset[str]
    win: frozenset[str]
    stop: frozenset[str]
    push: frozenset[str]
    defeat: frozenset[str]


_ROLES: dict[frozenset[Rule], Roles] = {}


def roles(rules: frozenset[Rule]) -> Roles:
    """The :class:`Roles` of a rule set (memoised: a game only ever sees a handful of rule sets)."""
    found = _ROLES.get(rules)
    if found is None:
        if len(_ROLES) > 4096:
            _ROLES.clear()
        by_prop = {p: frozenset(r.noun for r in rules if r.prop == p) for p in Roles._fields}
        found = _ROLES[rules] = Roles(**by_prop)
    return found


@dataclass(frozen=True)
class Outcome:
    """The result of one turn.

    Attributes:
        state: the state after the turn (destroyed objects removed).
        rules: the rules active after the turn.
        won / lost: the game's verdict after the turn (never both).
        moved: whether at least one YOU object changed cell.
        pushed: the things that were pushed, as they were before the turn, nearest to the pusher first.
        destroyed: the YOU objects destroyed by DEFEAT this turn.
    """

    state: State
    rules: frozenset[Rule]
    won: bool
    lost: bool
    moved: bool = False
    pushed: tuple[Thing, ...] = ()
    destroyed: tuple[Thing, ...] = ()


def judge(state: State, rules: frozenset[Rule] | None = None) -> Outcome:
    """Apply DEFEAT, then decide won / lost for ``state`` (steps 4-5 of a turn; also used at reset)."""
    rules = rules_of(state) if rules is None else rules
    r = roles(rules)
    you = [t for t in state if not t.text and t.name in r.you]
    if not you:
        return Outcome(state, rules, won=False, lost=True)
    defeat_cells = {(t.x, t.y) for t in state if not t.text and t.name in r.defeat}
    destroyed = tuple(t for t in you if (t.x, t.y) in defeat_cells)
    if destroyed:
        you = [t for t in you if (t.x, t.y) not in defeat_cells]
        state = tuple(t for t in state if t.text or t.name not in r.you or (t.x, t.y) not in defeat_cells)
    win_cells = {(t.x, t.y) for t in state if not t.text and t.name in r.win}
    won = any((t.x, t.y) in win_cells for t in you)
    return Outcome(state, rules, won=won, lost=not won and not you, destroyed=destroyed)


def step(width: int, height: int, state: State, action: str, rules: frozenset[Rule] | None = None,
         held: frozenset[tuple[int, int]] = frozenset()) -> Outcome:
    """Play one turn of ``action`` (one of :data:`ACTIONS`) from ``state``; see the module docstring.

    ``rules`` may be passed when already known (they must equal ``rules_of(state)``), to save re-reading them.
    ``held`` (solver only) lists cells whose things are held in place: nothing may enter them, as if they were
    STOP. A move that succeeds with ``held`` cells does exactly the same without them. Raises ``ValueError``
    for an unknown action.
    """
    if action not in DELTAS:
        raise ValueError(f"unknown action {action!r}; choose one of {', '.join(ACTIONS)}")
    rules = rules_of(state) if rules is None else rules
    dx, dy = DELTAS[action]
    r = roles(rules)
    movers = [i for i, t in enumerate(state) if not t.text and t.name in r.you]
    if (dx == 0 and dy == 0) or not movers:
        return judge(state, rules)
    pos = [(t.x, t.y) for t in state]
    cells: dict[tuple[int, int], list[int]] = {}
    for i, p in enumerate(pos):
        cells.setdefault(p, []).append(i)
    if len(movers) > 1:
        movers.sort(key=lambda i: -(pos[i][0] * dx + pos[i][1] * dy))

    def relocate(j: int) -> None:
        cells[pos[j]].remove(j)
        pos[j] = (pos[j][0] + dx, pos[j][1] + dy)
        cells.setdefault(pos[j], []).append(j)

    moved = False
    pushed: list[int] = []
    for i in movers:
        chain: list[int] = []
        cx, cy = pos[i][0] + dx, pos[i][1] + dy
        free = False
        while 0 <= cx < width and 0 <= cy < height and (cx, cy) not in held:
            group: list[int] = []
            blocked = False
            for j in cells.get((cx, cy), ()):
                t = state[j]
                if j == i:
                    continue
                if t.text or t.name in r.push:
                    group.append(j)
                elif t.name in r.stop:
                    blocked = True
                    break
            if blocked:
                break
            if not group:
                free = True
                break
            chain.extend(group)
            cx, cy = cx + dx, cy + dy
        if not free:
            continue  # the chain meets the grid's edge or a STOP thing
        pushed.extend(chain)
        for j in reversed(chain):
            relocate(j)
        relocate(i)
        moved = True
    if not moved:
        return judge(state, rules)
    new_state = canonical([t if (t.x, t.y) == pos[i] else Thing(pos[i][0], pos[i][1], t.name, t.colour, t.text)
                           for i, t in enumerate(state)])
    texts_moved = any(state[j].text for j in pushed)
    out = judge(new_state, rules_of(new_state) if texts_moved else rules)
    return Outcome(out.state, out.rules, out.won, out.lost, moved=True,
                   pushed=tuple(state[j] for j in pushed), destroyed=out.destroyed)


def you_objects(state: State, rules: frozenset[Rule]) -> list[Thing]:
    """The YOU objects of ``state`` in reading order (top to bottom, left to right); the first is "the player"
    from which the observation measures offsets."""
    you = roles(rules).you
    return sorted((t for t in state if not t.text and t.name in you), key=lambda t: (t.y, t.x, t.name))
