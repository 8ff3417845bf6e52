"""BabaIsAI behind the text-environment contract (:mod:`harness.envs.base`).

Suite design (deterministic from the seed; levels are cheap, so nothing is cached on disk):

- Families (see :mod:`.families`): ``train`` and ``id`` cycle through the six in-distribution families
  (goto_win, make_win, break_stop, two_room-goto_win, two_room-make_win, two_room-break_stop) in a
  seed-shuffled order; ``ood`` cycles through the two held-out combinations (break_stop-make_win,
  two_room-break_stop-make_win), each with one extra distractor object and one extra distractor rule.
- Worlds: a layout (rules, walls, objects) is ``family/L<k>``, its ``world_id``. In ``train`` each layout is
  played twice, from two start cells (variants 0 and 1). In ``id`` a family's 1st, 3rd, 5th, ... task
  replays one of its train layouts from a start cell train never used (same ``world_id``: experience
  transfers); its 2nd, 4th, ... tasks are fresh layouts (``family/id<j>``). ``ood`` layouts are all fresh
  (``family/ood<j>``).
- ``TaskSpec.params``: ``family``, ``layout``, ``layout_seed``, ``variant``, ``extra``, ``reference_steps``
  (length of the verified solver plan; for analysis, never shown to the agent) and ``level`` (the serialised
  level, so ``reset`` rebuilds it exactly; without it the level is regenerated from the seeds).

Every level is checked solvable within :data:`STEP_LIMIT` (20) moves by the solver (see :mod:`.levels`).
"""

from __future__ import annotations

import random
from typing import Any

from harness.envs.babaisai.families import IN_FAMILIES, OOD_FAMILIES
from harness.envs.babaisai.levels import STEP_LIMIT, Level, generate
from harness.envs.babaisai.text import describe_turn, render_state
from harness.envs.babaisai.world import ACTIONS, DELTAS, State, judge, step
from harness.envs.base import Observation, StepResult, TaskSpec, TaskSuite
from harness.errors import BenchmarkError

GOAL = (
    "Win the level: make a rule or reach an object that is WIN. Rules are lines of text blocks "
    "`object is property`, read left to right or top to bottom; walk into a text block to push it."
)


def level_from_params(params: dict[str, Any]) -> Level:
    """The level a task plays: ``params["level"]`` when present, else regenerated from ``family``,
    ``layout_seed``, ``variant`` and ``extra``. Raises :class:`BenchmarkError` when neither is usable."""
    try:
        if "level" in params:
            return Level.from_dict(params["level"])
        return generate(params["family"], int(params["layout_seed"]), int(params.get("variant", 0)),
                        int(params.get("extra", 0))).level
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise BenchmarkError(
            f"babaisai task params cannot rebuild a level ({exc!r}); give 'level' or 'family' and 'layout_seed'"
        ) from exc


