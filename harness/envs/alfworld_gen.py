"""Local generation of ALFWorld-style games from what the ``alfworld`` package ships, with an on-disk cache.

The package ships the PDDL domain (``alfred.pddl``), the text grammar (``alfred.twl2``), the 120 ALFRED floor
plans (layouts, object lists, openable-receptacle lists), the object/receptacle constants and the goal library,
but no games (the official ones are a separate download). A game here is fully determined by a
:class:`GameParams` (floor plan, task type, task seed):

1. the world of the floor plan (:func:`harness.envs.alfworld_scenes.build_world`: receptacles, portable object
   types and their home receptacles, desk lamp);
2. a goal: a random (object type, receptacle type) pair the task type allows there (clean needs a sink basin
   and a cleanable object, heat a microwave, cool a fridge, look-at a desk lamp, pick-two two instances), its
   PDDL goal from ``goal_library.gdict`` and its sentence from the same entry's templates, exactly as ALFWorld
   fills them ("put a hot apple in countertop.");
3. object instances: 1-2 per portable type (2-3 of a pick-two target), each in one of its type's home
   receptacles with probability :data:`P_HOME`, else in any receptacle that may hold it; no instance of the
   target starts in a receptacle of the target type. Objects that start in a fridge are cool (as in ALFRED);
4. the PDDL problem, in ALFRED's naming (``Cabinet_bar__plus_00_dot_68...``) and without a ``(:metric ...)``
   clause, and the game file ALFWorld's ``alfworld-generate`` writes (``pddl_domain``, ``grammar`` with
   the task sentence filled in, ``pddl_problem``, ``solvable``);
5. the check: the package's planner (fast downward, through ``PddlEnv``'s ``policy_commands``) must find a plan
   of at most :data:`MAX_PLAN` commands, and replaying that plan through the same wrapped environment the agent
   plays must win. Otherwise the next attempt (re-derived seed) is tried, up to :data:`ATTEMPTS`.

Scores on these games are NOT comparable to published ALFWorld numbers (other object sets and placements, no
human-written goals, no official train/valid games).

Cache layout (``cache_dir``): ``<key>.tw-pddl`` (the game) and ``<key>.meta.json`` (goal, task type, plan for
tests, generation record; written last, it marks the entry complete). ``key`` hashes the parameters, the
generator version and alfworld's version. Both files are written to temporary names and renamed into place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.envs.alfworld_pddl import (
    PDDL_LOCK,
    alfworld_version,
    builtin_paths,
    close_pddl_env,
    open_pddl_env,
    pddl_session,
)
from harness.envs.alfworld_scenes import (
    APPLIANCE,
    LAMP,
    TASK_TYPES,
    World,
    build_world,
    coord_id,
    derive_seed,
    goal_candidates,
)
from harness.errors import BenchmarkError

#: Bump when a change to this module (or to alfworld_scenes) changes the games it makes (part of every key).
GENERATOR_VERSION = 1
#: How many games this process has generated (tests use it to prove that a cached suite is not regenerated).
GENERATION_COUNT = 0
P_HOME = 0.75
MAX_PLAN = 20
ATTEMPTS = 6
_STALE_TMP_S = 3600.0
GAME_EXT, META_EXT = ".tw-pddl", ".meta.json"
_SUBST = {"|": "_bar_", "+": "_plus_", "-": "_minus_", ".": "_dot_", ",": "_comma_"}


@dataclass(frozen=True)
class GameParams:
    """Everything that determines one generated game."""

    floor_plan: str
    task_type: str
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GameParams:
        return cls(str(data["floor_plan"]), str(data["task_type"]), int(data["seed"]))

    def key(self) -> str:
        blob = json.dumps({"params": self.to_dict(), "generator": GENERATOR_VERSION,
                           "alfworld": alfworld_version()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]


def pddl_name(name: str) -> str:
    """ALFRED's PDDL spelling of an id: ``Cabinet|+00.68|...`` -> ``Cabinet_bar__plus_00_dot_68...``."""
    return "".join(_SUBST.get(ch, ch) for ch in name)


