"""MiniHack behind the text-environment contract (:mod:`harness.envs.base`).

Task families (:data:`FAMILIES`): MazeWalk 9x9 and 15x15, Corridor R3, CorridorBattle-Dark, Quest Easy and
Medium (MiniHack's own envs) and Boxoban on levels generated here (:mod:`.minihack_boxoban`; the official
level sets are downloaded from the internet).

Suite design (deterministic from the seed):

- ``train`` and ``id`` cycle through the in-distribution families (:data:`ID_FAMILIES`: MazeWalk-9x9,
  Corridor-R3, Quest-Easy, Boxoban) in a seed-shuffled order; ``ood`` cycles through the held-out, harder
  ones (:data:`OOD_FAMILIES`: MazeWalk-15x15, CorridorBattle-Dark, Quest-Medium).
- A world is a family's level, fixed by a level seed (NetHack's level-generation RNG, or the Boxoban generator
  seed); ``world_id`` is ``<env id>/<level seed>``. Each train task is a fresh world. In ``id`` every other task
  replays a train world of its family (same level seed, so experience transfers) with another game seed (the
  core and display RNGs: monsters and fights differ, the map does not); the others are fresh worlds. ``ood``
  worlds are all fresh.
- ``TaskSpec.params``: ``family``, ``env_id``, ``level_seed``, ``game_seed``; for Boxoban also ``boxes``,
  ``level_file`` (a standard-format level file under the cache dir), ``level_number`` (its ``; N``) and
  ``reference_steps`` (length of a shortest solution; for analysis, never shown to the agent).

Reproducible levels: NLE's ``reset(seed=...)`` does not fix a level, so ``reset`` calls
``env.unwrapped.seed(core=g, disp=g, reseed=False, lgen=level_seed)`` first. Success is the task's own status:
``info["end_status"] == TASK_SUCCESSFUL``.
"""

from __future__ import annotations

import importlib.util
import os
import random
import sys
import tempfile
import threading
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.envs import minihack_boxoban as boxoban
from harness.envs.base import Observation, StepResult, TaskSpec, TaskSuite
from harness.envs.minihack_text import (
    CARDINAL,
    COMMANDS,
    DIRECTIONS,
    ESC,
    ITEM_ACTIONS,
    clean_message,
    death_reason,
    decode,
    find_item,
    render,
)
from harness.errors import BenchmarkError

STEP_LIMIT = 100
DIR8 = tuple(DIRECTIONS)
BOXOBAN_ID = "MiniHack-Boxoban-Local"
OBS_KEYS = ("glyphs", "chars", "screen_descriptions", "tty_chars", "message", "blstats", "inv_strs",
            "inv_letters")
INSTALL_HINT = "install it with `.venv/bin/pip install minihack` (it brings nle 1.3.0 and gymnasium 1.2.0)"


@dataclass(frozen=True)
class Family:
    """A task family: the env it plays, the named actions it offers and its goal in words."""

    env_id: str
    actions: tuple[str, ...]
    goal: str


FAMILIES: dict[str, Family] = {
    "MazeWalk-9x9": Family("MiniHack-MazeWalk-9x9-v0", DIR8,
                           "Find the way through the dark maze to the staircase down (>) and step onto it."),
    "MazeWalk-15x15": Family("MiniHack-MazeWalk-15x15-v0", DIR8,
                             "Find the way through the dark maze to the staircase down (>) and step onto it."),
    "Corridor-R3": Family("MiniHack-Corridor-R3-v0", DIR8 + ("open", "kick", "search"),
                          "Reach the staircase down (>): it is in another room, joined to yours by corridors (#)"
                          " and doors; open closed doors (kick locked ones) and search for hidden passages."),
    "CorridorBattle-Dark": Family("MiniHack-CorridorBattle-Dark-v0", DIR8,
                                  "Reach the staircase down (>) at the far end of the dark rooms; a pack of giant "
                                  "rats stands in the way: attack a monster by moving into it."),
    "Quest-Easy": Family("MiniHack-Quest-Easy-v0", DIR8 + ("zap wand", "apply horn", "search"),
                         "Reach the staircase down (>). A river of molten lava (}) is in the way and walking into "
                         "lava kills you; you carry a wand and a horn. Attack a monster by moving into it."),
    "Quest-Medium": Family("MiniHack-Quest-Medium-v0", DIR8 + ("zap wand", "apply horn", "search"),
                           "Reach the staircase down (>) beyond the molten lava (}) and the monsters guarding it; "
                           "walking into lava kills you; you carry a wand and a horn. Attack a monster by moving "
                           "into it."),
    "Boxoban": Family(BOXOBAN_ID, CARDINAL,
                      "Push every boulder (`) onto a fountain ({): walk into a boulder to push it one square. "
                      "Boulders cannot be pulled and do not move into walls (#, iron bars) or other boulders."),
}
ID_FAMILIES = ("MazeWalk-9x9", "Corridor-R3", "Quest-Easy", "Boxoban")
OOD_FAMILIES = ("MazeWalk-15x15", "CorridorBattle-Dark", "Quest-Medium")

