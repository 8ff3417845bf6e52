"""ALFWorld behind the text-environment contract (:mod:`harness.envs.base`).

ALFWorld (Shridhar et al., 2021) is the household benchmark of the ALMA paper: an agent in a room with
numbered receptacles ("cabinet 3", "fridge 1") must, for instance, "put a hot apple in countertop" by going
to receptacles, opening them, taking objects and using the sink, microwave, fridge or a desk lamp. Six task
types: pick_and_place_simple, look_at_obj_in_light, pick_clean_then_place_in_recep,
pick_heat_then_place_in_recep, pick_cool_then_place_in_recep, pick_two_obj_and_place.

Where the games come from
-------------------------
* **Official data**: when ``$ALFWORLD_DATA/json_2.1.1`` holds ALFWorld's train / valid_seen / valid_unseen
  games (``alfworld-download``), suites are drawn from them (train -> ``train``, valid_seen -> ``id``,
  valid_unseen -> ``ood``) in a seed-determined order; ``world_id`` is the game's floor plan.
  See :mod:`harness.envs.alfworld_data`.
* **Generated games** (otherwise, and always on machines that cannot download the data): ALFWorld-style games
  generated locally from what the ``alfworld`` package ships (floor-plan layouts and object lists, openable
  receptacle lists, object/receptacle constants, goal library, PDDL domain and grammar), each checked solvable
  with the package's planner (fast downward) before use and cached on disk. See
  :mod:`harness.envs.alfworld_gen` and :mod:`harness.envs.alfworld_scenes`.
  **Scores on generated games are not comparable to published ALFWorld numbers**: other object sets and
  placements, templated goals only, at most 12 portable object types per room, no official games.

Suites (generated)
------------------
``build_suite(seed, n_train, n_test)`` is deterministic from ``seed``; ``world_id`` is the floor plan:

* ``train`` and ``id`` tasks play in a few *shared* floor plans drawn from ALFRED's training scenes (about
  ``tasks_per_world`` = 3 tasks per floor plan, dealt round-robin, so every id floor plan is also a train one):
  same room and furniture, same home receptacles of each object type, but other goals and object placements,
  so experience transfers.
* ``ood`` tasks play in floor plans drawn from ALFRED's held-out scenes (``constants.TEST_SCENE_NUMBERS``),
  never used for training, ``ood_tasks_per_world`` = 2 per floor plan.
* Floor plans are picked to cover the six task types, and each task takes the type used least so far in the
  suite that its room supports (heat/cool need a kitchen, clean a sink, look-at a desk lamp), so a suite of
  2 train + 2 test tasks already holds all six types.

Environment
-----------
What ALFWorld's text environment gives: ``textworld.envs.PddlEnv`` with ALFWorld's demangler and infos
wrappers. ``reset`` returns ``text`` = the opening without TextWorld's welcome banner ("You are in the middle
of a room. Looking quickly around you, you see a cabinet 4, ... \\n\\nYour task is to: put a hot apple in
countertop."), ``goal`` = the "Your task is to: ..." sentence, and ALFWorld's admissible commands (sorted,
unfiltered: ``go to ...``, ``open ...``, ``take X from Y``, ``move X to Y``, ``heat/clean/cool X with Y``,
``use ...``, ``examine ...``, ``look``, ``inventory``, ``help``). A command that is not admissible answers
"Nothing happens." and plays no move. ``won`` is ALFWorld's goal check; ``reward`` is 1.0 on the winning step,
``progress`` is 1.0 once won, else None (ALFWorld keeps no partial score). The step limit
(``step_limit`` = 30) is enforced by the caller. The planner's plan is never requested by, nor exposed to, the
agent-facing environment. Measured on a busy 2-core machine: the first ``reset`` of a game takes 0.3-1.4 s
(PDDL translation), a later one 0.03-0.2 s (translations are memoised); a ``step`` 30-130 ms on average,
growing with the room's receptacles (6-51) and objects (about 20).
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from harness.envs.alfworld_data import official_root, official_tasks
from harness.envs.alfworld_gen import GAME_EXT, GameParams, Generator, check_cached, game_paths
from harness.envs.alfworld_pddl import (
    PDDL_LOCK,
    close_pddl_env,
    default_cache_root,
    open_pddl_env,
    pddl_session,
)
from harness.envs.alfworld_scenes import TASK_TYPES, derive_seed, floor_plans, supported_task_types
from harness.envs.base import Observation, StepResult, TaskSpec, TaskSuite
from harness.errors import BenchmarkError

NAME = "alfworld"
SOURCES = ("auto", "official", "generated")
_BANNER = "-= Welcome to TextWorld, ALFRED! =-"


class ALFWorldBenchmark:
    """The ALFWorld benchmark: a deterministic suite builder and an environment factory.

    ``source``: ``"auto"`` (official data when ``$ALFWORLD_DATA`` holds it, else generated games),
    ``"official"`` (fail without the data) or ``"generated"``."""

    name = NAME
    step_limit = 30

    def __init__(self, source: str = "auto", tasks_per_world: int = 3, ood_tasks_per_world: int = 2):
        if source not in SOURCES:
            raise BenchmarkError(f"unknown alfworld source {source!r}; choose one of {', '.join(SOURCES)}")
        if tasks_per_world < 1 or ood_tasks_per_world < 1:
            raise BenchmarkError("tasks_per_world and ood_tasks_per_world must be >= 1")
        self.source = source
        self.tasks_per_world = tasks_per_world
        self.ood_tasks_per_world = ood_tasks_per_world

    # ------------------------------------------------------------------------------------------- suites
    def build_suite(self, seed: int, n_train: int = 6, n_test: int = 4, cache_dir: str | None = None) -> TaskSuite:
        """Build the suite for ``seed`` (see the module docstring), generating only games missing from the cache.

        ``cache_dir`` defaults to ``$ALMA_CACHE_DIR/alfworld`` or ``~/.cache/alma-engine/alfworld``. Raises
        BenchmarkError if alfworld is missing, the official data is requested but absent, or a game cannot be
        generated."""
        if n_train < 0 or n_test < 0:
            raise BenchmarkError(f"n_train and n_test must be >= 0 (got {n_train}, {n_test})")
        root = official_root() if self.source in ("auto", "official") else None
        if self.source == "official" and root is None:
            raise BenchmarkError("alfworld: source='official' but $ALFWORLD_DATA has no json_2.1.1/{train,"
                                 "valid_seen,valid_unseen} games; run `alfworld-download` with ALFWORLD_DATA set, "
                                 "or use source='generated'")
        suite = TaskSuite(benchmark=NAME, seed=seed)
        if root is not None:
            for split, count in (("train", n_train), ("id", n_test), ("ood", n_test)):
                for task_id, world_id, game_file in official_tasks(root, split, seed, count):
                    suite.split(split).append(TaskSpec(task_id=task_id, benchmark=NAME, split=split,
                                                       world_id=world_id, params={"game_file": str(game_file),
                                                                                  "source": "official"}))
            return suite
        cache = Path(cache_dir) if cache_dir else default_cache_root()
        with Generator(cache) as generator:
            for split, tasks in self.plan_suite(seed, n_train, n_test).items():
                for task_id, world_id, params in tasks:
                    path = generator.ensure(params)
                    suite.split(split).append(TaskSpec(task_id=task_id, benchmark=NAME, split=split,
                                                       world_id=world_id, params={
                                                           "game_file": str(path.resolve()), "source": "generated",
                                                           "cache_key": params.key(),
                                                           "generation": params.to_dict()}))
        return suite

    def plan_suite(self, seed: int, n_train: int, n_test: int) -> dict[str, list[tuple[str, str, GameParams]]]:
        """The generated suite's layout without generating anything: split -> [(task_id, world_id, params)]."""
        if n_train < 0 or n_test < 0:
            raise BenchmarkError(f"n_train and n_test must be >= 0 (got {n_train}, {n_test})")
        order = list(TASK_TYPES)
        _shuffle(order, derive_seed("alfworld-types", seed))
        rank = {t: i for i, t in enumerate(order)}
        usage: Counter[str] = Counter()
        n_shared = max(1, min(max(n_train, 1), math.ceil((n_train + n_test) / self.tasks_per_world)))
        shared = _pick_worlds(floor_plans("train"), n_shared, derive_seed("alfworld-shared", seed))
        ood = _pick_worlds(floor_plans("test"), max(1, math.ceil(n_test / self.ood_tasks_per_world)),
                           derive_seed("alfworld-ood", seed))
        layout: dict[str, list[tuple[str, str, GameParams]]] = {"train": [], "id": [], "ood": []}
        for split, count, worlds in (("train", n_train, shared), ("id", n_test, shared), ("ood", n_test, ood)):
            for i in range(count):
                plan = worlds[i % len(worlds)]
                kinds = supported_task_types(plan)
                task_type = min(kinds, key=lambda t: (usage[t], sum(t in supported_task_types(w) for w in worlds),
                                                      rank[t]))
                usage[task_type] += 1
                params = GameParams(plan, task_type, derive_seed("alfworld-task", seed, split, i))
                layout[split].append((f"alfworld/{split}/{i:03d}-{plan}", plan, params))
        return layout

    def make_env(self) -> ALFWorldEnv:
        return ALFWorldEnv()


