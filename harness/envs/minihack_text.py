"""The text an LLM reads for a MiniHack observation, and the named actions it may answer with.

An observation (see :func:`render`) is, in this order::

    Message: The lava cools and solidifies.
    Next to you: floor of a room to the north, east and south; doorway to the west.
    You see: a staircase down 2 steps north and 4 steps west; molten lava (15 squares), the nearest 3 steps east.
    Map (you are @):
    |.....}......
    ...
    Inventory: a - a +1 club (weapon in hand); f - a horn
    Status: Agent the Troglodyte St:18/04 Dx:10 ... | Dlvl:1 $:0 HP:16(16) Pw:2(2) AC:8 Xp:1/0

Positions are relative to the agent (rows are north/south, columns east/west), taken from NLE's
``screen_descriptions`` (one name per visible map cell). "Next to you" names the eight neighbouring cells
that are seen; "You see" names the things that matter (stairs, doors, monsters, objects, lava, fountains,
boulders) but not plain floor, walls or corridors, which the map shows. Messages that depend on the real date
(the moon phase) are left out, so that a task's observations are the same on every day.
"""

from __future__ import annotations

import re

import numpy as np

#: move names -> NetHack keys (vi-keys; NLE's CompassDirection values)
DIRECTIONS = {
    "north": ord("k"), "east": ord("l"), "south": ord("j"), "west": ord("h"),
    "northeast": ord("u"), "southeast": ord("n"), "southwest": ord("b"), "northwest": ord("y"),
}
CARDINAL = ("north", "east", "south", "west")
#: other commands -> NetHack keys; "zap wand" and "apply horn" also answer the item question (see ITEM_ACTIONS)
COMMANDS = {
    "open": ord("o"), "kick": 4, "search": ord("s"), "zap wand": ord("z"), "apply horn": ord("a"),
    "yes": ord("y"), "no": ord("n"),
}
#: composite actions: the item (a word of its inventory line) that answers the game's "What do you want to ...?"
ITEM_ACTIONS = {"zap wand": "wand", "apply horn": "horn"}
ESC = 27

BORING = frozenset({
    "", "floor of a room", "dark part of a room", "wall", "corridor", "lit corridor", "iron bars", "stone",
    "solid rock", "dark part of a corridor",
})
MASS_NOUNS = ("molten lava", "lava", "water", "ice", "air", "cloud")
DATE_MESSAGES = ("You are lucky!  Full moon tonight.", "Be careful!  New moon tonight.",
                 "Watch out!  Bad things can happen on Friday the 13th.")
NEIGHBOURS = (
    ("north", -1, 0), ("northeast", -1, 1), ("east", 0, 1), ("southeast", 1, 1),
    ("south", 1, 0), ("southwest", 1, -1), ("west", 0, -1), ("northwest", -1, -1),
)


def decode(array) -> str:
    """NUL-padded NLE bytes -> str."""
    return bytes(np.asarray(array, dtype=np.uint8)).split(b"\0", 1)[0].decode("latin-1")


def clean_message(message: str) -> str:
    for text in DATE_MESSAGES:
        message = message.replace(text, "")
    return " ".join(message.split())


def with_article(name: str) -> str:
    low = name.lower()
    if low.startswith(("a ", "an ", "the ")) or low.endswith("s") or any(low.startswith(m) for m in MASS_NOUNS):
        return name
    return ("an " if low[0] in "aeiou" else "a ") + name


def relative(dy: int, dx: int) -> str:
    """"2 steps north and 4 steps west" for a cell ``dy`` rows and ``dx`` columns from the agent."""
    parts = []
    if dy:
        parts.append(f"{abs(dy)} step{'s' if abs(dy) > 1 else ''} {'north' if dy < 0 else 'south'}")
    if dx:
        parts.append(f"{abs(dx)} step{'s' if abs(dx) > 1 else ''} {'west' if dx < 0 else 'east'}")
    return " and ".join(parts) or "where you stand"


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def seen_cells(screen_descriptions) -> dict[tuple[int, int], str]:
    """(row, column) -> name of every map cell that has a description."""
    arr = np.asarray(screen_descriptions)
    return {(int(r), int(c)): decode(arr[r, c]) for r, c in zip(*np.nonzero(arr[:, :, 0]), strict=True)}


