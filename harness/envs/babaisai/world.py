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

from harness.envs.babaisai.rules import Rule, parse_rules, properties

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

    def at(self, x: int, y: int) -> Thing:
        return self._replace(x=x, y=y)


State = tuple[Thing, ...]


def canonical(things: list[Thing] | tuple[Thing, ...]) -> State:
    """The canonical (sorted) state for a collection of things."""
    return tuple(sorted(things))


def rules_of(state: State) -> frozenset[Rule]:
    """The rules the text blocks of ``state`` spell."""
    return parse_rules({(t.x, t.y): t.name for t in state if t.text})


def has_property(thing: Thing, props: dict[str, frozenset[str]], prop: str) -> bool:
    """Whether an object has ``prop`` under ``props`` (text blocks have none)."""
    return not thing.text and prop in props.get(thing.name, ())


@dataclass(frozen=True)
class Outcome:
    """The result of one turn.

    Attributes:
        state: the state after the turn (destroyed objects removed).
        rules: the rules active after the turn.
        won / lost: the game's verdict after the turn (never both).
        moved: whether at least one YOU object changed cell.
        pushed: the things that were pushed, as they were before the turn.
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
    props = properties(rules)
    defeat_cells = {(t.x, t.y) for t in state if has_property(t, props, "defeat")}
    win_cells = {(t.x, t.y) for t in state if has_property(t, props, "win")}
    kept: list[Thing] = []
    destroyed: list[Thing] = []
    survivors: list[Thing] = []
    for thing in state:
        if has_property(thing, props, "you"):
            if (thing.x, thing.y) in defeat_cells:
                destroyed.append(thing)
                continue
            survivors.append(thing)
        kept.append(thing)
    won = any((t.x, t.y) in win_cells for t in survivors)
    new_state = tuple(kept) if destroyed else state
    return Outcome(new_state, rules, won=won, lost=not won and not survivors, destroyed=tuple(destroyed))


def step(width: int, height: int, state: State, action: str, rules: frozenset[Rule] | None = None) -> Outcome:
    """Play one turn of ``action`` (one of :data:`ACTIONS`) from ``state``; see the module docstring.

    ``rules`` may be passed when already known (they must equal ``rules_of(state)``), to save re-reading them.
    Raises ``ValueError`` for an unknown action.
    """
    if action not in DELTAS:
        raise ValueError(f"unknown action {action!r}; choose one of {', '.join(ACTIONS)}")
    dx, dy = DELTAS[action]
    if dx == 0 and dy == 0:
        return judge(state, rules)
    props = properties(rules_of(state) if rules is None else rules)
    things = list(state)
    pos = [(t.x, t.y) for t in things]
    cells: dict[tuple[int, int], list[int]] = {}
    for i, p in enumerate(pos):
        cells.setdefault(p, []).append(i)
    pushable = [t.text or has_property(t, props, "push") for t in things]
    stop = [not pushable[i] and has_property(t, props, "stop") for i, t in enumerate(things)]
    movers = [i for i, t in enumerate(things) if has_property(t, props, "you")]
    movers.sort(key=lambda i: -(pos[i][0] * dx + pos[i][1] * dy))

    def relocate(j: int) -> None:
        cells[pos[j]].remove(j)
        pos[j] = (pos[j][0] + dx, pos[j][1] + dy)
        cells.setdefault(pos[j], []).append(j)

    moved = False
    pushed: list[Thing] = []
    for i in movers:
        chain: list[list[int]] = []
        cx, cy = pos[i][0] + dx, pos[i][1] + dy
        blocked = False
        while True:
            if not (0 <= cx < width and 0 <= cy < height):
                blocked = True
                break
            here = [j for j in cells.get((cx, cy), ()) if j != i]
            if any(stop[j] for j in here):
                blocked = True
                break
            group = [j for j in here if pushable[j]]
            if not group:
                break
            chain.append(group)
            cx, cy = cx + dx, cy + dy
        if blocked:
            continue
        for group in reversed(chain):
            for j in group:
                pushed.append(things[j])
                relocate(j)
        relocate(i)
        moved = True
    if not moved:
        return judge(state, rules)
    new_state = canonical([t.at(*pos[i]) if (t.x, t.y) != pos[i] else t for i, t in enumerate(things)])
    out = judge(new_state)
    return Outcome(out.state, out.rules, out.won, out.lost, moved=True, pushed=tuple(pushed),
                   destroyed=out.destroyed)


def you_objects(state: State, rules: frozenset[Rule]) -> list[Thing]:
    """The YOU objects of ``state`` in reading order (top to bottom, left to right); the first is "the player"
    from which the observation measures offsets."""
    props = properties(rules)
    return sorted((t for t in state if has_property(t, props, "you")), key=lambda t: (t.y, t.x, t.name))