@dataclass
class Draft:
    """A sampled game before the planner check."""

    params: GameParams
    world: World
    obj: str
    recep: str  # receptacle type; "" for look-at tasks
    toggle: str  # lamp type for look-at tasks, else ""
    goal_text: str
    objects: list[tuple[str, str, str]]  # (object id, type, receptacle id)


def sample_draft(params: GameParams, attempt: int = 0) -> Draft:
    """Sample goal and object placement for ``params`` (deterministic for ``attempt``)."""
    import alfworld.gen.goal_library as glib

    if params.task_type not in TASK_TYPES:
        raise BenchmarkError(f"alfworld: unknown task type {params.task_type!r}; known: {', '.join(TASK_TYPES)}")
    world = build_world(params.floor_plan)
    pairs = goal_candidates(world, params.task_type)
    if not pairs:
        raise BenchmarkError(f"alfworld: {params.floor_plan} cannot pose a {params.task_type} task "
                             "(missing appliance, lamp or suitable object); pick another floor plan")
    rng = random.Random(derive_seed("alfworld-game", params.floor_plan, params.task_type, params.seed, attempt))
    obj, recep = rng.choice(pairs)
    toggle = LAMP if params.task_type == "look_at_obj_in_light" else ""
    template = rng.choice(glib.gdict[params.task_type]["templates"])
    goal_text = template.format(obj=obj.lower(), recep=recep.lower(), toggle=toggle.lower(), mrecep="")
    objects: list[tuple[str, str, str]] = []
    ids: set[str] = set()
    for otype in world.object_types:
        count = rng.choice((1, 2))
        if otype == obj and params.task_type == "pick_two_obj_and_place":
            count = rng.choice((2, 3))
        holders = world.holders(otype, exclude_type=recep if otype == obj and recep else None)
        homes = [h for h in world.homes.get(otype, []) if h in holders]
        for _ in range(count):
            where = rng.choice(homes) if homes and rng.random() < P_HOME else rng.choice(holders)
            oid = coord_id(otype, rng.uniform(-3, 3), rng.uniform(0.5, 1.5), rng.uniform(-3, 3))
            while oid in ids:
                oid = coord_id(otype, rng.uniform(-3, 3), rng.uniform(0.5, 1.5), rng.uniform(-3, 3))
            ids.add(oid)
            objects.append((oid, otype, where))
    return Draft(params, world, obj, recep, toggle, goal_text, objects)


def problem_text(draft: Draft, targets_only: bool = False) -> str:
    """The PDDL problem of ``draft`` in ALFRED's naming (no ``(:metric ...)`` clause); ``targets_only`` keeps
    only the objects of the target type (and the lamp), for the planner."""
    import alfworld.gen.constants as c
    import alfworld.gen.goal_library as glib

    world = draft.world
    objects = [o for o in draft.objects if not targets_only or o[1] == draft.obj]
    if world.lamp:
        objects.append((world.lamp[0], LAMP, world.lamp[1]))
    loc = {r.rid: r.location for r in world.receptacles}
    otypes = sorted({t for _, t, _ in objects} | {draft.obj, "Knife", "ButterKnife"})
    rtypes = sorted(world.rtypes | {a for a, _ in APPLIANCE.values()} | ({draft.recep} - {""}))
    decl = [("agent1", "agent")] + [(f"{t}Type", "otype") for t in otypes] + [(f"{t}Type", "rtype") for t in rtypes]
    decl += [(o, "object") for o, _, _ in objects] + [(r.rid, "receptacle") for r in world.receptacles]
    decl += [(x, "location") for x in sorted(set(loc.values()) | {world.start})]
    init = ["(= (total-cost) 0)", f"(atLocation agent1 {world.start})"]
    for r in world.receptacles:
        init += [f"(receptacleType {r.rid} {r.rtype}Type)", f"(receptacleAtLocation {r.rid} {r.location})"]
        if r.rtype in c.OPENABLE_CLASS_SET:
            init.append(f"(openable {r.rid})")
    props = {"Cleanable": "cleanable", "Heatable": "heatable", "Coolable": "coolable", "Sliceable": "sliceable"}
    for oid, otype, where in objects:
        init += [f"(objectType {oid} {otype}Type)", f"(inReceptacle {oid} {where})",
                 f"(objectAtLocation {oid} {loc[where]})"]
        init.append(f"(toggleable {oid})" if otype == LAMP else f"(pickupable {oid})")
        init += [f"({pred} {oid})" for group, pred in props.items() if otype in c.VAL_ACTION_OBJECTS[group]]
        if world.receptacle(where).rtype == "Fridge" and otype in c.VAL_ACTION_OBJECTS["Coolable"]:
            init.append(f"(isCool {oid})")
    present = sorted({t for _, t, _ in objects})
    for rtype in sorted(world.rtypes):
        init += [f"(canContain {rtype}Type {t}Type)" for t in present if t in c.VAL_RECEPTACLE_OBJECTS.get(rtype, ())]
    goal = glib.gdict[draft.params.task_type]["pddl"].format(obj=draft.obj, recep=draft.recep, toggle=draft.toggle,
                                                             mrecep="").replace("#", "-")
    lines = [f"(define (problem alma_{draft.params.floor_plan.lower()}_{draft.params.seed})", "    (:domain alfred)",
             "    (:objects"]
    lines += [f"        {pddl_name(name)} - {kind}" for name, kind in decl]
    lines += ["    )", "    (:init"] + [f"        {pddl_name(fact)}" for fact in init] + ["    )"]
    return "\n".join(lines) + "\n" + goal.strip() + "\n"