class BabaIsAIEnv:
    """One BabaIsAI game at a time (the :class:`harness.envs.base.TextEnv` contract).

    ``reset(task)`` rebuilds the task's level exactly and returns the first observation, :data:`GOAL` and the
    admissible actions (always ``["down", "idle", "left", "right", "up"]``). ``step(action)`` plays one turn:
    reward 1.0 on the winning step else 0.0; ``done`` on win or loss (no YOU object left); ``progress`` 1.0
    once won, else ``None``. An action outside the list changes nothing and says "Unknown action". After the
    game ended, further steps change nothing. The step limit is the harness's to enforce.
    """

    def __init__(self) -> None:
        self.level: Level | None = None
        self.state: State = ()
        self.rules: frozenset = frozenset()
        self.done = False
        self.won = False

    def reset(self, task: TaskSpec) -> Observation:
        self.level = level_from_params(task.params)
        start = judge(self.level.things)
        self.state, self.rules = start.state, start.rules
        self.done, self.won = start.won or start.lost, start.won
        return Observation(text=self._render(), goal=GOAL, admissible_actions=list(ACTIONS))

    def step(self, action: str) -> StepResult:
        if self.level is None:
            raise BenchmarkError("babaisai: step() called before reset(task); reset the environment first")
        if self.done:
            return self._result("The game is over; reset to play again.", 0.0)
        move = action.strip().lower() if isinstance(action, str) else ""
        if move not in DELTAS:
            return self._result(f"Unknown action {action!r}: nothing happened. Choose one of: {', '.join(ACTIONS)}.",
                                0.0)
        out = step(self.level.width, self.level.height, self.state, move, self.rules)
        message = describe_turn(self.level.width, self.level.height, self.state, self.rules, move, out)
        self.state, self.rules = out.state, out.rules
        self.done, self.won = out.won or out.lost, out.won
        return self._result(message, 1.0 if out.won else 0.0)

    def close(self) -> None:
        self.level = None

    def _render(self, message: str = "") -> str:
        assert self.level is not None
        body = render_state(self.level.width, self.level.height, self.state, self.rules)
        return f"{message}\n\n{body}" if message else body

    def _result(self, message: str, reward: float) -> StepResult:
        return StepResult(observation=self._render(message), reward=reward, done=self.done, won=self.won,
                          admissible_actions=list(ACTIONS), progress=1.0 if self.won else None)


def _layout_seed(seed: int, family: str, key: str) -> int:
    return random.Random(f"babaisai-suite/{seed}/{family}/{key}").randrange(2**31)


class BabaIsAIBenchmark:
    """The BabaIsAI benchmark: ``name``, ``step_limit``, :meth:`build_suite` and :meth:`make_env`."""

    name = "babaisai"
    step_limit = STEP_LIMIT

    def build_suite(self, seed: int, n_train: int, n_test: int, cache_dir: str | None = None) -> TaskSuite:
        """``n_train`` train tasks and ``n_test`` tasks in each of ``id`` and ``ood`` (see the module
        docstring). Deterministic for ``seed``; ``cache_dir`` is ignored (levels are cheap to generate)."""
        order = list(IN_FAMILIES)
        random.Random(f"babaisai-suite/{seed}/order").shuffle(order)
        suite = TaskSuite(benchmark=self.name, seed=seed)
        train_layouts: dict[str, int] = {f: 0 for f in order}
        for i in range(n_train):
            family, j = order[i % len(order)], i // len(order)
            train_layouts[family] = j // 2 + 1
            suite.train.append(self._task(seed, "train", i, family, f"L{j // 2}", j % 2, 0))
        for i in range(n_test):
            family, j = order[i % len(order)], i // len(order)
            shared = train_layouts[family]
            if j % 2 == 0 and shared:
                k, rest = (j // 2) % shared, (j // 2) // shared
                suite.id.append(self._task(seed, "id", i, family, f"L{k}", 2 + rest, 0))
            else:
                suite.id.append(self._task(seed, "id", i, family, f"id{j}", 0, 0))
        for i in range(n_test):
            family, j = OOD_FAMILIES[i % len(OOD_FAMILIES)], i // len(OOD_FAMILIES)
            suite.ood.append(self._task(seed, "ood", i, family, f"ood{j}", 0, 1))
        return suite

    def _task(self, seed: int, split: str, index: int, family: str, layout: str, variant: int,
              extra: int) -> TaskSpec:
        layout_seed = _layout_seed(seed, family, layout)
        made = generate(family, layout_seed, variant, extra)
        params = {
            "family": family, "layout": layout, "layout_seed": layout_seed, "variant": variant, "extra": extra,
            "reference_steps": len(made.plan), "level": made.level.to_dict(),
        }
        return TaskSpec(task_id=f"babaisai/{split}/{index:03d}-{family}", benchmark=self.name, split=split,
                        world_id=f"{family}/{layout}", params=params)

    def make_env(self) -> BabaIsAIEnv:
        return BabaIsAIEnv()