def _shuffle(items: list, seed: int) -> None:
    import random

    random.Random(seed).shuffle(items)


def _pick_worlds(pool: list[str], count: int, seed: int) -> list[str]:
    """``count`` floor plans (at most all of them) from ``pool`` (seed-shuffled), greedily covering the six task
    types. Larger suites deal more tasks to each floor plan."""
    pool = [p for p in pool if supported_task_types(p)]
    _shuffle(pool, seed)
    if not pool:
        raise BenchmarkError("alfworld: no shipped floor plan can pose a task; reinstall alfworld "
                             "(`pip install --force-reinstall alfworld`)")
    chosen: list[str] = []
    covered: set[str] = set()
    for _ in range(min(count, len(pool))):
        remaining = [p for p in pool if p not in chosen]
        best = max(remaining, key=lambda p: (len(set(supported_task_types(p)) - covered), -remaining.index(p)))
        chosen.append(best)
        covered |= set(supported_task_types(best))
        if covered >= set(TASK_TYPES):
            covered = set()
    return chosen


def split_opening(feedback: str) -> tuple[str, str]:
    """(text, goal) of ALFWorld's first feedback: the text without the welcome banner, and the
    "Your task is to: ..." sentence."""
    parts = [p.strip() for p in feedback.strip().split("\n\n") if p.strip() and p.strip() != _BANNER]
    goal = next((p for p in parts if p.startswith("Your task is to")), "")
    return "\n\n".join(parts), goal


