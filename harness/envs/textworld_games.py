"""Offline generation and on-disk cache of TextWorld "fetch" games.

A game is fully determined by a :class:`GameParams`: a :class:`Level` (world size and quest shape), the
seeds of its world (``map``, ``objects``, ``grammar``) and its quest (``quest`` seed plus ``quest_index``).
Games that share the three world seeds and the level play in the *same world*: same rooms, same names, same
furniture and objects in the same places; only the start room and the requested objects differ.

Generation uses TextWorld's own generator pieces (``make_map``, ``World``, ``Quest``/``Event``, the grammar
and the Inform7 compiler, ``.z8`` output) with our own object placement and quest choice:

* the map comes from ``textworld.generator.make_map`` (doors open or closed);
* containers (open, closed, or locked with a key lying elsewhere), supporters and portable objects are
  placed from the ``objects`` seed; names and descriptions come from the grammar seeded by ``grammar``;
* a quest asks for ``n_goals`` fetches "find X and put it on/into Y" (see :func:`choose_quest`): X never
  starts in the start room and Y is in another room than X. Each fetch is worth two points (holding X,
  then X on/in Y), so ``progress`` moves mid-quest;
* a breadth-first planner over TextWorld's own action rules checks that the quest is solvable; its plan is
  stored as the game's walkthrough (in the game's ``.json``; only tests may read it). Quest events are
  condition-only, so TextWorld tracks them from the state alone and never declares a quest unfinishable.

The objective names what to find and where to put it, never where things are.

Cache layout (``cache_dir``): ``<key>.z8`` (the story), ``<key>.json`` (TextWorld's game description, which
its environment needs next to the story) and ``<key>.meta.json`` (our record, written last, marking the
entry complete). ``key`` hashes the generation parameters, the generator version and TextWorld's version.
Each game is compiled in a private temporary folder and moved into place, so an interrupted run never
leaves a half game.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.errors import BenchmarkError

#: Bump when a change to this module changes the games it makes (it is part of every cache key).
GENERATOR_VERSION = 2

#: How many games this process has generated (tests use it to prove that a cached suite is not regenerated).
GENERATION_COUNT = 0

_STALE_TMP_S = 3600.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Level:
    """The shape of a world and of its quests. ``n_locked`` containers are locked, their keys elsewhere."""

    name: str
    n_rooms: int
    n_containers: int
    n_supporters: int
    n_objects: int
    n_locked: int = 0
    n_goals: int = 1
    #: how many of the world's objects its quests ask for (None = all): a small pool makes quests of one
    #: world recur on the same objects with other destinations and start rooms, as ALFWorld's tasks recur
    #: on the same object types in a floor plan, so what was learnt about where things are transfers.
    target_pool: int | None = None


#: Named levels. ``fetch6`` is the default train / in-distribution level; ``fetch9x2`` the default OOD one.
LEVELS: dict[str, Level] = {
    "fetch6": Level("fetch6", n_rooms=6, n_containers=3, n_supporters=3, n_objects=7, target_pool=3),
    "fetch9x2": Level("fetch9x2", n_rooms=9, n_containers=4, n_supporters=4, n_objects=9, n_locked=1,
                      n_goals=2),
}


@dataclass(frozen=True)
class GameParams:
    """All that determines one game; ``seeds`` has keys ``map``, ``objects``, ``grammar``, ``quest``."""

    level: Level
    seeds: dict[str, int]
    quest_index: int

    def world_seeds(self) -> dict[str, int]:
        return {k: self.seeds[k] for k in ("map", "objects", "grammar")}

    def to_dict(self) -> dict[str, Any]:
        return {"level": asdict(self.level), "seeds": dict(self.seeds), "quest_index": self.quest_index}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GameParams:
        seeds = {k: int(v) for k, v in data["seeds"].items()}
        return cls(Level(**data["level"]), seeds, int(data["quest_index"]))

    def key(self) -> str:
        """Cache key: a hash of the parameters, the generator version and TextWorld's version."""
        import textworld

        blob = json.dumps({"params": self.to_dict(), "generator": GENERATOR_VERSION,
                           "textworld": textworld.__version__}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]


