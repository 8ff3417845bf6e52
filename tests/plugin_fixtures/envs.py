"""A tiny conforming benchmark (:class:`Lamp`) and deliberately broken variants, one contract violation each
(:mod:`harness.conformance` must name it). Loaded as plug-ins: ``tests.plugin_fixtures.envs:Lamp``."""

from __future__ import annotations

import itertools
import random

from harness.envs.base import Observation, StepResult, TaskSpec, TaskSuite

_COLORS = ("red", "green", "blue", "amber")


class LampEnv:
    """Switch on the lamp of the task's colour; two steps suffice."""

    def __init__(self):
        self.color = None

    def reset(self, task: TaskSpec) -> Observation:
        self.color = task.params["color"]
        return Observation(text="A dark room with four lamps.", goal=f"Turn on the {self.color} lamp.",
                           admissible_actions=self.actions())

    def actions(self) -> list[str]:
        return [f"turn on {c} lamp" for c in _COLORS]

    def step(self, action: str) -> StepResult:
        won = action == f"turn on {self.color} lamp"
        return StepResult(observation="Light!" if won else "Nothing happens.", reward=float(won), done=won,
                          won=won, admissible_actions=self.actions(), progress=1.0 if won else 0.0)

    def close(self) -> None:
        pass


class Lamp:
    name = "lamp"
    step_limit = 6
    env_class = LampEnv

    def build_suite(self, seed: int, n_train: int, n_test: int, cache_dir: str | None = None) -> TaskSuite:
        rng = random.Random(f"lamp:{seed}")
        suite = TaskSuite(benchmark=self.name, seed=seed)
        for split, n in (("train", n_train), ("id", n_test), ("ood", n_test)):
            setattr(suite, split, [TaskSpec(f"lamp-{split}-{k}", self.name, split,
                                            params={"color": rng.choice(_COLORS)}) for k in range(n)])
        return suite

    def make_env(self):
        return self.env_class()


# ------------------------------------------------------------------------------ one violation each
class _ResetReturnsTuple(LampEnv):
    def reset(self, task):
        obs = super().reset(task)
        return obs.text, obs.goal, obs.admissible_actions


class WrongResetType(Lamp):
    env_class = _ResetReturnsTuple


class _StepReturnsDict(LampEnv):
    def step(self, action):
        res = super().step(action)
        return {"observation": res.observation, "done": res.done}


class WrongStepType(Lamp):
    env_class = _StepReturnsDict


_CALLS = itertools.count()


class NondeterministicSuite(Lamp):
    def build_suite(self, seed, n_train, n_test, cache_dir=None):
        suite = super().build_suite(seed, n_train, n_test, cache_dir)
        suite.train[0] = TaskSpec(suite.train[0].task_id, self.name, "train",
                                  params={"color": _COLORS[next(_CALLS) % len(_COLORS)]})
        return suite


class _ShuffledReset(LampEnv):
    def reset(self, task):
        obs = super().reset(task)
        obs.text = f"A dark room. You hear {random.random():.6f} crickets."
        return obs


class NondeterministicReset(Lamp):
    env_class = _ShuffledReset


class MissingSplit(Lamp):
    def build_suite(self, seed, n_train, n_test, cache_dir=None):
        suite = super().build_suite(seed, n_train, n_test, cache_dir)
        suite.ood = []
        return suite


class _HugeObservation(LampEnv):
    def reset(self, task):
        obs = super().reset(task)
        obs.text = "The walls are covered in writing. " * 1000
        return obs


class HugeObservation(Lamp):
    env_class = _HugeObservation


class _NoActions(LampEnv):
    def actions(self):
        return []


class EmptyActions(Lamp):
    env_class = _NoActions


class _NumberedActions(LampEnv):
    def actions(self):
        return [1, 2, 3]


class NonStrActions(Lamp):
    env_class = _NumberedActions


class _NeverDone(LampEnv):
    def step(self, action):
        res = super().step(action)
        res.done = False
        res.won = False
        return res


class NeverDone(Lamp):
    env_class = _NeverDone


class DuplicateIds(Lamp):
    def build_suite(self, seed, n_train, n_test, cache_dir=None):
        suite = super().build_suite(seed, n_train, n_test, cache_dir)
        suite.id[0] = TaskSpec(suite.train[0].task_id, self.name, "id", params=suite.id[0].params)
        return suite


class _RaisesOnUnknown(LampEnv):
    def step(self, action):
        if not action.startswith("turn on"):
            raise KeyError(action)
        return super().step(action)


class RaisesOnInadmissible(Lamp):
    env_class = _RaisesOnUnknown


class NoName:
    step_limit = 0

    def build_suite(self, seed, n_train, n_test, cache_dir=None):
        return None


class NeedsArguments(Lamp):
    def __init__(self, size):
        self.size = size
