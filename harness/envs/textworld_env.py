"""TextWorld behind the text-environment contract (:mod:`harness.envs.base`).

Task family (why this one)
--------------------------
Games are "fetch" quests generated offline by :mod:`harness.envs.textworld_games` with TextWorld's own
generator and Inform7 compiler: "Find the tablet and put it on the counter." The objective says *what* to find
and *where to bring it*, never where either is, so an agent without memory must explore (rooms behind closed
doors, objects inside closed containers) while an agent that remembers a world's layout can walk straight to
the object. The default level ``fetch6`` (6 rooms, 3 containers, 3 supporters, 7 objects, one fetch, optimal
solutions of about 4-11 commands) takes a memory-less agent longer to explore, so the 9-step limit (40 for the
two-fetch ood level) rewards an agent that knows the way: at the engine's default protocol the heuristic agent
without memory wins 0.25-0.5 of the tasks over five suites, and with a map remembered from the collection phase
0.375-0.625 (measured; see the README).
Stock treasure-hunter games were not used because their objective spells out the whole walkthrough.

Suites
------
``build_suite(seed, n_train, n_test)`` is deterministic from ``seed``:

* ``train`` and ``id`` (in-distribution) tasks play in a few *shared worlds* of level ``fetch6``: about
  ``quests_per_world`` (default 5) tasks per world, dealt round-robin, so every id world is also a train
  world and each task in a world asks for a different object. ``TaskSpec.world_id`` names the world.
* ``ood`` tasks play in worlds never used in train, of a harder level ``fetch9x2`` (9 rooms, a locked
  container whose key lies elsewhere, two fetches per quest), ``ood_quests_per_world`` (default 2) tasks
  per world.

The default 6 train + 4 test tasks make 14 games (~1-2 s each to generate, then cached on disk keyed by
their generation parameters; see :mod:`harness.envs.textworld_games`). ``TaskSpec.params`` holds the game
file, its cache key and its generation parameters, never the solution.

Environment
-----------
``reset`` returns the game's opening text without TextWorld's ASCII banner and without the objective (which
is ``goal``); ``step`` returns the game's answer without the prompt and status line. ``reward`` is the score
delta (each fetch scores 1 when the object is first held and 1 when it is put in place), ``progress`` is
score / max_score, ``won`` means every fetch is done. ``admissible_actions`` are TextWorld's admissible
commands, sorted, unfiltered (``look``, ``inventory`` and ``examine ...`` included). Commands are free
text; interpreter meta-commands (restart, quit, save, restore, undo, ...) are refused without playing a
turn, because they would rewind or end the game behind the harness's back. Walkthroughs are never exposed.
The step limit depends on the level (``STEP_LIMITS``: 9 for fetch6, 40 for the two-fetch fetch9x2); each task
carries its own in ``params["step_limit"]`` and a job's ``step_limit`` overrides it. The caller enforces it.
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

from harness.envs.base import Observation, StepResult, TaskSpec, TaskSuite
from harness.envs.textworld_games import (
    LEVELS,
    GameParams,
    Level,
    check_cached,
    default_cache_dir,
    derive_seed,
    ensure_game,
    game_paths,
)
from harness.errors import BenchmarkError

NAME = "textworld"
#: step limit per level (a job's ``step_limit`` overrides it): about 1.5-2x a known way, less than exploring takes
STEP_LIMITS = {"fetch6": 9, "fetch9x2": 40}

#: (task_id, world_id, generation parameters) of one planned task.
PlannedTask = tuple[str, str, GameParams]


class TextWorldBenchmark:
    """The TextWorld fetch benchmark: a deterministic suite builder and an environment factory."""

    name = NAME
    step_limit = STEP_LIMITS["fetch6"]  # the default; each task carries its level's limit

    def __init__(self, train_level: str = "fetch6", ood_level: str = "fetch9x2", quests_per_world: int = 5,
                 ood_quests_per_world: int = 2):
        for level in (train_level, ood_level):
            if level not in LEVELS:
                raise BenchmarkError(f"unknown textworld level {level!r}; known: {', '.join(sorted(LEVELS))}")
        if quests_per_world < 2 or ood_quests_per_world < 1:
            raise BenchmarkError("quests_per_world must be >= 2 (train and id share worlds) and "
                                 "ood_quests_per_world >= 1")
        self.train_level = LEVELS[train_level]
        self.ood_level = LEVELS[ood_level]
        self.quests_per_world = quests_per_world
        self.ood_quests_per_world = ood_quests_per_world

    def plan_suite(self, seed: int, n_train: int, n_test: int) -> dict[str, list[PlannedTask]]:
        """The suite's layout without generating anything: split -> [(task_id, world_id, GameParams)]."""
        if n_train < 0 or n_test < 0:
            raise BenchmarkError(f"n_train and n_test must be >= 0 (got {n_train}, {n_test})")
        n_shared = max(1, math.ceil((n_train + n_test) / self.quests_per_world))
        n_ood = max(1, math.ceil(n_test / self.ood_quests_per_world))
        shared = [self._world(seed, "shared", w, self.train_level) for w in range(n_shared)]
        ood = [self._world(seed, "ood", w, self.ood_level) for w in range(n_ood)]
        next_quest = [0] * n_shared
        layout: dict[str, list[PlannedTask]] = {"train": [], "id": [], "ood": []}
        for split, count in (("train", n_train), ("id", n_test)):
            for i in range(count):
                w = i % n_shared
                layout[split].append(self._task(split, f"w{w}", shared[w], next_quest[w]))
                next_quest[w] += 1
        for i in range(n_test):
            w = i % n_ood
            layout["ood"].append(self._task("ood", f"x{w}", ood[w], i // n_ood))
        return layout

    def build_suite(self, seed: int, n_train: int = 6, n_test: int = 4,
                    cache_dir: str | None = None) -> TaskSuite:
        """Build the suite for ``seed`` (see the module docstring), generating only the missing games.

        ``cache_dir`` defaults to ``$ALMA_CACHE_DIR/textworld`` or ``~/.cache/alma-engine/textworld``. A
        second call with the same arguments reads everything from the cache; an incomplete or corrupt cache
        entry is generated again. Raises BenchmarkError if a game cannot be generated."""
        cache = Path(cache_dir) if cache_dir else default_cache_dir()
        suite = TaskSuite(benchmark=NAME, seed=seed)
        for split, tasks in self.plan_suite(seed, n_train, n_test).items():
            for task_id, world_id, params in tasks:
                path = ensure_game(params, cache)
                info = {"game_file": str(path.resolve()), "cache_key": params.key(),
                        "generation": params.to_dict(), "step_limit": STEP_LIMITS.get(params.level.name)}
                spec = TaskSpec(task_id=task_id, benchmark=NAME, split=split, world_id=world_id, params=info)
                suite.split(split).append(spec)
        return suite

    def make_env(self) -> TextWorldEnv:
        return TextWorldEnv()

    @staticmethod
    def _world(seed: int, kind: str, index: int, level: Level) -> tuple[str, Level, dict[str, int]]:
        seeds = {k: derive_seed("textworld", seed, kind, index, k)
                 for k in ("map", "objects", "grammar", "quest")}
        world_key = derive_seed(level.name, seeds["map"], seeds["objects"], seeds["grammar"])
        return f"{level.name}-{world_key:08x}", level, seeds

    @staticmethod
    def _task(split: str, label: str, world: tuple[str, Level, dict[str, int]],
              quest_index: int) -> PlannedTask:
        world_id, level, seeds = world
        return f"tw/{split}/{label}/q{quest_index}", world_id, GameParams(level, dict(seeds), quest_index)


_PROMPT_RE = re.compile(r"\n>[^\n]*$")  # the trailing prompt and status line, e.g. "> ... -= Bar =-0/6"
#: Interpreter meta-commands that would restart, quit or rewind the game behind the harness's back: refused.
BLOCKED_VERBS = frozenset({"restart", "quit", "q", "save", "restore", "undo", "script", "unscript",
                           "transcript", "noscript", "notify"})
_ENDGAME = "Would you like to RESTART, RESTORE a saved game, QUIT or UNDO the last command?"


def clean_text(text: str) -> str:
    """Strip TextWorld's prompt/status line and end-of-game menu; collapse runs of blank lines."""
    text = _PROMPT_RE.sub("", text.rstrip()).replace(_ENDGAME, "")
    text = "\n".join(line.strip() for line in text.splitlines())
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _opening_text(feedback: str, objective: str) -> str:
    """The first observation without the ASCII banner and the objective (the goal is given separately)."""
    if objective and objective in feedback:
        feedback = feedback.split(objective, 1)[1]
    else:  # fall back: drop the banner (lines of ASCII art only)
        lines = feedback.splitlines()
        banner = re.compile(r"[\s_|\\/$<>()-]+")
        feedback = "\n".join(line for line in lines if not line.strip() or not banner.fullmatch(line))
    return clean_text(feedback)


class TextWorldEnv:
    """Plays generated TextWorld games; ``reset`` may switch to another game on the same instance."""

    def __init__(self) -> None:
        self._env = None
        self._game_file: str | None = None
        self._score = 0
        self._max_score = 0
        self._done = True
        self._won = False
        self._active = False
        self._actions: list[str] = []

    def reset(self, task: TaskSpec) -> Observation:
        """Start ``task`` from its first turn (another game than the last one is fine).

        Raises BenchmarkError if the task's game file is missing or corrupt."""
        if task.benchmark != NAME or "game_file" not in task.params:
            raise BenchmarkError(
                f"task {task.task_id!r} is not a textworld task (benchmark {task.benchmark!r})")
        game_file = str(task.params["game_file"])
        self._check_game(task, game_file)
        try:
            with warnings.catch_warnings():
                # jericho warns on every TextWorld story that it cannot track its score; TextWorld does.
                warnings.filterwarnings("ignore", message=".*is not fully supported.*")
                state = self._start(game_file).reset()
        except Exception as exc:  # jericho / textworld errors come in many types
            self.close()
            raise BenchmarkError(f"task {task.task_id!r}: cannot start game {game_file} "
                                 f"({type(exc).__name__}: {exc}); delete it and run build_suite again "
                                 "to regenerate it") from exc
        self._score = int(state.score or 0)
        self._max_score = int(state.max_score or 0)
        self._done, self._won, self._active = False, False, True
        objective = str(state.objective or "").strip()
        self._actions = sorted(state.admissible_commands or [])
        return Observation(text=_opening_text(state.feedback, objective), goal=objective,
                           admissible_actions=list(self._actions))

    def _start(self, game_file: str):
        """The running textworld environment for ``game_file``, started if another game (or none) runs."""
        if self._env is None or game_file != self._game_file:
            import textworld

            self.close()
            infos = textworld.EnvInfos(admissible_commands=True, score=True, max_score=True, won=True,
                                       lost=True, objective=True)
            self._env = textworld.start(game_file, infos)
            self._game_file = game_file
        return self._env

    def step(self, action: str) -> StepResult:
        """Play one command (whitespace and newlines collapse to single spaces).

        Interpreter meta-commands (:data:`BLOCKED_VERBS`: restart, quit, save, undo, ...) are refused with a
        message and no turn is played. After the game ended it answers, without playing, that the game is
        over.
        Raises BenchmarkError if called before ``reset``."""
        if not self._active or self._env is None:
            raise BenchmarkError("step() called before reset(); call reset(task) first")
        if self._done:
            return StepResult("The game is over.", 0.0, True, self._won, [], self._progress())
        command = " ".join(str(action).split())  # one line: several would desynchronise the answers
        if command.split(" ", 1)[0].lower() in BLOCKED_VERBS:
            return StepResult(f"The command {command!r} is not available here.", 0.0, False, False,
                              list(self._actions), self._progress())
        try:
            state, _, done = self._env.step(command)
        except Exception as exc:
            raise BenchmarkError(f"textworld step {action!r} failed ({type(exc).__name__}: {exc}); "
                                 f"game {self._game_file}") from exc
        score = int(state.score or 0)
        reward = float(score - self._score)
        self._score = score
        self._won = bool(state.won)
        self._done = bool(done or state.won or state.lost)
        actions = [] if self._done else sorted(state.admissible_commands or [])
        self._actions = actions
        text = clean_text(state.feedback)
        return StepResult(text, reward, self._done, self._won, actions, self._progress())

    def close(self) -> None:
        """Release the running game (safe to call more than once)."""
        if self._env is not None:
            try:
                self._env.close()
            finally:
                self._env = None
                self._game_file = None
                self._active = False

    def _progress(self) -> float | None:
        return min(1.0, self._score / self._max_score) if self._max_score > 0 else None

    @staticmethod
    def _check_game(task: TaskSpec, game_file: str) -> None:
        path = Path(game_file)
        problem = check_cached(game_paths(path.parent, path.stem))
        if problem:
            raise BenchmarkError(f"task {task.task_id!r}: cached game is unusable: {problem}. Rebuild the "
                                 "suite with get_benchmark('textworld').build_suite(seed, n_train, n_test, "
                                 "cache_dir) (same arguments) to regenerate it")
