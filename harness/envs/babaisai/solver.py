"""Solvers over BabaIsAI states: shortest winning plans within a step limit.

:func:`solve` returns a shortest winning plan (a list of moves) of at most ``max_steps`` moves, or ``None`` when
there is none (or the search grew past ``max_states``). It plays turns with :func:`.world.step`, the very
function the environment uses, so a plan replays identically through the environment. ``idle`` is never part
of a plan (it cannot change the state); lost states are not expanded.

:func:`solve` is a Dijkstra search over *push* states (the Sokoban trick): from a state with a single YOU
object it walks that object, by breadth-first search over cells that hold nothing pushable, STOP or DEFEAT, to
every cell from which it can push something or step onto a WIN object, and plays only those pushes and final
steps as turns; the cost of an edge is its number of moves. Walking alone changes nothing but the player's
cell, so this finds plans exactly as short as plain breadth-first search over single moves
(:func:`solve_bfs`, kept as the reference), with far fewer states. States with several YOU objects are
expanded one move at a time.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from harness.envs.babaisai.rules import Rule
from harness.envs.babaisai.world import DELTAS, MOVES, Outcome, State, Thing, canonical, judge, roles, step

_PUSH, _STOP, _DEFEAT, _WIN = 1, 2, 4, 8


@dataclass
class SolveStats:
    """Counters of one search: distinct states reached and turns simulated with :func:`.world.step`."""

    states: int = 0
    turns: int = 0


def solve(
    width: int, height: int, state: State, max_steps: int = 20, max_states: int = 200_000,
    stats: SolveStats | None = None, held: frozenset[tuple[int, int]] = frozenset(),
) -> list[str] | None:
    """Shortest winning plan from ``state`` of at most ``max_steps`` moves, ``[]`` if already won, else ``None``.

    Args:
        width, height: the grid's size.
        state: the starting state.
        max_steps: the longest plan accepted (the benchmark's step limit).
        max_states: give up (return ``None``) once this many distinct states were reached.
        stats: filled in with search counters when given.
        held: cells whose things must not move (see :func:`.world.step`): a restricted, much smaller search
            whose plans are valid without the restriction too (but may be longer than the shortest).
    """
    stats = stats if stats is not None else SolveStats()
    first = judge(state)
    if first.won:
        return []
    if first.lost:
        return None
    best: dict[State, int] = {state: 0}
    links: dict[State, tuple[State, list[str]] | None] = {state: None}
    heap: list[tuple[int, int, State, frozenset[Rule]]] = [(0, 0, state, first.rules)]
    counter = 0
    goal: tuple[int, State, list[str]] | None = None
    while heap:
        cost, _, current, rules = heapq.heappop(heap)
        if goal is not None and cost >= goal[0]:
            break
        if cost > best[current]:
            continue
        for new_cost, out, actions in _edges(width, height, current, rules, cost, max_steps, stats, held):
            if out is None or out.won:
                if goal is None or new_cost < goal[0]:
                    goal = (new_cost, current, actions)
                continue
            if out.lost or new_cost >= best.get(out.state, max_steps + 1):
                continue
            best[out.state] = new_cost
            links[out.state] = (current, actions)
            counter += 1
            heapq.heappush(heap, (new_cost, counter, out.state, out.rules))
        stats.states = len(best)
        if len(best) > max_states:
            return None
    if goal is None:
        return None
    plan = list(goal[2])
    link = links[goal[1]]
    while link is not None:
        plan[:0] = link[1]
        link = links[link[0]]
    return plan


def _edges(
    width: int, height: int, state: State, rules: frozenset[Rule], cost: int, max_steps: int, stats: SolveStats,
    held: frozenset[tuple[int, int]],
) -> Iterator[tuple[int, Outcome | None, list[str]]]:
    """Edges out of ``state``: ``(cost after, outcome or None for a winning walk, moves)`` within the limit."""
    r = roles(rules)
    you = [t for t in state if not t.text and t.name in r.you]
    if len(you) != 1:
        if cost < max_steps:
            for action in MOVES:
                stats.turns += 1
                out = step(width, height, state, action, rules, held)
                if out.moved:
                    yield cost + 1, out, [action]
        return
    player = you[0]
    others = list(state)
    others.remove(player)
    flags: dict[tuple[int, int], int] = {}
    for t in others:
        f = _PUSH if t.text or t.name in r.push else (_STOP if t.name in r.stop else 0)
        if not t.text:
            f |= (_DEFEAT if t.name in r.defeat else 0) | (_WIN if t.name in r.win else 0)
        flags[(t.x, t.y)] = flags.get((t.x, t.y), 0) | f
    for cell in held:
        flags[cell] = _STOP
    start = (player.x, player.y)
    parents: dict[tuple[int, int], tuple[tuple[int, int], str] | None] = {start: None}
    queue = deque([(start, 0)])
    while queue:
        cell, dist = queue.popleft()
        if cost + dist >= max_steps:
            continue
        for action in MOVES:
            dx, dy = DELTAS[action]
            nxt = (cell[0] + dx, cell[1] + dy)
            if not (0 <= nxt[0] < width and 0 <= nxt[1] < height):
                continue
            f = flags.get(nxt, 0)
            if f & _PUSH:
                stats.turns += 1
                moved = canonical([*others, Thing(cell[0], cell[1], player.name, player.colour)])
                out = step(width, height, moved, action, rules, held)
                if out.moved:
                    yield cost + dist + 1, out, _path(parents, cell) + [action]
            elif f & (_STOP | _DEFEAT) or nxt in parents:
                continue
            elif f & _WIN:
                yield cost + dist + 1, None, _path(parents, cell) + [action]
            else:
                parents[nxt] = (cell, action)
                queue.append((nxt, dist + 1))


def _path(parents: dict[tuple[int, int], tuple[tuple[int, int], str] | None], cell: tuple[int, int]) -> list[str]:
    path: list[str] = []
    link = parents[cell]
    while link is not None:
        path.append(link[1])
        link = parents[link[0]]
    path.reverse()
    return path


def solve_bfs(width: int, height: int, state: State, max_steps: int = 20, max_states: int = 400_000,
              held: frozenset[tuple[int, int]] = frozenset()) -> list[str] | None:
    """Reference solver: breadth-first search over single moves (same contract as :func:`solve`, slower)."""
    first = judge(state)
    if first.won:
        return []
    if first.lost:
        return None
    parents: dict[State, tuple[State, str] | None] = {state: None}
    frontier = [(state, first.rules)]
    for _ in range(max_steps):
        nxt = []
        for current, rules in frontier:
            for action in MOVES:
                out = step(width, height, current, action, rules, held)
                if not out.moved or out.state in parents:
                    continue
                parents[out.state] = (current, action)
                if out.won:
                    plan: list[str] = []
                    link = parents[out.state]
                    while link is not None:
                        plan.append(link[1])
                        link = parents[link[0]]
                    return plan[::-1]
                if not out.lost:
                    nxt.append((out.state, out.rules))
        if not nxt or len(parents) > max_states:
            return None
        frontier = nxt
    return None