def describe_neighbours(cells: dict[tuple[int, int], str], x: int, y: int) -> str:
    groups: dict[str, list[str]] = {}
    for name, dy, dx in NEIGHBOURS:
        if cells.get((y + dy, x + dx)):
            groups.setdefault(cells[(y + dy, x + dx)], []).append(name)
    if not groups:
        return "Next to you: nothing you can see."
    parts = [f"{d} to the {_join(dirs)}" for d, dirs in groups.items()]
    return "Next to you: " + "; ".join(parts) + "."


def describe_sightings(cells: dict[tuple[int, int], str], x: int, y: int, limit: int = 3) -> str:
    found: dict[str, list[tuple[int, int, int]]] = {}
    for (r, c), name in cells.items():
        if name in BORING or (r == y and c == x):
            continue
        found.setdefault(name, []).append((max(abs(r - y), abs(c - x)), r - y, c - x))
    if not found:
        return "You see: nothing of note."
    parts = []
    for name, cells in sorted(found.items(), key=lambda item: (min(item[1]), item[0])):
        cells.sort()
        if len(cells) > limit:
            parts.append(f"{name} ({len(cells)} squares), the nearest {relative(cells[0][1], cells[0][2])}")
        else:
            parts.extend(f"{with_article(name)} {relative(dy, dx)}" for _, dy, dx in cells)
    return "You see: " + "; ".join(parts) + "."


def trimmed_map(tty_chars) -> str:
    """The map rows of the terminal (rows 1-21), cut to the area that holds anything."""
    rows = [bytes(np.asarray(r, dtype=np.uint8)).decode("latin-1").rstrip() for r in tty_chars[1:22]]
    filled = [i for i, r in enumerate(rows) if r.strip()]
    if not filled:
        return "(nothing seen yet)"
    rows = rows[filled[0]: filled[-1] + 1]
    left = min(len(r) - len(r.lstrip()) for r in rows if r.strip())
    return "\n".join(r[left:] for r in rows)


def inventory(obs: dict) -> str:
    if "inv_strs" not in obs:
        return ""
    items = [f"{chr(int(letter))} - {decode(line)}" for letter, line in zip(obs["inv_letters"], obs["inv_strs"], strict=True)
             if int(letter)]
    return "Inventory: " + ("; ".join(items) if items else "nothing") + "."


def status(tty_chars) -> str:
    lines = [" ".join(bytes(np.asarray(r, dtype=np.uint8)).decode("latin-1").split()) for r in tty_chars[22:24]]
    return "Status: " + " | ".join(line for line in lines if line)


def death_reason(tty_chars) -> str:
    """The cause of death on NetHack's final score screen ("Killed by a bolt of cold."), or ""."""
    screen = " ".join(bytes(np.asarray(tty_chars, dtype=np.uint8)).decode("latin-1").split())
    found = re.search(r"died in .*? on level \d+\. (.+?\.)", screen)
    return found.group(1) if found else ""


def find_item(obs: dict, word: str) -> str | None:
    """The inventory letter of the first item whose line contains ``word``."""
    for letter, line in zip(obs.get("inv_letters", ()), obs.get("inv_strs", ()), strict=True):
        if int(letter) and word in decode(line):
            return chr(int(letter))
    return None


def render(obs: dict, note: str = "") -> str:
    """The observation text (see the module docstring); ``note`` is put before the game's message."""
    cells = seen_cells(obs["screen_descriptions"])
    x, y = int(obs["blstats"][0]), int(obs["blstats"][1])
    message = " ".join(p for p in (note, clean_message(decode(obs["message"]))) if p)
    lines = [
        f"Message: {message or '(none)'}",
        describe_neighbours(cells, x, y),
        describe_sightings(cells, x, y),
        "Map (you are @):",
        trimmed_map(obs["tty_chars"]),
    ]
    inv = inventory(obs)
    if inv:
        lines.append(inv)
    lines.append(status(obs["tty_chars"]))
    return "\n".join(lines)