_IMPORT_LOCK = threading.Lock()
_NO_MESSAGE = np.zeros(1, dtype=np.uint8)


def default_cache_dir() -> Path:
    """``$ALMA_CACHE_DIR/minihack`` if set, else ``~/.cache/alma-engine/minihack``."""
    root = os.environ.get("ALMA_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "alma-engine") / "minihack"


def _resource_filename(package: str, resource: str) -> str:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ImportError(package)
    return os.path.join(os.path.dirname(spec.origin), resource)


def load_gym():
    """Import gymnasium and minihack (which registers the MiniHack envs); return gymnasium.

    minihack 1.0.2 imports ``pkg_resources`` (only for ``resource_filename``), which setuptools >= 81 no longer
    ships: while minihack is imported, a stand-in answers that one call; it is removed afterwards."""
    with _IMPORT_LOCK:
        if importlib.util.find_spec("minihack") is None or importlib.util.find_spec("nle") is None:
            raise BenchmarkError(f"minihack: the package minihack (or nle) is not installed; {INSTALL_HINT}")
        stand_in = None
        if "minihack" not in sys.modules and importlib.util.find_spec("pkg_resources") is None:
            stand_in = types.ModuleType("pkg_resources")
            stand_in.resource_filename = _resource_filename  # type: ignore[attr-defined]
            sys.modules["pkg_resources"] = stand_in
        try:
            import gymnasium
            import minihack  # noqa: F401  (registers the MiniHack-* env ids)
        except (ImportError, OSError) as exc:
            raise BenchmarkError(f"minihack: importing minihack/nle failed ({exc}); {INSTALL_HINT}") from exc
        finally:
            if stand_in is not None and sys.modules.get("pkg_resources") is stand_in:
                del sys.modules["pkg_resources"]
        return gymnasium


class MiniHackEnv:
    """One MiniHack game at a time (the :class:`harness.envs.base.TextEnv` contract).

    ``reset(task)`` rebuilds the task's level exactly (same task, same first observation) and returns the
    observation text (:mod:`.minihack_text`), the family's goal and its named actions. ``step(action)`` plays
    one named action: reward 1.0 and ``progress`` 1.0 on success, else 0.0 and ``None``; ``done`` when the game
    ends (success, death, or MiniHack's own step limit). While the game waits for an answer, the admissible
    actions are the answers: the directions after "In what direction?", ``yes``/``no`` after a y/n question.
    ``zap wand`` and ``apply horn`` answer the game's "which item?" question themselves. An action that is not
    admissible changes nothing and says so. Gym envs are cached per env id; ``close()`` releases them all.
    """

    def __init__(self) -> None:
        self._games: dict[str, Any] = {}
        self._tmp: tempfile.TemporaryDirectory | None = None
        self.family: Family | None = None
        self.game = None
        self._keys: list[int] = []
        self.obs: dict | None = None
        self.done = False
        self.won = False

    # ------------------------------------------------------------------------------------------ contract
    def reset(self, task: TaskSpec) -> Observation:
        params = task.params
        try:
            family = FAMILIES[params["family"]]
            level_seed, game_seed = int(params["level_seed"]), int(params["game_seed"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BenchmarkError(f"minihack task {task.task_id!r}: params need 'family' (one of "
                                 f"{', '.join(FAMILIES)}), 'level_seed' and 'game_seed' ({exc!r})") from exc
        rows = self._boxoban_rows(task) if family.env_id == BOXOBAN_ID else None
        game = self._game(family, params, rows)
        env = game.unwrapped
        if rows is not None:
            env.select(rows)
        env.seed(core=game_seed, disp=game_seed, reseed=False, lgen=level_seed)
        try:
            self.obs, _ = game.reset()
        except Exception as exc:  # NLE raises bare RuntimeErrors and asserts
            raise BenchmarkError(f"minihack task {task.task_id!r}: the level could not be built ({exc!r})") from exc
        self.game, self.family, self.done, self.won = game, family, False, False
        self._keys = [int(a) for a in env.actions]  # NetHack key of each action index
        return Observation(text=render(self.obs), goal=family.goal, admissible_actions=self.admissible())

    def step(self, action: str) -> StepResult:
        if self.game is None or self.obs is None or self.family is None:
            raise BenchmarkError("minihack: step() called before reset(task); reset the environment first")
        if self.done:
            return self._result("The game is over; reset to play again.", 0.0)
        allowed = self.admissible()
        name = " ".join(action.strip().lower().split()) if isinstance(action, str) else ""
        if name not in allowed:
            return self._result(f"Unknown action {action!r}: nothing happened. Choose one of: {', '.join(allowed)}.",
                                0.0, keep_message=False)
        key = DIRECTIONS.get(name, COMMANDS.get(name))
        info = self._press(key)
        note = ""
        if not self.done and name in ITEM_ACTIONS and self.prompt() == "item":
            letter = find_item(self.obs, ITEM_ACTIONS[name])
            info = self._press(ord(letter) if letter else ESC)
            note = "" if letter else f"You have no {ITEM_ACTIONS[name]}."
        if not self.done and self.prompt() == "item":  # an item question we do not answer: cancel it
            info = self._press(ESC)
        status = self.game.unwrapped.StepStatus
        self.won = info.get("end_status") == status.TASK_SUCCESSFUL
        if self.done and not self.won:
            died = info.get("end_status") == status.DEATH
            end = f"You died. {death_reason(self.obs['tty_chars'])}".strip() if died else "Time is up."
            note = " ".join(p for p in (note, clean_message(decode(self.obs["message"])), end,
                                        "The game is over.") if p)
        return self._result(note, 1.0 if self.won else 0.0)

    def close(self) -> None:
        for game in self._games.values():
            game.close()
        self._games.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        self.game = self.obs = None

    # ------------------------------------------------------------------------------------------ helpers
    def admissible(self) -> list[str]:
        assert self.family is not None
        kind = self.prompt()
        if kind == "direction":
            answers = [a for a in self.family.actions if a in DIRECTIONS]
        elif kind == "yesno":
            answers = [a for a in ("yes", "no") if COMMANDS[a] in self._keys]
        else:
            answers = []
        return answers or list(self.family.actions)

    def prompt(self) -> str | None:
        """What the game is waiting for: ``"direction"``, ``"yesno"``, ``"item"`` or ``None``."""
        if self.done or self.game is None or self.obs is None:
            return None
        env = self.game.unwrapped
        index = getattr(env, "_internal_index", None)
        message = decode(self.obs["message"])
        if index is not None:
            if not env.last_observation[index][1]:  # internal[1]: in_yn_function
                return None
        elif not message.rstrip().endswith(("?", "]", ")")):
            return None
        if "direction" in message:
            return "direction"
        if "[yn" in message:
            return "yesno"
        return "item"

    def _press(self, key: int) -> dict:
        if key not in self._keys:
            return {}
        self.obs, _, terminated, truncated, info = self.game.step(self._keys.index(key))
        self.done = bool(terminated or truncated)
        return info

    def _result(self, note: str, reward: float, keep_message: bool = True) -> StepResult:
        """The step's result; once the game is lost the text is ``note`` alone (NLE's last screen then
        shows the tombstone, not the map)."""
        if self.done and not self.won:
            text = note
        else:
            text = render(self.obs if keep_message else {**self.obs, "message": _NO_MESSAGE}, note)
            if self.won:
                text += "\nYou completed the task."
        return StepResult(observation=text, reward=reward, done=self.done, won=self.won,
                          admissible_actions=[] if self.done else self.admissible(),
                          progress=1.0 if self.won else None)

    def _game(self, family: Family, params: dict, rows: tuple[str, ...] | None):
        if family.env_id in self._games:
            return self._games[family.env_id]
        gym = load_gym()
        try:
            if rows is None:
                game = gym.make(family.env_id, observation_keys=OBS_KEYS, disable_env_checker=True)
            else:
                game = boxoban.boxoban_env_class()(levels_dir=self._levels_dir(params, rows), rows=rows,
                                                   observation_keys=OBS_KEYS)
        except Exception as exc:
            raise BenchmarkError(f"minihack: cannot build the env {family.env_id!r} ({exc!r}); check that "
                                 f"minihack and nle import ({INSTALL_HINT})") from exc
        self._games[family.env_id] = game
        return game

    def _levels_dir(self, params: dict, rows: tuple[str, ...]) -> str:
        """A directory with ``local/train/*.txt``: the suite's own, else a private one holding this level."""
        level_file = Path(str(params.get("level_file", "")))
        if level_file.is_file() and level_file.parent.parent.name == "local":
            return str(level_file.parents[2])
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="alma-boxoban-")
        boxoban.write_level_file(Path(self._tmp.name) / "local" / "train" / "levels.txt", [(0, rows)])
        return self._tmp.name

    @staticmethod
    def _boxoban_rows(task: TaskSpec) -> tuple[str, ...]:
        params = task.params
        try:
            level_file = Path(str(params.get("level_file", "")))
            if level_file.is_file():
                rows = boxoban.read_level(level_file, int(params["level_number"]))
            else:  # the cache is not here (e.g. inside a sandbox): the generator rebuilds the level exactly
                rows = boxoban.generate_level(int(params["level_seed"]), int(params.get("boxes", 1))).rows
            boxoban.parse(rows)
            return rows
        except (KeyError, ValueError, RuntimeError, OSError) as exc:
            raise BenchmarkError(f"minihack task {task.task_id!r}: cannot load its Boxoban level ({exc!r}); "
                                 "rebuild the suite with MiniHackBenchmark().build_suite(...)") from exc


def _seed(seed: int, *parts: object) -> int:
    return random.Random("/".join(["minihack-suite", str(seed), *map(str, parts)])).randrange(2**31)


@dataclass
class _SuiteBuilder:
    """Makes the TaskSpecs of one suite and collects its Boxoban levels (one level file per suite)."""

    seed: int
    level_file: Path
    levels: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)
    numbers: dict[int, tuple[int, int]] = field(default_factory=dict)

    def task(self, split: str, index: int, family: str, world: str) -> TaskSpec:
        fam = FAMILIES[family]
        level_seed = _seed(self.seed, family, world)
        params: dict[str, Any] = {"family": family, "env_id": fam.env_id, "level_seed": level_seed,
                                  "game_seed": _seed(self.seed, split, index, "game")}
        if fam.env_id == BOXOBAN_ID:
            boxes = 1 + level_seed % 2
            if level_seed not in self.numbers:
                try:
                    level = boxoban.generate_level(level_seed, boxes)
                except RuntimeError as exc:
                    raise BenchmarkError(f"minihack: no Boxoban level for seed {level_seed} ({exc})") from exc
                self.numbers[level_seed] = (len(self.levels), len(level.solution))
                self.levels.append((len(self.levels), level.rows))
            number, steps = self.numbers[level_seed]
            params.update(boxes=boxes, level_file=str(self.level_file), level_number=number, reference_steps=steps)
        return TaskSpec(task_id=f"minihack/{split}/{index:03d}-{family}", benchmark="minihack", split=split,
                        world_id=f"{fam.env_id}/{level_seed}", params=params)


class MiniHackBenchmark:
    """The MiniHack benchmark: ``name``, ``step_limit``, :meth:`build_suite` and :meth:`make_env`."""

    name = "minihack"
    step_limit = STEP_LIMIT

    def build_suite(self, seed: int, n_train: int, n_test: int, cache_dir: str | None = None) -> TaskSuite:
        """``n_train`` train tasks and ``n_test`` tasks in each of ``id`` and ``ood`` (see the module
        docstring). Deterministic for ``seed``. Boxoban levels are written to
        ``<cache_dir>/boxoban/suite-<seed>/local/train/levels.txt`` (``cache_dir`` defaults to
        :func:`default_cache_dir`)."""
        load_gym()  # fail early, with the install hint, where MiniHack is missing
        cache = Path(cache_dir) if cache_dir else default_cache_dir()
        builder = _SuiteBuilder(seed, cache / "boxoban" / f"suite-{seed}" / "local" / "train" / "levels.txt")
        order = list(ID_FAMILIES)
        random.Random(f"minihack-suite/{seed}/order").shuffle(order)
        suite = TaskSuite(benchmark=self.name, seed=seed)
        train_worlds: dict[str, int] = {f: 0 for f in order}
        for i in range(n_train):
            family, j = order[i % len(order)], i // len(order)
            train_worlds[family] = j + 1
            suite.train.append(builder.task("train", i, family, f"L{j}"))
        for i in range(n_test):
            family, j = order[i % len(order)], i // len(order)
            shared = train_worlds[family]
            world = f"L{(j // 2) % shared}" if j % 2 == 0 and shared else f"id{j}"
            suite.id.append(builder.task("id", i, family, world))
        for i in range(n_test):
            family, j = OOD_FAMILIES[i % len(OOD_FAMILIES)], i // len(OOD_FAMILIES)
            suite.ood.append(builder.task("ood", i, family, f"ood{j}"))
        if builder.levels:
            try:
                boxoban.write_level_file(builder.level_file, builder.levels)
            except OSError as exc:
                raise BenchmarkError(f"minihack: cannot write Boxoban levels to {builder.level_file} ({exc}); "
                                     "give a writable cache_dir") from exc
        return suite

    def make_env(self) -> MiniHackEnv:
        load_gym()
        return MiniHackEnv()
