"""Household errands in "go to <place>" worlds (ALFWorld): the heuristic agent's plan for one episode.

ALFWorld has no rooms and doors; the agent walks between numbered receptacles (``go to drawer 2``), opens
them, and takes, transforms and places objects. A :class:`Errand` reads the goal once -- what to fetch, how
many, whether it must be cleaned, heated or cooled first (at a sink basin, microwave or fridge), or looked at
under a lamp -- and then, from what each step's answer says was seen where, names the one command that moves
the errand on: take a seen object, go to where one was seen, use the appliance, open and fill the
destination, or explore the place not visited yet that memory names next to the object (else the next one).

It reads only the goal, observations, admissible commands, its own commands and the memory text.
"""

from __future__ import annotations

import re

#: the goal sentences of ALFWorld's six task types (alfworld.gen.goal_library), as (pattern, kind)
_GOALS = [
    (re.compile(r"(?:look at|examine the) (\w+) (?:under|with) the (\w+)"), "look"),
    (re.compile(r"(?:put|find) two (\w+) (?:and put them )?(?:in|on) (\w+)"), "two"),
    (re.compile(r"put an? (clean|hot|cool) (\w+) (?:in|on) (\w+)"), "state"),
    (re.compile(r"(clean|heat|cool) some (\w+) and put it (?:in|on) (\w+)"), "state"),
    (re.compile(r"put (?:a|an|some) (\w+) (?:in|on) (\w+)"), "simple"),
]
#: how an object is transformed, and where
TRANSFORM = {"clean": ("clean", "sinkbasin"), "hot": ("heat", "microwave"), "heat": ("heat", "microwave"),
             "cool": ("cool", "fridge")}
_THING_RE = re.compile(r"\b([a-z]+) (\d+)\b")
_SEEN_RE = re.compile(r"you see (.+?)(?:\.|$)")
_ARRIVE_RE = re.compile(r"you arrive at (?:the )?([a-z]+ \d+)")
_PICK_RE = re.compile(r"you pick up the ([a-z]+ \d+)")
_DONE_RE = re.compile(r"you (?:clean|heat|cool) the ([a-z]+ \d+)")
_PLACED_RE = re.compile(r"you (?:move|put) the ([a-z]+ \d+) (?:to|in|on|into) the ([a-z]+ \d+)")


def parse_goal(goal: str) -> tuple[str, str, str | None, int] | None:
    """(object type, destination or lamp type, transform verb or "look" or None, how many), or None."""
    low = goal.lower()
    for pattern, kind in _GOALS:
        m = pattern.search(low)
        if not m:
            continue
        if kind == "look":
            return m.group(1), m.group(2), "look", 1
        if kind == "two":
            return m.group(1), m.group(2), None, 2
        if kind == "state":
            return m.group(2), m.group(3), TRANSFORM[m.group(1)][0], 1
        return m.group(1), m.group(2), None, 1
    return None


def _kind(thing: str) -> str:
    return thing.rsplit(" ", 1)[0]