def game_data(draft: Draft, targets_only: bool = False) -> dict[str, Any]:
    """The game file's content, as ``alfworld-generate`` lays it out."""
    paths = builtin_paths()
    grammar = paths["grammar"].read_text().replace("UNKNOWN GOAL", draft.goal_text)
    return {"pddl_domain": paths["domain"].read_text(), "grammar": grammar,
            "pddl_problem": problem_text(draft, targets_only), "solvable": True}


def check_solvable(env, plan_file: Path, game_file: Path) -> list[str] | None:
    """The planner's plan if it has at most MAX_PLAN commands and wins ``game_file`` when replayed, else None.

    ``env`` is an :func:`open_pddl_env` ``(plan=True)`` environment. The planner searches ``plan_file``, the
    same problem restricted to the target objects (and lamp): fast downward's search time grows quickly with
    objects that the goal does not mention (seconds for a pick-two goal in a full kitchen), and entity names
    are the same in both files. The replay through ``game_file``, as the agent will play it, is the check."""
    inner = env.unwrapped
    try:
        inner.request_infos.policy_commands = True
        with pddl_session():
            env.load(str(plan_file))
            state = env.reset()
        plan = list(state.get("policy_commands") or [])
        if not plan or len(plan) > MAX_PLAN:
            return None
        inner.request_infos.policy_commands = False  # replanning at every step is slow and not needed here
        with pddl_session():
            env.load(str(game_file))
            state = env.reset()
        if state["won"]:
            return None
        for i, command in enumerate(plan):
            if command not in state["admissible_commands"]:
                return None
            with PDDL_LOCK:
                state, _, _ = env.step(command)
            if bool(state["won"]) != (i == len(plan) - 1):
                return None
    finally:
        inner.request_infos.policy_commands = True
    return plan


# ---------------------------------------------------------------------------------------------------- cache
def game_paths(cache_dir: Path, key: str) -> dict[str, Path]:
    return {ext: Path(cache_dir) / f"{key}{ext}" for ext in (GAME_EXT, META_EXT)}


def check_cached(paths: dict[str, Path]) -> str | None:
    """None if the cached game in ``paths`` is complete and sane, else what is wrong with it."""
    for path in paths.values():
        if not path.is_file():
            return f"{path} is missing"
    try:
        game = json.loads(paths[GAME_EXT].read_text())
        meta = json.loads(paths[META_EXT].read_text())
    except (OSError, ValueError) as exc:
        return f"cached game is unreadable ({exc})"
    if not {"pddl_domain", "grammar", "pddl_problem"} <= set(game) or not meta.get("solvable"):
        return f"{paths[GAME_EXT]} is not a complete, solvable ALFWorld game"
    return None


def read_meta(game_file: str | Path) -> dict[str, Any]:
    """The generation record next to a generated game (goal, task type, the planner's plan...). Tests only:
    never hand it to an agent."""
    return json.loads(Path(game_file).with_suffix("").with_suffix(META_EXT).read_text())