def derive_seed(*labels: Any) -> int:
    """A seed in [0, 2**31) derived from ``labels`` (stable across processes and platforms)."""
    digest = hashlib.sha256("/".join(str(x) for x in labels).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def default_cache_dir() -> Path:
    """``$ALMA_CACHE_DIR/textworld`` if set, else ``~/.cache/alma-engine/textworld``."""
    root = os.environ.get("ALMA_CACHE_DIR")
    base = Path(root) if root else Path.home() / ".cache" / "alma-engine"
    return base / "textworld"


# --------------------------------------------------------------------------------------------- world building
def _kb():
    from textworld.generator.data import KnowledgeBase

    return KnowledgeBase.default()


def build_world(level: Level, seeds: dict[str, int]):
    """The textworld ``World`` (no player yet) of ``level`` for the ``map`` and ``objects`` seeds."""
    from numpy.random import RandomState
    from textworld.generator import World, make_map
    from textworld.logic import Proposition, Variable

    rng_map, rng = RandomState(seeds["map"]), RandomState(seeds["objects"])
    graph = make_map(n_rooms=level.n_rooms, rng=rng_map, possible_door_states=["open", "closed"])
    world = World.from_map(graph, kb=_kb())
    rooms = sorted(world.rooms, key=lambda r: r.id)
    facts: list = []
    containers = [Variable(f"c_{i}", "c") for i in range(level.n_containers)]
    supporters = [Variable(f"s_{i}", "s") for i in range(level.n_supporters)]
    for holder in containers + supporters:
        facts.append(Proposition("at", [holder, rooms[rng.randint(len(rooms))]]))
    n_locked = min(level.n_locked, len(containers))
    for i, container in enumerate(containers):
        status = "locked" if i < n_locked else str(rng.choice(["open", "closed"]))
        facts.append(Proposition(status, [container]))
    holders = containers + supporters
    for i in range(level.n_objects):
        kind = "f" if rng.rand() < 0.25 else "o"
        obj = Variable(f"{kind}_{i}", kind)
        if kind == "f":
            facts.append(Proposition("edible", [obj]))
        facts.append(_place(obj, holders, rooms, rng))
    # Keys of locked containers lie on a supporter or on a floor, never in a container: always reachable.
    for i, container in enumerate(containers[:n_locked]):
        key = Variable(f"k_{i}", "k")
        facts.append(Proposition("match", [key, container]))
        facts.append(_place(key, supporters, rooms, rng))
    world.add_facts(facts)
    return world


def _place(obj, holders, rooms, rng):
    from textworld.logic import Proposition

    pick = rng.randint(len(holders) + len(rooms))
    if pick < len(holders):
        holder = holders[pick]
        return Proposition("in" if holder.type == "c" else "on", [obj, holder])
    return Proposition("at", [obj, rooms[pick - len(holders)]])


def _room_of(state, name: str) -> str:
    """Name of the room where entity ``name`` is (following in/on chains)."""
    for _ in range(8):
        for fact in state.facts:
            if fact.name in ("at", "in", "on") and fact.arguments[0].name == name:
                if fact.arguments[1].type == "r":
                    return fact.arguments[1].name
                name = fact.arguments[1].name
                break
        else:
            break
    raise BenchmarkError(f"textworld generator: cannot locate entity {name!r}; report this as a bug")


# ----------------------------------------------------------------------------------------------- quest choice
@dataclass(frozen=True)
class QuestChoice:
    """Start room and the (target object, destination holder) pairs of a quest, as TextWorld entity ids."""

    start: str
    fetches: tuple[tuple[str, str], ...]


def choose_quest(world, level: Level, quest_seed: int, quest_index: int) -> QuestChoice:
    """Deterministic quest ``quest_index`` of ``world``.

    Targets are taken in a seed-shuffled order (the first ``level.target_pool`` of it, when set), so
    consecutive quest indices ask for different objects; once every target was used, the next round pairs them
    with other destinations. Quest indices below
    ``n_targets * n_destinations / n_goals`` (about 20 for ``fetch6``) give distinct fetches."""
    from numpy.random import RandomState

    state = world.state
    objects = sorted(o.name for o in world.objects if o.type == "o")
    dests = sorted(o.name for o in world.objects if o.type in ("c", "s"))
    where = {n: _room_of(state, n) for n in objects + dests}
    valid = {t: [d for d in dests if where[d] != where[t]] for t in objects}
    targets = [t for t in objects if valid[t]]  # a target needs a destination outside its own room
    if len(targets) < level.n_goals:
        raise BenchmarkError(f"level {level.name!r} (seeds {quest_seed}) yields too few target objects; "
                             "use another suite seed or a larger level")
    order = [targets[i] for i in RandomState(quest_seed).permutation(len(targets))]
    if level.target_pool is not None:
        order = order[: max(level.n_goals, level.target_pool)]
    fetches: list[tuple[str, str]] = []
    for goal in range(level.n_goals):
        slot = quest_index * level.n_goals + goal
        target = order[slot % len(order)]
        shuffle = RandomState(derive_seed(quest_seed, target)).permutation(len(valid[target]))
        choices = [valid[target][i] for i in shuffle]
        fetches.append((target, choices[(slot // len(order)) % len(choices)]))
    rooms = sorted(r.name for r in world.rooms if r.name != where[fetches[0][0]])
    start = rooms[RandomState(derive_seed(quest_seed, quest_index)).randint(len(rooms))]
    return QuestChoice(start=start, fetches=tuple(fetches))


def plan_fetch(state, target, dest, max_states: int = 50_000) -> list | None:
    """Shortest action list (TextWorld ``Action`` objects) that puts ``target`` on/in ``dest``, or None.

    Breadth-first over TextWorld's rules, restricted to moving, opening/unlocking, and taking only the target
    or keys, so the search stays small."""
    from textworld.logic import Placeholder, Proposition, Variable

    wanted = ("go/", "open/", "unlock/", "take", "put", "insert")
    rules = [rule for name, rule in _kb().rules.items() if name.startswith(wanted)]
    fixed = {Placeholder("P", "P"): Variable("P", "P"), Placeholder("I", "I"): Variable("I", "I")}
    goal = Proposition("in" if dest.type == "c" else "on", [target, dest])
    start = state.copy()
    seen = {frozenset(start.facts)}
    queue = deque([(start, [])])
    while queue:
        current, actions = queue.popleft()
        if current.is_fact(goal):
            return actions
        for action in current.all_applicable_actions(rules, fixed):
            moved = action.variables
            if action.name.startswith("take") and _taken(action) != target and _taken(action).type != "k":
                continue
            if action.name in ("put", "insert") and (target not in moved or dest not in moved):
                continue
            nxt = current.apply_on_copy(action)
            key = frozenset(nxt.facts)
            if key not in seen and len(seen) < max_states:
                seen.add(key)
                queue.append((nxt, actions + [action]))
    return None


def _taken(action):
    """The object a take-action puts into the inventory."""
    for fact in action.added:
        if fact.name == "in" and fact.arguments[1].name == "I":
            return fact.arguments[0]
    raise BenchmarkError(f"textworld generator: unexpected take action {action}; report this as a bug")


# ---------------------------------------------------------------------------------------------- game creation
def make_game(params: GameParams):
    """Build (not compile) the textworld ``Game`` for ``params``; returns ``(game, meta)``."""
    from numpy.random import RandomState
    from textworld.generator import make_game_with, make_grammar
    from textworld.generator.game import Event, Quest
    from textworld.logic import Proposition

    level = params.level
    world = build_world(level, params.seeds)
    choice = choose_quest(world, level, params.seeds["quest"], params.quest_index)
    world.set_player_room(choice.start)
    inventory = world.inventory
    state = world.state.copy()
    plan: list = []
    quests = []
    for target_id, dest_id in choice.fetches:
        target, dest = state.variable_named(target_id), state.variable_named(dest_id)
        steps = plan_fetch(state, target, dest)
        if steps is None:
            raise BenchmarkError(f"textworld generator: quest {choice} is unsolvable; report this as a bug")
        for action in steps:
            state.apply(action)
        held = Proposition("in", [target, inventory])
        placed = Proposition("in" if dest.type == "c" else "on", [target, dest])
        # Condition-only events: TextWorld then tracks them by state alone. (With action lists it builds
        # dependency trees that blow up on long back-and-forth plans and can declare a quest unfinishable.)
        quests.append(Quest(win_events=[Event(conditions=[held])], desc="hold"))
        quests.append(Quest(win_events=[Event(conditions=[placed])], desc="place"))
        plan += steps
    grammar = make_grammar({"theme": "house"}, rng=RandomState(params.seeds["grammar"]))
    game = make_game_with(world, quests, grammar)
    names = {k: v.name for k, v in game.infos.items()}
    parts = [f"find the {names[t]} and put it {'into' if d.startswith('c_') else 'on'} the {names[d]}"
             for t, d in choice.fetches]
    objective = ", then ".join(parts) + "."
    objective = objective[0].upper() + objective[1:]
    for quest in game.quests:
        quest.desc = objective
    game.objective = objective
    game.metadata["walkthrough"] = [action.format_command(names) for action in plan]  # tests only
    game.metadata["uuid"] = f"alma-tw-{params.key()}"
    meta = {"params": params.to_dict(), "objective": objective, "start_room": names[choice.start],
            "fetches": [[names[t], names[d]] for t, d in choice.fetches], "generator": GENERATOR_VERSION}
    return game, meta


# ---------------------------------------------------------------------------------------------------- cache
def game_paths(cache_dir: Path, key: str) -> dict[str, Path]:
    return {ext: Path(cache_dir) / f"{key}{ext}" for ext in (".z8", ".json", ".meta.json")}


def check_cached(paths: dict[str, Path]) -> str | None:
    """None if the cached game in ``paths`` is complete and sane, else what is wrong with it."""
    for path in paths.values():
        if not path.is_file():
            return f"{path} is missing"
    with open(paths[".z8"], "rb") as fh:
        header = fh.read(64)
    if len(header) < 64 or header[0] != 8:
        return f"{paths['.z8']} is not a Z-machine version 8 story"
    try:
        json.loads(paths[".meta.json"].read_text())
        json.loads(paths[".json"].read_text())
    except (OSError, ValueError) as exc:
        return f"cached game description is unreadable ({exc})"
    return None


def ensure_game(params: GameParams, cache_dir: str | Path) -> Path:
    """Path of the compiled ``.z8`` game for ``params``, generating and caching it if needed.

    Raises BenchmarkError if generation or compilation fails."""
    global GENERATION_COUNT
    cache_dir = Path(cache_dir)
    key = params.key()
    paths = game_paths(cache_dir, key)
    if check_cached(paths) is None:
        return paths[".z8"]
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        _remove_stale_tmp(cache_dir)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=cache_dir))
    except OSError as exc:
        raise BenchmarkError(f"textworld cache {cache_dir} is not writable ({exc}); set ALMA_CACHE_DIR "
                             "or pass cache_dir= to a writable folder") from exc
    started = time.monotonic()
    try:
        from textworld.generator import compile_game
        from textworld.generator.game import GameOptions

        game, meta = make_game(params)
        options = GameOptions()
        options.path = str(tmp / f"{key}.z8")
        options.force_recompile = True
        compile_game(game, options)
        (tmp / f"{key}.meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
        paths[".meta.json"].unlink(missing_ok=True)  # an old, broken entry is incomplete from here on
        for ext in (".json", ".z8", ".meta.json"):  # the meta file last: it marks the entry complete
            os.replace(tmp / f"{key}{ext}", paths[ext])
    except BenchmarkError:
        raise
    except Exception as exc:  # textworld raises many kinds (compiler errors, generation errors, ...)
        raise BenchmarkError(f"textworld: generating game {key} ({params.to_dict()}) failed: "
                             f"{type(exc).__name__}: {exc}. Check that textworld's Inform7 compiler works "
                             "(`tw-make tw-simple --rewards dense --goal brief --output /tmp/x.z8`)") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    GENERATION_COUNT += 1
    log.info("textworld: generated game %s (%s) in %.1fs", key, params.level.name, time.monotonic() - started)
    return paths[".z8"]


def _remove_stale_tmp(cache_dir: Path) -> None:
    """Remove temporary folders left by killed runs (older than an hour)."""
    now = time.time()
    for entry in cache_dir.glob(".tmp-*"):
        try:
            if now - entry.stat().st_mtime > _STALE_TMP_S:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            pass
