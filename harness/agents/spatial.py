"""A map read from text: rooms, the moves between them, and what was seen or found in each.

Text games name the room the player stands in with a header, ``-= Kitchen =-`` (TextWorld's convention), and
moves are ``go <direction>`` commands. :class:`TextMap` reads any text written in that convention -- a memory
design's retrieved text or the agent's own observations -- and learns:

* **rooms**: every header names one;
* **doors**: ``go east`` followed (with nothing but punctuation, arrows, newlines or a bracketed note such as
  ``[reward +1]`` in between) by a header means that going east from the room before the move leads to the room
  of the header; the way back is assumed to be the opposite move (text-game maps are undirected);
* **what is where**: the words of a room's *segment* -- the text after its header up to the next move or
  header, and no further than the end of the header's line unless the header stands alone on its line (as in
  a raw observation) -- are things seen or found there. The thing moved by ``put X on Y`` / ``insert X into Y``
  is not where the putting happened (only its destination ``Y`` is), so a remembered delivery does not misplace the
  object it delivered;
* **trails**: moves made from a named room without the header of the rooms they led to (``Start: -= Lounge =-``
  then ``go north -> go east -> take staple``) place what follows them, on the same line, at (Lounge, the moves).
  Text-game maps are grids, so a walk that comes back to an earlier position is cut out of the moves;
  :meth:`TextMap.locate` follows known doors as far as they resolve a trail.

:meth:`TextMap.route` is a breadth-first search over the known doors. :func:`blocks` cuts a memory text into the
units (one remembered episode, typically) that a reader trusts or distrusts as a whole; :meth:`TextMap.merge`
and :meth:`TextMap.contradicts` are how. Nothing here reads game files: only text.
"""

from __future__ import annotations

import re
from collections import deque

from harness.agents.base import words

HEADER_RE = re.compile(r"-=\s*([^=\n]{1,60}?)\s*=-")
MOVE_RE = re.compile(r"\bgo\s+(north|south|east|west|up|down)\b")
_PUT_RE = re.compile(r"\b(put|insert|place)\s+(.{1,60}?)\s+(on|onto|into|in)\s+")
_BRACKETS_RE = re.compile(r"\[[^\]\n]{0,40}\]|\([^)\n]{0,40}\)")
#: what may stand between a move and the header of the room it led to
_MAX_GAP = 40
OPPOSITE = {"north": "south", "south": "north", "east": "west", "west": "east", "up": "down", "down": "up"}
_SKIP = frozenset("a an the to of in on at with from into and or is are be it its this that you your there here "
                  "see can room exit leading go".split())


#: where one memory block ends: a blank line, or a line that starts a numbered or headed item ("[2] ...",
#: "2. ...", "## ...")
_BLOCK_RE = re.compile(r"\n\s*\n|\n(?=[ \t]*(?:\[\d+\]|\d+[.)][ \t]|#{1,6}[ \t]))")


def blocks(text: str) -> list[str]:
    """``text`` cut into blocks (see ``_BLOCK_RE``): the units a memory's map is trusted or distrusted in."""
    return [b for b in _BLOCK_RE.split(text) if b.strip()]


def room_of(text: str) -> str | None:
    """The room named by the first header of ``text`` (lower case), or None."""
    match = HEADER_RE.search(text.lower())
    return " ".join(match.group(1).split()) if match else None


