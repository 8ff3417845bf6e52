"""Where to go next in a text game: the heuristic agent's sense of place and of the goal's progress.

A :class:`Navigator` keeps, for one episode:

* a :class:`~harness.agents.spatial.TextMap` merged from what the agent saw itself (doors taken, rooms entered
  and what was seen there, exits described, closed doors included) and from the memory text, block by block
  (:func:`~harness.agents.spatial.blocks`): a block whose map contradicts what the agent sees -- a door of the
  current room that it does not have, or a door that led elsewhere -- is distrusted and dropped from the map
  (memory of another world whose room names collide with this one);
* the goal's progress: the goal's entities in order, which of them are in hand (a ``take`` that worked), which
  are delivered (a ``put``/``insert`` that worked, into the place the goal names for that object -- goals of
  the form "find the X and put it on the Y" are parsed into such pairs);
* per room: the steps spent there, the exits it offered and the ones taken.

:meth:`Navigator.plan` decides the episode's next direction: the first move of the shortest known way to where
the first goal entity neither in hand nor delivered was seen (a named room, or the end of moves remembered
from a named room), giving up a room searched in vain and a way whose next exit does not exist here; with no
known way, an exit not taken yet (a closed door's too: then opening that door is the step), or the way to the
nearest room that has one. :meth:`Navigator.bonus` turns the plan into a score bonus for one admissible command;
a move the plan names is no dithering (:meth:`Navigator.planned`), even when it goes back the way it came.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from harness.agents.base import STOPWORDS, VERBS, words
from harness.agents.spatial import MOVE_RE, OPPOSITE, TextMap, blocks, room_of

#: words that are never a goal's entity
NOT_ENTITIES = STOPWORDS | VERBS | {"then"}
#: steps spent in a room where memory placed a goal entity, not finding it, before trying elsewhere
SEARCH_STEPS = 5
#: steps spent in a room trying to open the way a route takes (a closed door) before giving that route up
BLOCKED_STEPS = 2
#: "find the X and put it on/into the Y": which object goes where, when the goal says so
PAIR_RE = re.compile(r"find (?:the |a |an )?(.+?) and (?:put|place|insert) it (?:on|onto|into|in) (?:the |a |an )?"
                     r"(.+?)(?:[.;,]|$| then)")
#: answers to a command that did nothing
NO_EFFECT = re.compile(r"^\s*(you can't|you cannot|that's not|i don't|i didn't|i only understood|you don't see|"
                       r"nothing happens|there is no|you see no|you need|you're not|you are not)", re.IGNORECASE)
_PUT_RE = re.compile(r"(?:put|insert) (.+) (?:on|into|in) (.+)")
#: an exit a room's description mentions: "a closed portal leading north", "an exit to the west", "try going east"
_EXIT_RE = re.compile(r"(?:(?:closed|locked) ([a-z]+) )?(?:leading|to the|going|heading) (north|south|east|west)\b")


def _entities(text: str) -> set[str]:
    return set(words(text)) - NOT_ENTITIES


@dataclass(frozen=True)
class Plan:
    """The next direction: ``route`` (towards the goal, ``direction`` set) or ``explore`` (``direction`` None:
    any exit not taken yet)."""

    kind: str
    direction: str | None


class Navigator:
    """See the module docstring. ``route`` and ``frontier`` are the bonuses of a move on the way to the goal and
    of an exploring move."""

    def __init__(self, goal: str, observation: str, memory: str, *, route: float = 3.0, frontier: float = 1.0):
        self.w_route, self.w_frontier = route, frontier
        # memory's map, block by block: a block that contradicts what the agent sees is dropped (another world)
        self.blocks = [m for m in (TextMap().read(b) for b in blocks(memory)) if not m.empty] if memory else []
        self.distrusted: set[int] = set()
        self.own = TextMap()  # what the agent saw itself: always trusted, and first
        self.map = self._merged()
        self.goal_entities = list(dict.fromkeys(w for w in words(goal) if w not in NOT_ENTITIES))
        self.pairs = [(_entities(a), _entities(b)) for a, b in PAIR_RE.findall(goal.lower())]
        self.held: set[str] = set()
        self.done: set[str] = set()  # words of objects delivered (and of where they went): never taken back
        self.room = room_of(observation)
        if self.room:
            self._note(self.room, observation)
        self.last_action = ""
        self.room_steps: Counter[str] = Counter()
        self.steps_here = 0  # steps since the agent last entered its room
        self.searched: set[tuple[str, str]] = set()  # (entity, room): searched there without finding it
        self.obs_words: set[str] = set()
        self.moves: set[str] = set()  # the directions admissible now
        self.walked: set[tuple[str, str]] = set()  # (room, direction) moves made this episode
        self.exits: dict[str, set[str]] = {}  # room -> the moves it offered (or described) when the agent was there
        self.closed: dict[str, str] = {}  # direction -> the closed door the current room describes there

    def target(self) -> str | None:
        """The first goal entity neither in hand nor delivered."""
        return next((e for e in self.goal_entities if e not in self.held and e not in self.done), None)

    def observe(self, observation: str, actions: list[str]) -> None:
        """Learn from the answer to the last action (doors, rooms, things taken or delivered) and what is
        admissible now."""
        last, low = self.last_action, observation.lower()
        room = room_of(observation)
        move = MOVE_RE.fullmatch(last) if last else None
        if move and self.room:
            self.walked.add((self.room, move.group(1)))
            if room:
                self.own.add_door(self.room, move.group(1), room)
                self.map.add_door(self.room, move.group(1), room)
                if room != self.room and move.group(1) in OPPOSITE:
                    self.walked.add((room, OPPOSITE[move.group(1)]))  # the way back is known: no frontier
        if room:
            if room != self.room:
                self.steps_here = 0
                target = self.target()
                if self.room and target and self.room in self.map.rooms_with(target):
                    self.searched.add((target, self.room))  # left without it: it is not (or no longer) there
            arrived = (move.group(1), self.room) if move and self.room and room != self.room else None
            self.room = room
            self._note(room, observation)
        if self.room:
            self.room_steps[self.room] += 1
            self.steps_here += 1
        self.obs_words = set(words(observation))
        worked = not NO_EFFECT.match(low)
        if last.startswith("take ") and worked:
            self.held |= _entities(last.split(" from ")[0])
        put = _PUT_RE.match(last)
        if put and worked and _entities(put.group(1)) & self.held:
            thing, place = _entities(put.group(1)), _entities(put.group(2))
            if not self.pairs or any(thing <= x and place <= y for x, y in self.pairs):
                self.done |= thing | place
        self.moves = {m.group(1) for a in actions if (m := MOVE_RE.fullmatch(a.lower()))}
        if room:  # a room's description (not the answer to "open portal"): the exits it names, closed ones too
            described = _EXIT_RE.findall(low)
            self.closed = {d: door for door, d in described if door}
            self.exits[room] = self.moves | {d for _, d in described}
            self._check(self.exits[room], arrived)
        elif self.room:
            self.exits[self.room] = self.moves | self.exits.get(self.room, set())

    def _note(self, room: str, observation: str) -> None:
        self.own.note(room, observation)
        self.map.note(room, observation)

    def _merged(self) -> TextMap:
        """The agent's own map, then every memory block not distrusted (a door already known keeps its way)."""
        merged = TextMap().merge(self.own)
        for i, block in enumerate(self.blocks):
            if i not in self.distrusted:
                merged.merge(block)
        return merged

    def _check(self, exits: set[str], arrived: tuple[str, str] | None) -> None:
        """Distrust the memory blocks that contradict the current room's exits or the door just taken."""
        wrong = {i for i, block in enumerate(self.blocks)
                 if i not in self.distrusted and block.contradicts(self.room, exits, arrived)}
        if wrong:
            self.distrusted |= wrong
            self.map = self._merged()

    def record(self, action: str) -> None:
        """The agent chose ``action``."""
        self.last_action = action.lower()

    def plan(self, actions: list[str]) -> Plan | None:
        """Where to go next (see the module docstring); None when the local commands should decide."""
        if not self.room:
            return None
        direction = self._route(actions)
        if direction is not None:
            return Plan("route", direction)
        return self._explore()

    def planned(self, action: str, plan: Plan | None) -> bool:
        """Whether ``action`` is the move ``plan`` names (a deliberate way back is no dithering)."""
        move = MOVE_RE.fullmatch(action.lower())
        return bool(plan and plan.direction and move and move.group(1) == plan.direction)

    def bonus(self, action: str, plan: Plan | None) -> float:
        """The bonus ``plan`` gives ``action``."""
        if plan is None:
            return 0.0
        low = action.lower()
        move = MOVE_RE.fullmatch(low)
        weight = self.w_frontier if plan.kind == "explore" else self.w_route
        if move:
            fresh = (self.room, move.group(1)) not in self.walked
            return weight if move.group(1) == plan.direction or (plan.direction is None and fresh) else 0.0
        if not low.startswith("open ") or plan.direction in self.moves:
            return 0.0
        door = self.closed.get(plan.direction) if plan.direction else None
        if door:
            return weight if low == f"open {door}" else 0.0  # the closed door on the way
        if plan.kind == "route":
            return weight * 0.5  # perhaps the door on the way
        return 0.0

    def _route(self, actions: list[str]) -> str | None:
        entity = self.target()
        places = self.map.places(entity) if entity else set()
        if not places:
            return None  # not seen yet: explore (the goal's later entities wait until this one is in hand)
        best: list[str] | None = None
        for place in sorted(places):
            room, moves = self.map.locate(place)
            if not moves and (entity, room) in self.searched:
                continue
            if not moves and room == self.room:
                here = self.obs_words | {w for a in actions for w in words(a)}
                if entity in here or self.room_steps[self.room] < SEARCH_STEPS:
                    return None  # it is (or may be) here: the local commands will do
                self.searched.add((entity, self.room))  # searched long enough: try the next place it was seen
                continue
            path = self.map.route(self.room, {room})
            if path is None:
                continue
            path += list(moves)
            if path[0] not in self.moves and self.steps_here > BLOCKED_STEPS:
                continue  # no such exit here, and nothing opened one: a misremembered way
            if best is None or len(path) < len(best):
                best = path
        return best[0] if best else None

    def _explore(self) -> Plan | None:
        fresh = sorted(d for d in self.exits.get(self.room, self.moves) if (self.room, d) not in self.walked)
        if fresh:
            return Plan("explore", fresh[0] if len(fresh) == 1 else None)
        frontier = {r for r, exits in self.exits.items() if any((r, d) not in self.walked for d in exits)}
        path = self.map.route(self.room, frontier) if frontier else None
        return Plan("explore", path[0]) if path else None
