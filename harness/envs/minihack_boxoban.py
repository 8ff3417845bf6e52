"""Boxoban levels made here, in the standard Boxoban text format, and MiniHack's Boxoban env played on them.

The official Boxoban level sets are downloaded from the internet; these levels are generated locally instead.
A level is 10 rows of 10 characters (``#`` wall, ``@`` player, ``$`` box, ``.`` goal, space floor); a level
file holds levels as ``; N`` followed by the 10 rows and a blank line, as in the official sets.

Generation is by reverse play: the boxes start on their goals (a solved state) and the player walks backwards,
pulling boxes, for a number of random moves. Every pull undoes a legal push, so the reversed walk solves the
level; :func:`solve` (a breadth-first search over player and box positions) then finds a shortest solution,
which is kept as the level's reference solution and checked against :data:`MAX_SOLUTION`.

:func:`boxoban_env_class` builds (lazily: MiniHack is optional) a subclass of MiniHack's ``BoxoHack`` that
reads its levels from a directory of ours and plays exactly the level it is told to, patching the upstream
env's reset quirks (no ``seed`` keyword; ``_goal_pos_set`` read before it is set) in the subclass.
"""

from __future__ import annotations

import os
import random
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

SIZE = 10
#: (name, row delta, column delta) of the four moves Boxoban allows
MOVES = (("north", -1, 0), ("east", 0, 1), ("south", 1, 0), ("west", 0, -1))
#: shortest solutions longer than this are rejected (the harness step limit is 100)
MAX_SOLUTION = 40
MIN_SOLUTION = 4
_LEVELS_PATH_LOCK = threading.Lock()


@dataclass(frozen=True)
class BoxobanLevel:
    """A level: ``rows`` in the standard format and a shortest ``solution`` (move names)."""

    rows: tuple[str, ...]
    solution: tuple[str, ...]


def _carve(rng: random.Random) -> set[tuple[int, int]]:
    """A connected room: a random walk that leaves floor behind, plus a few widened spots."""
    r, c = rng.randrange(2, SIZE - 2), rng.randrange(2, SIZE - 2)
    floor = {(r, c)}
    target = rng.randrange(14, 26)
    while len(floor) < target:
        _, dr, dc = rng.choice(MOVES)
        for _ in range(rng.randrange(1, 4)):
            if 1 <= r + dr <= SIZE - 2 and 1 <= c + dc <= SIZE - 2:
                r, c = r + dr, c + dc
                floor.add((r, c))
        if rng.random() < 0.3 and r + 1 <= SIZE - 2 and c + 1 <= SIZE - 2:
            floor.update({(r + 1, c), (r, c + 1), (r + 1, c + 1)})
    return floor


def _reverse_play(rng: random.Random, floor: set[tuple[int, int]], goals: list[tuple[int, int]],
                  moves: int) -> tuple[tuple[int, int], frozenset[tuple[int, int]]] | None:
    """Walk backwards from the solved state, pulling boxes; return (player, boxes) or ``None``."""
    boxes = set(goals)
    free = sorted(floor - boxes)
    if not free:
        return None
    player = rng.choice(free)
    for _ in range(moves):
        _, dr, dc = rng.choice(MOVES)
        dest = (player[0] + dr, player[1] + dc)
        if dest not in floor or dest in boxes:
            continue
        behind = (player[0] - dr, player[1] - dc)
        if behind in boxes and rng.random() < 0.8:
            boxes.remove(behind)
            boxes.add(player)
        player = dest
    return player, frozenset(boxes)


def generate_level(seed: int, n_boxes: int = 1) -> BoxobanLevel:
    """A solvable level with ``n_boxes`` boxes (1 or 2), deterministic for ``seed``; no box starts on a goal
    and the player does not start on one. Raises ``RuntimeError`` if no level is found (it always is)."""
    if n_boxes not in (1, 2):
        raise ValueError(f"n_boxes must be 1 or 2, not {n_boxes}")
    rng = random.Random(f"boxoban/{seed}/{n_boxes}")
    for _ in range(500):
        floor = _carve(rng)
        goals = rng.sample(sorted(floor), n_boxes)
        start = _reverse_play(rng, floor, goals, rng.randrange(30, 120))
        if start is None:
            continue
        player, boxes = start
        if boxes & set(goals) or player in goals:
            continue
        rows = render(floor, set(goals), boxes, player)
        solution = solve(rows)
        if solution is not None and MIN_SOLUTION <= len(solution) <= MAX_SOLUTION:
            return BoxobanLevel(rows=rows, solution=tuple(solution))
    raise RuntimeError(f"no Boxoban level found for seed {seed}")


def render(floor: set, goals: set, boxes, player: tuple[int, int]) -> tuple[str, ...]:
    rows = []
    for r in range(SIZE):
        line = []
        for c in range(SIZE):
            cell = (r, c)
            if cell == player:
                line.append("@")
            elif cell in boxes:
                line.append("$")
            elif cell in goals:
                line.append(".")
            elif cell in floor:
                line.append(" ")
            else:
                line.append("#")
        rows.append("".join(line))
    return tuple(rows)