class TextMap:
    """Rooms, doors and the things seen in each room, accumulated from any number of texts."""

    def __init__(self) -> None:
        self.doors: dict[str, dict[str, str]] = {}
        self.seen: dict[str, set[str]] = {}  # word -> rooms whose segments mention it
        self.trails: dict[str, set[tuple[str, tuple[str, ...]]]] = {}  # word -> (room, moves from it) seen there

    def read(self, text: str) -> TextMap:
        """Learn from ``text`` (any case); returns self."""
        text = text.lower()
        events = [(m.start(), m.end(), "room", " ".join(m.group(1).split())) for m in HEADER_RE.finditer(text)]
        events += [(m.start(), m.end(), "move", m.group(1)) for m in MOVE_RE.finditer(text)]
        events.sort()
        room: str | None = None
        segment_start = 0
        move: tuple[str, str, int] | None = None  # (from room, direction, end of the move's text)
        trail: Trail | None = None  # moves made since the last named room, on one line
        last_end = 0
        for start, end, kind, value in events:
            if room is not None:
                self._note(room, self._segment(text, segment_start, start))
            elif trail is not None:
                chunk = text[last_end:start]
                self._note_trail(trail, chunk.split("\n", 1)[0])
                if "\n" in chunk:
                    trail = None
            if kind == "room":
                if move is not None and self._adjacent(text[move[2]:start]):
                    self.add_door(move[0], move[1], value)
                room, segment_start, move, trail = value, end, None, None
            else:
                if room is not None:
                    trail = Trail(room)
                if trail is not None:
                    trail.go(value)
                move = (room, value, end) if room is not None else None
                room = None
            last_end = end
        if room is not None:
            self._note(room, self._segment(text, segment_start, len(text)))
        elif trail is not None:
            self._note_trail(trail, text[last_end:].split("\n", 1)[0])
        return self

    @property
    def empty(self) -> bool:
        """Whether nothing was learnt (no door, no room, no trail)."""
        return not (self.doors or self.seen or self.trails)

    def merge(self, other: TextMap) -> TextMap:
        """Add what ``other`` knows; a door this map already has keeps its target. Returns self."""
        for room, doors in other.doors.items():
            for direction, target in doors.items():
                self.doors.setdefault(room, {}).setdefault(direction, target)
        for word, rooms in other.seen.items():
            self.seen.setdefault(word, set()).update(rooms)
        for word, places in other.trails.items():
            self.trails.setdefault(word, set()).update(places)
        return self

    def contradicts(self, room: str, exits: set[str], arrived: tuple[str, str] | None = None) -> bool:
        """Whether this map disagrees with what was seen: a door of ``room`` that is not among its ``exits``,
        or ``arrived`` = (direction, room reached) from the room before, when the map has that door lead
        elsewhere."""
        if exits and any(d not in exits for d in self.doors.get(room, {})):
            return True
        if arrived is not None:
            direction, before = arrived
            target = self.doors.get(before, {}).get(direction)
            return target is not None and target != room
        return False

    def places(self, word: str) -> set[tuple[str, tuple[str, ...]]]:
        """Where ``word`` was seen as (named room, moves from it) -- moves () for a room seen by name."""
        return {(r, ()) for r in self.seen.get(word, ())} | self.trails.get(word, set())

    def locate(self, place: tuple[str, tuple[str, ...]]) -> tuple[str, tuple[str, ...]]:
        """``place`` as far as known doors resolve it: (the named room reached, the moves still to make)."""
        room, moves = place
        done = 0
        while done < len(moves) and moves[done] in self.doors.get(room, {}):
            room = self.doors[room][moves[done]]
            done += 1
        return room, moves[done:]

    def add_door(self, room: str, direction: str, target: str) -> None:
        if room == target:
            return
        self.doors.setdefault(room, {})[direction] = target
        back = OPPOSITE.get(direction)
        if back:
            self.doors.setdefault(target, {}).setdefault(back, room)

    def note(self, room: str, text: str) -> None:
        """Record that ``text`` was seen in ``room``."""
        self._note(room, text.lower())

    def rooms_with(self, word: str) -> set[str]:
        return self.seen.get(word, set())

    def route(self, start: str, goals: set[str]) -> list[str] | None:
        """The shortest list of directions from ``start`` to any room of ``goals`` ([] when already there;
        None when no known doors lead there)."""
        if start in goals:
            return []
        parents: dict[str, tuple[str, str] | None] = {start: None}
        queue = deque([start])
        while queue:
            room = queue.popleft()
            for direction, nxt in sorted(self.doors.get(room, {}).items()):
                if nxt in parents:
                    continue
                parents[nxt] = (room, direction)
                if nxt in goals:
                    path = []
                    while parents[nxt] is not None:
                        nxt, step = parents[nxt]
                        path.append(step)
                    return path[::-1]
                queue.append(nxt)
        return None

    @staticmethod
    def _segment(text: str, start: int, end: int) -> str:
        """The text describing a room: up to ``end`` (the next move or header), and no further than the end of
        the header's line -- unless the header stands alone on its line (a raw observation), then all of it."""
        line_end = text.find("\n", start, end)
        if line_end < 0 or not text[start:line_end].strip():
            return text[start:end]
        return text[start:line_end]

    @staticmethod
    def _adjacent(gap: str) -> bool:
        gap = _BRACKETS_RE.sub(" ", gap)
        return len(gap) <= _MAX_GAP and not re.search(r"[a-z]", gap)

    def _note_trail(self, trail: Trail, chunk: str) -> None:
        place = (trail.start, tuple(trail.moves))
        for word in self._words(chunk):
            self.trails.setdefault(word, set()).add(place)

    @staticmethod
    def _words(segment: str) -> set[str]:
        return set(words(_PUT_RE.sub(r"\1 \3 ", segment))) - _SKIP

    def _note(self, room: str, segment: str) -> None:
        for word in self._words(segment):
            self.seen.setdefault(word, set()).add(room)


_STEP = {"north": (0, 1, 0), "south": (0, -1, 0), "east": (1, 0, 0), "west": (-1, 0, 0), "up": (0, 0, 1),
         "down": (0, 0, -1)}


class Trail:
    """Moves made from a named room, with walks that come back to an earlier place cut out: text-game maps are
    grids, so a position reached again is the same room (``east, north, west, south`` leads nowhere)."""

    def __init__(self, start: str):
        self.start = start
        self.moves: list[str] = []
        self._positions = [(0, 0, 0)]

    def go(self, direction: str) -> None:
        step = _STEP[direction]
        here = tuple(a + b for a, b in zip(self._positions[-1], step, strict=True))
        if here in self._positions:
            keep = self._positions.index(here)
            del self._positions[keep + 1:]
            del self.moves[keep:]
        else:
            self._positions.append(here)
            self.moves.append(direction)