class Errand:
    """See the module docstring. :meth:`observe` after every answer, then :meth:`next_action`."""

    def __init__(self, goal: str, observation: str, memory: str):
        parsed = parse_goal(goal)
        self.active = parsed is not None
        # (how many is not needed: a placed object is never taken again, and the game ends with the last one)
        self.obj, self.dest, self.verb, _ = parsed or ("", "", None, 1)
        low_memory = memory.lower()
        # place types memory mentions next to the object (e.g. "take ladle 1 from countertop 1"): searched first
        chunks = [c for c in re.split(r"->|[\n;|]", low_memory) if re.search(rf"\b{re.escape(self.obj)}\b", c)]
        self.hinted = [_kind(t) for c in chunks for t in (f"{a} {b}" for a, b in _THING_RE.findall(c))
                       if _kind(t) != self.obj] if self.active else []
        self.places: list[str] = []
        self.visited: set[str] = set()
        self.seen: dict[str, set[str]] = {}  # place -> things seen there
        self.at: str | None = None
        self.holding: str | None = None
        self.transformed = False
        self.placed: set[str] = set()
        self.last = ""  # the agent's last command
        self.observe(observation, [])

    def observe(self, observation: str, actions: list[str]) -> None:
        low = " ".join(observation.lower().split())
        for place in (a[6:] for a in (x.lower() for x in actions) if a.startswith("go to ")):
            if place not in self.places:
                self.places.append(place)  # (where the agent stands is no "go to" target: keep what was listed)
        arrived = _ARRIVE_RE.search(low)
        if low.startswith("you arrive at") and self.last.startswith("go to "):
            self.at = self.last[6:]  # (older ALFWorld data says "you arrive at loc 12" instead of the place)
        elif arrived:
            self.at = arrived.group(1)
        if self.at and low.startswith("you arrive at"):
            self.visited.add(self.at)
        if self.at and not low.startswith("you are in the middle"):  # (the start lists places, not things)
            for seen in _SEEN_RE.findall(low):
                self.seen[self.at] = {f"{a} {b}" for a, b in _THING_RE.findall(seen)}  # what is there now
        picked = _PICK_RE.search(low)
        if picked:
            self.holding = picked.group(1)
            for things in self.seen.values():
                things.discard(self.holding)
        if _DONE_RE.search(low):
            self.transformed = True
        placed = _PLACED_RE.search(low)
        if placed and self.holding == placed.group(1):
            if _kind(placed.group(2)) == self.dest:
                self.placed.add(self.holding)
            self.holding, self.transformed = None, False

    def record(self, action: str) -> None:
        """The agent chose ``action``."""
        self.last = action.lower()

    def next_action(self, actions: list[str]) -> str | None:
        """The admissible command that moves the errand on, or None (then the agent's scores decide)."""
        if not self.active:
            return None
        low = [a.lower() for a in actions]
        if self.holding:
            if self.verb == "look":
                return self._use_at(self.dest, "use {}", low)
            if self.verb and not self.transformed:
                appliance = next(t for v, t in TRANSFORM.values() if v == self.verb)
                return self._use_at(appliance, f"{self.verb} {self.holding} with {{}}", low)
            return self._put(low)
        return self._fetch(low)

    def _use_at(self, kind: str, template: str, low: list[str]) -> str | None:
        """Use ``kind`` -- a place (sink basin, microwave, fridge) or a thing seen somewhere (a desk lamp)."""
        if any(_kind(p) == kind for p in self.places):
            if self.at and _kind(self.at) == kind:
                wanted = template.format(self.at)
                return wanted if wanted in low else self._open_here(low)
            return self._go(next(p for p in self.places if _kind(p) == kind), low)
        here = [t for t in self.seen.get(self.at or "", set()) if _kind(t) == kind]
        if here:
            wanted = template.format(sorted(here)[0])
            return wanted if wanted in low else None
        there = sorted(p for p, things in self.seen.items() if any(_kind(t) == kind for t in things))
        return self._go(there[0], low) if there else self._explore(low)

    def _put(self, low: list[str]) -> str | None:
        if self.at and _kind(self.at) == self.dest:
            for verb in ("move", "put"):
                for a in low:
                    if a.startswith(f"{verb} {self.holding} ") and a.endswith(f" {self.at}"):
                        return a
            return self._open_here(low)
        return self._go(next((p for p in self.places if _kind(p) == self.dest), None), low)

    def _fetch(self, low: list[str]) -> str | None:
        here = [t for t in self.seen.get(self.at or "", set()) if _kind(t) == self.obj and t not in self.placed]
        for thing in here:
            for a in low:
                if a.startswith(f"take {thing} from "):
                    return a
        if self.at is None or _kind(self.at) != self.dest:
            opened = self._open_here(low)
            if opened:
                return opened
        elsewhere = [p for p, things in self.seen.items() if p != self.at and _kind(p) != self.dest
                     and any(_kind(t) == self.obj and t not in self.placed for t in things)]
        return self._go(elsewhere[0], low) if elsewhere else self._explore(low)

    def _open_here(self, low: list[str]) -> str | None:
        wanted = f"open {self.at}" if self.at else None
        return wanted if wanted in low else None

    def _explore(self, low: list[str]) -> str | None:
        fresh = [p for p in self.places if p not in self.visited]
        if not fresh:
            return None
        order = {kind: i for i, kind in reversed(list(enumerate(self.hinted)))}
        fresh.sort(key=lambda p: (order.get(_kind(p), len(order)), _kind(p) == self.dest))
        return self._go(fresh[0], low)

    def _go(self, place: str | None, low: list[str]) -> str | None:
        wanted = f"go to {place}" if place else None
        return wanted if wanted in low else None
