"""ALFWorld worlds built from the floor-plan layouts that the ``alfworld`` package ships.

A :class:`World` is fully determined by its floor plan (``"FloorPlan12"``), so ``world_id`` = floor plan:

* **receptacles**: every entry of ``FloorPlanN-openable.json`` (cabinets, drawers, countertops, fridge, ...; a
  ``Sink`` / ``Bathtub`` entry becomes its ``SinkBasin`` / ``BathtubBasin``, as in ALFRED), plus one instance of
  each static receptacle type that ``FloorPlanN-objects.json`` lists but the openable file lacks (garbage can,
  coffee machine, toaster, towel holders, ...; two stove burners). Each receptacle stands at its own location;
  the agent starts at a navigable point of ``FloorPlanN-layout.npy`` where no receptacle is ("in the middle of
  the room"). Openable classes come from ``constants.OPENABLE_CLASS_LIST``.
* **portable object types**: the pickupable types of the objects file (those ``VAL_RECEPTACLE_OBJECTS`` lets
  some receptacle of the room hold), at most :data:`MAX_OBJECT_TYPES` of them (chosen per floor plan, keeping
  at least one cleanable / heatable / coolable type where the room has a sink / microwave / fridge), each with
  one or two *home* receptacles where its instances usually lie: what an agent can learn about a room.
* a **desk lamp** (the only toggleable light that stands on furniture) where the objects file lists one, on a
  desk, side table, dresser or similar.

:func:`supported_task_types` says which of the six ALFWorld task types a world can pose.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from functools import lru_cache

from harness.envs.alfworld_pddl import builtin_paths, require_alfworld
from harness.errors import BenchmarkError

#: The six ALFWorld task types (ALFWorld's TASK_TYPES 1-6).
TASK_TYPES = ("pick_and_place_simple", "look_at_obj_in_light", "pick_clean_then_place_in_recep",
              "pick_heat_then_place_in_recep", "pick_cool_then_place_in_recep", "pick_two_obj_and_place")
#: The appliance each state-change task needs, the object property it needs and the predicate it sets.
APPLIANCE = {"pick_clean_then_place_in_recep": ("SinkBasin", "Cleanable"),
             "pick_heat_then_place_in_recep": ("Microwave", "Heatable"),
             "pick_cool_then_place_in_recep": ("Fridge", "Coolable")}
MAX_OBJECT_TYPES = 12
LAMP = "DeskLamp"
LAMP_HOLDERS = ("Desk", "SideTable", "Dresser", "DiningTable", "CoffeeTable", "TVStand", "Shelf", "CounterTop")
_BASINS = {"Sink": "SinkBasin", "Bathtub": "BathtubBasin"}
_EXTRA_COUNT = {"StoveBurner": 2}


def derive_seed(*labels: object) -> int:
    """A seed in [0, 2**31) derived from ``labels`` (stable across processes and platforms)."""
    digest = hashlib.sha256("/".join(str(x) for x in labels).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def coord_id(kind: str, x: float, y: float, z: float) -> str:
    """An ALFRED-style object id, e.g. ``Apple|+01.25|+00.90|-00.50``."""
    return f"{kind}|{x:+06.2f}|{y:+06.2f}|{z:+06.2f}"


@dataclass(frozen=True)
class Receptacle:
    rid: str  # ALFRED id, e.g. "Cabinet|+00.68|+00.50|-02.20"
    rtype: str  # e.g. "Cabinet"
    location: str  # e.g. "loc|3|-5|2|30"


@dataclass
class World:
    floor_plan: str
    room: str  # Kitchen, LivingRoom, Bedroom or Bathroom
    receptacles: list[Receptacle]
    start: str  # the agent's start location
    object_types: list[str]  # portable object types, sorted
    homes: dict[str, list[str]] = field(default_factory=dict)  # object type -> home receptacle ids
    lamp: tuple[str, str] | None = None  # (lamp id, receptacle id) or None

    @property
    def rtypes(self) -> set[str]:
        return {r.rtype for r in self.receptacles}

    def holders(self, otype: str, exclude_type: str | None = None) -> list[str]:
        """Receptacle ids that can hold ``otype`` (``VAL_RECEPTACLE_OBJECTS``), optionally not of one type."""
        val = _constants().VAL_RECEPTACLE_OBJECTS
        return [r.rid for r in self.receptacles if otype in val.get(r.rtype, ()) and r.rtype != exclude_type]

    def receptacle(self, rid: str) -> Receptacle:
        return next(r for r in self.receptacles if r.rid == rid)


def _constants():
    require_alfworld()
    import alfworld.gen.constants as constants

    return constants


def room_of(floor_plan: str) -> str:
    number = int(floor_plan.removeprefix("FloorPlan"))
    for room, numbers in _constants().SCENE_TYPE.items():
        if number in numbers:
            return room
    raise BenchmarkError(f"alfworld: {floor_plan} is not an ALFRED floor plan")


def floor_plans(split: str) -> list[str]:
    """ALFRED's scene split: ``"train"`` (its 96 training floor plans) or ``"test"`` (its 24 held-out ones),
    restricted to the layouts the installed package ships."""
    c = _constants()
    numbers = c.TRAIN_SCENE_NUMBERS if split == "train" else c.TEST_SCENE_NUMBERS
    layouts = builtin_paths()["layouts"]
    return [f"FloorPlan{n}" for n in numbers if (layouts / f"FloorPlan{n}-openable.json").is_file()]


def pickupable_types() -> frozenset[str]:
    c = _constants()
    return frozenset(t for holds in c.VAL_RECEPTACLE_OBJECTS.values() for t in holds if not t.endswith("Sliced"))


def _location(x: float, z: float, rotation: int, horizon: int) -> str:
    return f"loc|{round(x / 0.25)}|{round(z / 0.25)}|{int(rotation) // 90 % 4}|{int(horizon)}"


@lru_cache(maxsize=256)
def build_world(floor_plan: str) -> World:
    """The world of ``floor_plan`` (see the module docstring). Raises BenchmarkError for an unknown plan."""
    import numpy as np

    c = _constants()
    layouts = builtin_paths()["layouts"]
    try:
        listed = json.loads((layouts / f"{floor_plan}-objects.json").read_text())
        openable = json.loads((layouts / f"{floor_plan}-openable.json").read_text())
        grid = np.load(layouts / f"{floor_plan}-layout.npy")
    except (OSError, ValueError) as exc:
        raise BenchmarkError(f"alfworld: cannot read the shipped layout of {floor_plan} ({exc}); "
                             "reinstall alfworld (`pip install --force-reinstall alfworld`)") from exc
    rng = random.Random(derive_seed("alfworld-world", floor_plan))
    static = set(c.RECEPTACLES) - set(c.MOVABLE_RECEPTACLES)
    receptacles: list[Receptacle] = []
    used: set[str] = set()

    def add(rid: str, rtype: str, loc: str) -> None:
        base, k = loc, 1
        while loc in used:  # receptacles that share a viewpoint still get their own location
            loc, k = f"{base}|{k}", k + 1
        used.add(loc)
        receptacles.append(Receptacle(rid, rtype, loc))

    for key in sorted(openable):
        kind = key.split("|")[0]
        rtype = _BASINS.get(kind, kind)
        if rtype not in static:
            continue
        x, z, rotation, horizon = openable[key]
        add(key + (f"|{rtype}" if kind in _BASINS else ""), rtype, _location(x, z, rotation, horizon))
    points = [tuple(map(float, p)) for p in grid.tolist()]
    taken = {tuple(loc.split("|")[1:3]) for loc in used}
    free = [p for p in points if (str(round(p[0] / 0.25)), str(round(p[1] / 0.25))) not in taken] or points
    present = {r.rtype for r in receptacles}
    for kind in sorted(set(listed)):
        rtype = _BASINS.get(kind, kind)
        if rtype in present or rtype not in static:
            continue
        present.add(rtype)
        for x, z in rng.sample(points, min(len(points), _EXTRA_COUNT.get(rtype, 1))):
            rid = coord_id(kind, x, 0.9, z) + (f"|{rtype}" if kind in _BASINS else "")
            add(rid, rtype, _location(x, z, rng.choice((0, 90, 180, 270)), 30))
    if not receptacles:
        raise BenchmarkError(f"alfworld: {floor_plan} has no receptacles in its shipped layout")
    sx, sz = rng.choice(free)
    world = World(floor_plan=floor_plan, room=room_of(floor_plan), receptacles=receptacles,
                  start=_location(sx, sz, rng.choice((0, 90, 180, 270)), 30), object_types=[])
    _choose_object_types(world, listed, rng)
    if LAMP in listed:
        holders = [r for kind in LAMP_HOLDERS for r in receptacles if r.rtype == kind]
        if holders:
            holder = rng.choice(holders)
            world.lamp = (coord_id(LAMP, rng.uniform(-3, 3), 1.0, rng.uniform(-3, 3)), holder.rid)
    return world


def _choose_object_types(world: World, listed: list[str], rng: random.Random) -> None:
    c = _constants()
    candidates = sorted(t for t in set(listed) & pickupable_types() if world.holders(t))
    rng.shuffle(candidates)
    chosen = candidates[:MAX_OBJECT_TYPES]
    for appliance, prop in APPLIANCE.values():  # keep the room's appliances useful
        if appliance in world.rtypes and not any(t in c.VAL_ACTION_OBJECTS[prop] for t in chosen):
            extra = [t for t in candidates if t in c.VAL_ACTION_OBJECTS[prop]]
            if extra:
                chosen.append(extra[0])
    world.object_types = sorted(set(chosen))
    for otype in world.object_types:
        holders = world.holders(otype)
        world.homes[otype] = rng.sample(holders, min(len(holders), rng.choice((1, 2))))


def goal_candidates(world: World, task_type: str) -> list[tuple[str, str]]:
    """(object type, receptacle type) pairs ``task_type`` can ask for in ``world`` (receptacle type ``""`` for
    look-at tasks, whose second argument is the lamp)."""
    c = _constants()
    if task_type == "look_at_obj_in_light":
        return [(t, "") for t in world.object_types] if world.lamp else []
    appliance, prop = APPLIANCE.get(task_type, (None, None))
    if appliance and appliance not in world.rtypes:
        return []
    pairs = []
    for otype in world.object_types:
        if prop and otype not in c.VAL_ACTION_OBJECTS[prop]:
            continue
        for rtype in sorted(world.rtypes):
            if rtype == appliance or otype not in c.VAL_RECEPTACLE_OBJECTS.get(rtype, ()):
                continue
            if world.holders(otype, exclude_type=rtype):  # the object can start elsewhere
                pairs.append((otype, rtype))
    return pairs


@lru_cache(maxsize=256)
def supported_task_types(floor_plan: str) -> tuple[str, ...]:
    world = build_world(floor_plan)
    return tuple(t for t in TASK_TYPES if goal_candidates(world, t))
