"""Breadth-first solver over BabaIsAI states.

:func:`solve` returns a shortest winning plan (a list of moves) within ``max_steps`` moves, or ``None`` when
there is none (or the search grew past ``max_states``). It plays turns with :func:`.world.step`, the very
function the environment uses, so a plan replays identically through the environment. ``idle`` is never part
of a plan: it cannot change the state. Lost states are not expanded.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.envs.babaisai.world import MOVES, State, judge, step


@dataclass
class SolveStats:
    """Counters of one search: distinct states reached, turns simulated, deepest layer searched."""

    states: int = 0
    turns: int = 0
    depth: int = 0


def solve(
    width: int, height: int, state: State, max_steps: int = 20, max_states: int = 400_000,
    stats: SolveStats | None = None,
) -> list[str] | None:
    """Shortest winning plan from ``state`` of at most ``max_steps`` moves, ``[]`` if already won, else ``None``.

    Args:
        width, height: the grid's size.
        state: the starting state.
        max_steps: the longest plan accepted (the benchmark's step limit).
        max_states: give up (return ``None``) once this many distinct states were reached.
        stats: filled in with search counters when given.
    """
    stats = stats if stats is not None else SolveStats()
    first = judge(state)
    if first.won:
        return []
    if first.lost:
        return None
    parents: dict[State, tuple[State, str] | None] = {state: None}
    frontier = [(state, first.rules)]
    for depth in range(1, max_steps + 1):
        stats.depth = depth
        nxt = []
        for current, rules in frontier:
            for action in MOVES:
                out = step(width, height, current, action, rules)
                stats.turns += 1
                if not out.moved or out.state in parents:
                    continue
                parents[out.state] = (current, action)
                if out.won:
                    stats.states = len(parents)
                    return _plan(parents, out.state)
                if not out.lost:
                    nxt.append((out.state, out.rules))
        stats.states = len(parents)
        if not nxt or len(parents) > max_states:
            return None
        frontier = nxt
    return None


def _plan(parents: dict[State, tuple[State, str] | None], end: State) -> list[str]:
    plan: list[str] = []
    link = parents[end]
    while link is not None:
        previous, action = link
        plan.append(action)
        link = parents[previous]
    plan.reverse()
    return plan