def parse(rows: tuple[str, ...] | list[str]):
    """(floor, goals, boxes, player) of a level in the standard format (``ValueError`` if malformed)."""
    if len(rows) != SIZE or any(len(row) != SIZE or set(row) - set("#@$. ") for row in rows):
        raise ValueError("a Boxoban level is 10 rows of 10 characters from '#@$. '")
    floor, goals, boxes, players = set(), set(), set(), []
    for r, row in enumerate(rows):
        for c, ch in enumerate(row):
            if ch != "#":
                floor.add((r, c))
            if ch == ".":
                goals.add((r, c))
            elif ch == "$":
                boxes.add((r, c))
            elif ch == "@":
                players.append((r, c))
    if len(players) != 1 or not boxes or len(boxes) != len(goals):
        raise ValueError("a Boxoban level has one player and as many boxes as goals")
    return floor, frozenset(goals), frozenset(boxes), players[0]


def solve(rows, limit: int = 200_000) -> list[str] | None:
    """A shortest move sequence that puts every box on a goal, or ``None`` (unsolvable within ``limit``
    states). Breadth-first search over (player, boxes)."""
    floor, goals, boxes, player = parse(rows)
    start = (player, boxes)
    parent: dict = {start: None}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        pos, bx = state
        if bx == goals:
            path = []
            while parent[state] is not None:
                state, move = parent[state]
                path.append(move)
            return path[::-1]
        for name, dr, dc in MOVES:
            nxt = (pos[0] + dr, pos[1] + dc)
            if nxt not in floor:
                continue
            nbx = bx
            if nxt in bx:
                beyond = (nxt[0] + dr, nxt[1] + dc)
                if beyond not in floor or beyond in bx:
                    continue
                nbx = (bx - {nxt}) | {beyond}
            new = (nxt, nbx)
            if new not in parent:
                parent[new] = (state, name)
                if len(parent) > limit:
                    return None
                queue.append(new)
    return None


def level_file_text(levels: list[tuple[int, tuple[str, ...]]]) -> str:
    """``(number, rows)`` levels in the standard format: ``; N``, the 10 rows, a blank line."""
    return "".join(f"; {number}\n" + "".join(row + "\n" for row in rows) + "\n" for number, rows in levels)


def write_level_file(path: Path, levels: list[tuple[int, tuple[str, ...]]]) -> None:
    """Write ``levels`` to ``path`` (atomically; left alone when it already holds exactly them)."""
    text = level_file_text(levels)
    if path.is_file() and path.read_text() == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def read_level(path: Path, number: int) -> tuple[str, ...]:
    """The rows of level ``; number`` in the level file ``path`` (``KeyError`` if absent)."""
    blocks = Path(path).read_text().split("\n\n")
    for block in blocks:
        lines = block.strip("\n").split("\n")
        if lines and lines[0].startswith(";") and lines[0][1:].strip() == str(number):
            return tuple(lines[1:])
    raise KeyError(f"level {number} not in {path}")


def boxoban_env_class():
    """MiniHack's ``BoxoHack`` subclassed to play a chosen level from a directory of ours.

    Construct with ``levels_dir`` (a directory holding ``<level_set>/<level_mode>/*.txt``; MiniHack's
    ``LEVELS_PATH`` is pointed there while the env is built) and ``rows`` (the first level to play). Before each
    ``reset`` call :meth:`select` with the rows of the level to play next.
    """
    from minihack.envs import boxohack

    class LocalBoxoban(boxohack.BoxoHack):
        def __init__(self, *args, levels_dir: str, rows: tuple[str, ...], **kwargs):
            self._rows = tuple(rows)
            self._goal_pos_set = None
            with _LEVELS_PATH_LOCK:  # upstream reads the module's LEVELS_PATH while it is built
                saved = boxohack.LEVELS_PATH
                boxohack.LEVELS_PATH = str(levels_dir)
                try:
                    super().__init__(*args, level_set="local", level_mode="train", **kwargs)
                finally:
                    boxohack.LEVELS_PATH = saved

        def select(self, rows: tuple[str, ...]) -> None:
            self._rows = tuple(rows)

        def get_lvl_gen(self):
            # upstream draws a random level from self._levels; narrow the draw to the selected level
            loaded, self._levels = self._levels, ["\n".join(self._rows) + "\n"]
            try:
                return super().get_lvl_gen()
            finally:
                self._levels = loaded

        def reset(self, *, seed=None, options=None):
            self._goal_pos_set = None  # the upstream end check runs inside reset, before the goals are known
            return super().reset(options=options or {"wizkit_items": None})

        def _is_episode_end(self, observation):
            if self._goal_pos_set is None:
                return self.StepStatus.RUNNING
            return super()._is_episode_end(observation)

    return LocalBoxoban