class Generator:
    """Generates and caches games; holds one planner environment, released by :meth:`close`."""

    def __init__(self, cache_dir: str | Path):
        self.cache_dir = Path(cache_dir)
        self._env = None

    def __enter__(self) -> Generator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        close_pddl_env(self._env)
        self._env = None

    def ensure(self, params: GameParams) -> Path:
        """Path of the game file for ``params``, generated (and checked) if not cached. Raises BenchmarkError."""
        global GENERATION_COUNT
        key = params.key()
        paths = game_paths(self.cache_dir, key)
        if check_cached(paths) is None:
            for path in paths.values():  # entries cached by older versions were 0600: unreadable in the sandbox
                if path.stat().st_mode & 0o044 != 0o044:
                    with contextlib.suppress(OSError):
                        path.chmod(0o644)
            return paths[GAME_EXT]
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            self._remove_stale_tmp()
        except OSError as exc:
            raise BenchmarkError(f"alfworld cache {self.cache_dir} is not writable ({exc}); set ALMA_CACHE_DIR "
                                 "or pass cache_dir= to a writable folder") from exc
        started = time.monotonic()
        errors = []
        for attempt in range(ATTEMPTS):
            draft = sample_draft(params, attempt)
            tmp_game, tmp_plan = self._tmp_path(key, GAME_EXT), self._tmp_path(key + "-plan", GAME_EXT)
            try:
                tmp_game.write_text(json.dumps(game_data(draft)))
                tmp_plan.write_text(json.dumps(game_data(draft, targets_only=True)))
                if self._env is None:
                    self._env = open_pddl_env(plan=True)
                plan = check_solvable(self._env, tmp_plan, tmp_game)
            except BenchmarkError:
                tmp_game.unlink(missing_ok=True)
                raise
            except Exception as exc:  # planner, translator and textworld errors come in many types
                tmp_game.unlink(missing_ok=True)
                errors.append(f"attempt {attempt}: {type(exc).__name__}: {exc}")
                close_pddl_env(self._env)
                self._env = None
                continue
            finally:
                tmp_plan.unlink(missing_ok=True)
            if plan is None:
                tmp_game.unlink(missing_ok=True)
                errors.append(f"attempt {attempt}: no plan of at most {MAX_PLAN} commands that wins")
                continue
            meta = {"params": params.to_dict(), "key": key, "attempt": attempt, "task_type": params.task_type,
                    "goal": f"Your task is to: {draft.goal_text}.", "object": draft.obj, "receptacle": draft.recep,
                    "toggle": draft.toggle, "floor_plan": params.floor_plan, "n_objects": len(draft.objects),
                    "n_receptacles": len(draft.world.receptacles), "solvable": True, "plan": plan,
                    "generator": GENERATOR_VERSION, "alfworld": alfworld_version(),
                    "seconds": round(time.monotonic() - started, 2)}
            tmp_meta = self._tmp_path(key, META_EXT)
            tmp_meta.write_text(json.dumps(meta, indent=1, sort_keys=True))
            os.replace(tmp_game, paths[GAME_EXT])
            os.replace(tmp_meta, paths[META_EXT])  # last: marks the entry complete
            GENERATION_COUNT += 1
            return paths[GAME_EXT]
        raise BenchmarkError(f"alfworld: generating a {params.task_type} game in {params.floor_plan} (seed "
                             f"{params.seed}) failed after {ATTEMPTS} attempts: {'; '.join(errors)}. Use another "
                             "suite seed; if every seed fails, check the planner with `python -c \"import "
                             "fast_downward; fast_downward.load_lib()\"`")

    def _remove_stale_tmp(self) -> None:
        """Remove temporary files left by killed runs (older than an hour)."""
        now = time.time()
        for entry in self.cache_dir.glob(".tmp-*"):
            try:
                if now - entry.stat().st_mtime > _STALE_TMP_S:
                    entry.unlink()
            except OSError:
                pass

    def _tmp_path(self, key: str, ext: str) -> Path:
        fd, name = tempfile.mkstemp(prefix=f".tmp-{key}-", suffix=ext, dir=self.cache_dir)
        os.close(fd)
        os.chmod(name, 0o644)  # mkstemp's 0600 would hide the game from the sandbox's own uid
        return Path(name)
