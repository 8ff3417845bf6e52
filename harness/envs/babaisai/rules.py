"""Words, rules and rule parsing for BabaIsAI.

A rule is three text blocks in a line, read left to right (horizontal) or top to bottom (vertical)::

    <noun> IS <property>        e.g.  BABA IS YOU,  WALL IS STOP,  BALL IS WIN

Nouns name object kinds (every object of that kind, whatever its colour: colours are only distractor variety,
no rule names a colour). Properties give behaviour:

- ``you``: moves with the player's actions; if no object is YOU the game is lost.
- ``win``: a YOU object on the same cell as a WIN object (or a YOU object that is itself WIN) wins.
- ``stop``: cannot be entered.
- ``push``: is pushed along when moved into (text blocks are always pushable).
- ``defeat``: destroys a YOU object on the same cell.

Only ``noun is property`` rules exist (no ``and``, no ``noun is noun``); text blocks themselves never take
properties other than being pushable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

NOUNS: tuple[str, ...] = ("baba", "wall", "ball", "key", "door")
PROPERTIES: tuple[str, ...] = ("you", "win", "stop", "push", "defeat")
OPERATOR = "is"
WORDS: tuple[str, ...] = NOUNS + (OPERATOR,) + PROPERTIES

_NOUN_SET = frozenset(NOUNS)
_PROPERTY_SET = frozenset(PROPERTIES)


class Rule(NamedTuple):
    """An active rule ``noun is prop``; ``str(rule)`` is its lower-case text, e.g. ``"baba is you"``."""

    noun: str
    prop: str

    def __str__(self) -> str:
        return f"{self.noun} {OPERATOR} {self.prop}"


def parse_rules(texts: Mapping[tuple[int, int], str]) -> frozenset[Rule]:
    """Return the rules spelled by text blocks.

    Args:
        texts: ``(x, y) -> word`` for every text block on the grid (x grows rightwards, y downwards).

    A rule is a noun at ``(x, y)``, ``is`` at ``(x+1, y)`` and a property at ``(x+2, y)`` (horizontal), or the
    same going down ``(x, y+1)``, ``(x, y+2)`` (vertical). One block may take part in several rules.
    """
    rules: set[Rule] = set()
    for (x, y), word in texts.items():
        if word not in _NOUN_SET:
            continue
        for dx, dy in ((1, 0), (0, 1)):
            if texts.get((x + dx, y + dy)) != OPERATOR:
                continue
            prop = texts.get((x + 2 * dx, y + 2 * dy))
            if prop in _PROPERTY_SET:
                rules.add(Rule(word, prop))
    return frozenset(rules)


def sort_rules(rules: Iterable[Rule]) -> list[Rule]:
    """Rules in a stable display order: by noun (``NOUNS`` order), then property (``PROPERTIES`` order)."""
    return sorted(rules, key=lambda r: (NOUNS.index(r.noun), PROPERTIES.index(r.prop)))


def format_rules(rules: Iterable[Rule]) -> str:
    """``"baba is you, ball is win"`` (sorted), or ``"none"`` when there is no rule."""
    ordered = sort_rules(rules)
    return ", ".join(str(r) for r in ordered) if ordered else "none"