class ALFWorldEnv:
    """Plays ALFWorld games; ``reset`` may switch to another game on the same instance."""

    def __init__(self) -> None:
        self._env = None
        self._game_file: str | None = None
        self._done = True
        self._won = False
        self._active = False
        self._actions: list[str] = []

    def reset(self, task: TaskSpec) -> Observation:
        """Start ``task`` from its first turn. Raises BenchmarkError if its game file is missing or unusable."""
        if task.benchmark != NAME or "game_file" not in task.params:
            raise BenchmarkError(f"task {task.task_id!r} is not an alfworld task (benchmark {task.benchmark!r})")
        game_file = str(task.params["game_file"])
        self._check_game(task, game_file)
        try:
            if self._env is None:
                self._env = open_pddl_env(plan=False)
            with pddl_session():
                if game_file != self._game_file:
                    self._game_file = None
                    self._env.load(game_file)
                    self._game_file = game_file
                state = self._env.reset()
        except BenchmarkError:
            raise
        except Exception as exc:  # textworld / fast-downward errors come in many types
            self.close()
            raise BenchmarkError(f"task {task.task_id!r}: cannot start game {game_file} ({type(exc).__name__}: "
                                 f"{exc}); delete it and run build_suite again to regenerate it") from exc
        self._done, self._won, self._active = False, False, True
        self._actions = list(state["admissible_commands"] or [])
        text, goal = split_opening(state.feedback)
        return Observation(text=text, goal=goal, admissible_actions=list(self._actions))

    def step(self, action: str) -> StepResult:
        """Play one command (whitespace collapses to single spaces). After the game ended it answers, without
        playing, that the game is over. Raises BenchmarkError if called before ``reset``."""
        if not self._active or self._env is None:
            raise BenchmarkError("step() called before reset(); call reset(task) first")
        if self._done:
            return StepResult("The game is over.", 0.0, True, self._won, [], 1.0 if self._won else None)
        command = " ".join(str(action).split())
        try:
            with PDDL_LOCK:
                state, _, done = self._env.step(command)
        except Exception as exc:
            raise BenchmarkError(f"alfworld step {action!r} failed ({type(exc).__name__}: {exc}); "
                                 f"game {self._game_file}") from exc
        self._won = bool(state["won"])
        self._done = bool(done or self._won)
        self._actions = [] if self._done else list(state["admissible_commands"] or [])
        return StepResult(str(state.feedback).strip(), 1.0 if self._won else 0.0, self._done, self._won,
                          list(self._actions), 1.0 if self._won else None)

    def close(self) -> None:
        """Release the game and the planner library (safe to call more than once)."""
        env, self._env = self._env, None
        self._game_file = None
        self._active = False
        close_pddl_env(env)

    @staticmethod
    def _check_game(task: TaskSpec, game_file: str) -> None:
        path = Path(game_file)
        if task.params.get("source") == "generated":
            problem = check_cached(game_paths(path.parent, path.name.removesuffix(GAME_EXT)))
        else:
            problem = None if path.is_file() else f"{path} is missing"
        if problem:
            raise BenchmarkError(f"task {task.task_id!r}: game is unusable: {problem}. Rebuild the suite with "
                                 "get_benchmark('alfworld').build_suite(seed, n_train, n_test, cache_dir) (same "
                                 "arguments) to regenerate it")
