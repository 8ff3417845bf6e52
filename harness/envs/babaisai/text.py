"""Text observations of BabaIsAI, written for an LLM.

An observation is an optional message about the last turn, then the state::

    You moved up. You pushed rule `win` up. Rule formed: ball is win.

    Active rules: baba is you, ball is win
    You are the baba. You can move at most 2 steps left, 4 right, 0 up and 3 down before the map's edge.
    Objects on the map (offsets from you):
    - red ball 2 steps right and 1 step up
    - rule `win` 1 step left

Offsets are measured from "you": the first YOU object in reading order (top to bottom, left to right); other
YOU objects are listed too, marked "(also you)". Things are listed nearest first (Manhattan distance), ties in
reading order. With no YOU object left, positions are given as columns and rows counted from the top-left.
"""

from __future__ import annotations

from harness.envs.babaisai.rules import Rule, format_rules
from harness.envs.babaisai.world import DELTAS, Outcome, State, Thing, roles, you_objects


def _steps(n: int) -> str:
    return f"{n} step" if n == 1 else f"{n} steps"


def describe_offset(dx: int, dy: int) -> str:
    """``"2 steps right and 1 step up"`` for an offset ``(dx, dy)`` (y grows downwards); ``"at your position"``
    for ``(0, 0)``."""
    parts = []
    if dx:
        parts.append(f"{_steps(abs(dx))} {'right' if dx > 0 else 'left'}")
    if dy:
        parts.append(f"{_steps(abs(dy))} {'down' if dy > 0 else 'up'}")
    return " and ".join(parts) if parts else "at your position"


def render_state(width: int, height: int, state: State, rules: frozenset[Rule]) -> str:
    """The state part of an observation: active rules, who you are, the map's edges, every other thing."""
    lines = [f"Active rules: {format_rules(rules)}"]
    you = you_objects(state, rules)
    if not you:
        lines.append(f"No object is YOU. The map is {width} columns by {height} rows.")
        lines.append("Things on the map (column, row from the top-left, starting at 1):")
        for t in sorted(state, key=lambda t: (t.y, t.x, t.text, t.name)):
            lines.append(f"- {t.describe()} at column {t.x + 1}, row {t.y + 1}")
        return "\n".join(lines)
    me = you[0]
    lines.append(
        f"You are the {me.describe()}. You can move at most {_steps(me.x)} left, {width - 1 - me.x} right, "
        f"{me.y} up and {height - 1 - me.y} down before the map's edge."
    )
    others = list(state)
    others.remove(me)
    if not others:
        lines.append("There is nothing else on the map.")
        return "\n".join(lines)
    lines.append("Objects on the map (offsets from you):")
    also = set(you[1:])
    for t in sorted(others, key=lambda t: (abs(t.x - me.x) + abs(t.y - me.y), t.y, t.x, t.text, t.name)):
        mark = " (also you)" if t in also else ""
        lines.append(f"- {t.describe()}{mark} {describe_offset(t.x - me.x, t.y - me.y)}")
    return "\n".join(lines)


def blocked_reason(width: int, height: int, state: State, rules: frozenset[Rule], action: str) -> str:
    """Why "you" (the first YOU object) could not move in direction ``action``."""
    you = you_objects(state, rules)
    if not you:
        return "nothing is YOU"
    r = roles(rules)
    dx, dy = DELTAS[action]
    x, y = you[0].x + dx, you[0].y + dy
    pushing = False
    while 0 <= x < width and 0 <= y < height:
        here = [t for t in state if (t.x, t.y) == (x, y)]
        stops = [t for t in here if not t.text and t.name in r.stop and t.name not in r.push]
        if stops:
            what = f"the {stops[0].describe()} ({stops[0].name} is stop)"
            return f"{what} is in the way" if not pushing else f"the blocks you push run into {what}"
        if not any(t.text or t.name in r.push for t in here):
            return "something is in the way"
        pushing = True
        x, y = x + dx, y + dy
    return "the blocks you push would leave the map" if pushing else "you are at the edge of the map"


def _names(things: tuple[Thing, ...]) -> str:
    names = [t.describe() for t in things]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def describe_turn(width: int, height: int, before: State, rules_before: frozenset[Rule], action: str,
                  out: Outcome) -> str:
    """A short message of what a turn did: moved / blocked / pushed, rules formed and broken, win or loss."""
    if action == "idle":
        parts = ["You waited."]
    elif out.moved:
        parts = [f"You moved {action}."]
        if out.pushed:
            parts.append(f"You pushed {_names(out.pushed)} {action}.")
    else:
        parts = [f"You could not move {action}: {blocked_reason(width, height, before, rules_before, action)}."]
    formed = format_rules(out.rules - rules_before)
    broken = format_rules(rules_before - out.rules)
    if formed != "none":
        parts.append(f"Rule formed: {formed}.")
    if broken != "none":
        parts.append(f"Rule broken: {broken}.")
    for t in out.destroyed:
        parts.append(f"The {t.describe()} was destroyed by something that is DEFEAT.")
    if out.won:
        parts.append("You won!")
    elif out.lost:
        parts.append("No object is YOU any more: you lost.")
    return " ".join(parts)
