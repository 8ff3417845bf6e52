"""Contract checks of a benchmark (:mod:`harness.envs.base`), run by ``python -m harness.check_plugin``.

:func:`check_benchmark` builds small suites and plays a few episodes with the random and the heuristic agent
(and a given agent), and returns a :class:`CheckReport`: every breach of the contract as a :class:`Violation`
whose ``kind`` is one of :data:`KINDS` and whose message says what is wrong and how to fix it. It never raises
for anything the benchmark does; a benchmark whose methods raise gets violations, not a traceback.
"""

from __future__ import annotations

import json
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.agents.heuristic import HeuristicAgent
from harness.agents.random_agent import RandomAgent
from harness.envs.base import SPLITS

#: violation kind -> what it means (also the order of the report)
KINDS: dict[str, str] = {
    "attributes": "the benchmark object lacks a contract attribute (name, step_limit, build_suite, make_env)",
    "suite": "build_suite raised or did not return a TaskSuite with train/id/ood lists of TaskSpec",
    "splits": "a split is missing, has the wrong size, or its specs carry another split or benchmark name",
    "task_ids": "task ids are not unique strings across the suite",
    "task_params": "a task's params are not JSON-serialisable (or its step_limit is not a positive int)",
    "suite_determinism": "build_suite gave different suites for the same seed and sizes",
    "reset_type": "reset raised or did not return an Observation(text: str, goal: str, admissible_actions)",
    "step_type": "step raised on an admissible action or did not return a well-typed StepResult",
    "admissible_actions": "admissible actions are not a non-empty list of distinct str",
    "observation_size": "an observation or goal is longer than the size limit",
    "reset_determinism": "reset or the same actions after it gave different results for the same task",
    "inadmissible_action": "step raised for an action that is not admissible (it must answer it)",
    "never_done": "no episode ended (done) within its step limit, whoever played",
    "agent_action": "the agent under test returned something that is not an admissible action",
}

_FIX = {
    "attributes": "a benchmark needs `name: str`, `step_limit: int >= 1`, `build_suite(seed, n_train, n_test, "
                  "cache_dir=None)` and `make_env()` (see harness/envs/base.py)",
    "reset_type": "return harness.envs.base.Observation(text=..., goal=..., admissible_actions=[...])",
    "step_type": "return harness.envs.base.StepResult(observation: str, reward: float, done: bool, won: bool, "
                 "admissible_actions: list[str], progress: float in [0, 1] or None)",
    "suite_determinism": "derive every random choice from the seed (random.Random(f'...{seed}')), never from "
                         "hash(), the clock or the global RNG",
    "reset_determinism": "derive the game from the task's params only; seed any randomness from them",
}


@dataclass(frozen=True)
class Violation:
    kind: str
    message: str
    task_id: str | None = None

    def text(self, fix: bool = True) -> str:
        """One line (and, with ``fix``, how to fix this kind where there is a general answer)."""
        where = f" [{self.task_id}]" if self.task_id else ""
        hint = f"\n    fix: {_FIX[self.kind]}" if fix and self.kind in _FIX else ""
        return f"{self.kind}{where}: {self.message}{hint}"


@dataclass
class CheckReport:
    """What :func:`check_benchmark` found: ``violations`` (empty: the benchmark conforms) and what was played
    (agent name -> [episodes, won, done])."""

    name: str
    violations: list[Violation] = field(default_factory=list)
    played: dict[str, list[int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations

    def add(self, kind: str, message: str, task_id: str | None = None) -> None:
        v = Violation(kind, message, task_id)
        if v not in self.violations and sum(x.kind == kind for x in self.violations) < 5:
            self.violations.append(v)

    def kinds(self) -> set[str]:
        return {v.kind for v in self.violations}


def _error(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)[-1:]
    where = f" at {Path(tb[0].filename).name}:{tb[0].lineno}" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _call(report: CheckReport, kind: str, what: str, fn: Callable, *args, task_id: str | None = None):
    """``fn(*args)``, or None with a violation of ``kind`` when it raises."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - whatever the plug-in raises is a finding
        report.add(kind, f"{what} raised {_error(exc)}", task_id)
        return None


def check_attributes(bench: Any, report: CheckReport) -> bool:
    name, limit = getattr(bench, "name", None), getattr(bench, "step_limit", None)
    if not isinstance(name, str) or not name:
        report.add("attributes", f"`name` is {name!r}, not a non-empty str")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        report.add("attributes", f"`step_limit` is {limit!r}, not an int >= 1")
    for method in ("build_suite", "make_env"):
        if not callable(getattr(bench, method, None)):
            report.add("attributes", f"`{method}` is missing or not callable")
    return "attributes" not in report.kinds()


def _specs(suite: Any, split: str) -> list:
    specs = getattr(suite, split, None)
    return specs if isinstance(specs, list) else []


def check_suite(bench: Any, suite: Any, n_train: int, n_test: int, report: CheckReport) -> bool:
    """Shape, sizes, labels, ids and params of a built suite; False when it cannot be played at all."""
    if suite is None:
        return False
    missing = [s for s in SPLITS if not isinstance(getattr(suite, s, None), list)]
    if missing:
        report.add("suite", f"build_suite returned {type(suite).__name__} without list attribute(s) "
                            f"{', '.join(missing)}; return harness.envs.base.TaskSuite")
        return False
    ids: list = []
    for split in SPLITS:
        specs, want = _specs(suite, split), n_train if split == "train" else n_test
        if len(specs) != want:
            report.add("splits", f"split {split!r} has {len(specs)} tasks for {want} asked")
        for spec in specs:
            if not all(hasattr(spec, a) for a in ("task_id", "benchmark", "split", "params", "to_dict")):
                report.add("suite", f"split {split!r} holds a {type(spec).__name__}, not a TaskSpec")
                return False
            ids.append(spec.task_id)
            if spec.split != split:
                report.add("splits", f"a task of split {split!r} says split={spec.split!r}", spec.task_id)
            if spec.benchmark != bench.name:
                report.add("splits", f"benchmark={spec.benchmark!r}, not the benchmark's name {bench.name!r}",
                           spec.task_id)
            try:
                json.dumps(spec.to_dict())
            except (TypeError, ValueError) as exc:
                report.add("task_params", f"params are not JSON-serialisable ({exc})", spec.task_id)
            limit = spec.params.get("step_limit") if isinstance(spec.params, dict) else None
            if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
                report.add("task_params", f"params['step_limit'] is {limit!r}, not an int >= 1", spec.task_id)
    bad = [i for i in ids if not isinstance(i, str) or not i]
    dupes = sorted({i for i in ids if ids.count(i) > 1}, key=str)
    if bad:
        report.add("task_ids", f"task ids that are not non-empty str: {bad[:3]!r}")
    if dupes:
        report.add("task_ids", f"{len(dupes)} task id(s) used more than once across train/id/ood, e.g. "
                               f"{dupes[0]!r}; ids must be unique within a suite (designs and results key on them)")
    return True


def _suite_json(suite: Any, cache_dir: str | None) -> str:
    text = json.dumps({s: [t.to_dict() for t in _specs(suite, s)] for s in SPLITS}, sort_keys=True, default=str)
    return text.replace(cache_dir, "<cache>") if cache_dir else text


def check_suite_determinism(bench: Any, seed: int, n_train: int, n_test: int, first: Any, first_dir: str,
                            report: CheckReport) -> None:
    """The same suite again in the same cache directory, and in a fresh one (cache paths compared as equal)."""
    with tempfile.TemporaryDirectory(prefix="alma-check-") as other:
        for label, cache in (("again in the same cache directory", first_dir), ("in a fresh cache directory", other)):
            again = _call(report, "suite", f"build_suite (built {label})", bench.build_suite, seed, n_train, n_test,
                          cache)
            if again is None or not all(isinstance(getattr(again, s, None), list) for s in SPLITS):
                return
            try:
                same = _suite_json(first, first_dir) == _suite_json(again, cache)
            except AttributeError:
                return
            if not same:
                report.add("suite_determinism", f"seed {seed} gave a different suite when built {label}")
                return


def check_observation(obs: Any, max_chars: int, report: CheckReport, task_id: str) -> bool:
    if obs is None:
        return False
    text, goal, actions = (getattr(obs, a, None) for a in ("text", "goal", "admissible_actions"))
    if not isinstance(text, str) or not isinstance(goal, str):
        report.add("reset_type", f"reset returned {type(obs).__name__} with text {type(text).__name__} and goal "
                                 f"{type(goal).__name__}; both must be str", task_id)
        return False
    if len(text) > max_chars or len(goal) > max_chars:
        report.add("observation_size", f"the first observation has {len(text)} characters and the goal "
                                       f"{len(goal)}; the limit is {max_chars} (agents and designs read every "
                                       "character: summarise)", task_id)
    return check_actions(actions, report, task_id, "reset")


def check_actions(actions: Any, report: CheckReport, task_id: str, where: str) -> bool:
    if not isinstance(actions, list) or not actions:
        report.add("admissible_actions", f"{where} gave admissible_actions={actions!r:.80}; it must be a non-empty "
                                         "list of str", task_id)
        return False
    odd = [a for a in actions if not isinstance(a, str) or not a.strip()]
    if odd:
        report.add("admissible_actions", f"{where} gave admissible actions that are not non-empty str: "
                                         f"{odd[:3]!r:.80}", task_id)
        return False
    if len(set(actions)) != len(actions):
        report.add("admissible_actions", f"{where} listed an admissible action twice", task_id)
    return True


def check_step(res: Any, max_chars: int, report: CheckReport, task_id: str) -> bool:
    fields = {a: getattr(res, a, None) for a in ("observation", "reward", "done", "won", "admissible_actions",
                                                 "progress")}
    problems = []
    if not isinstance(fields["observation"], str):
        problems.append(f"observation is {type(fields['observation']).__name__}")
    if not isinstance(fields["reward"], (int, float)) or isinstance(fields["reward"], bool):
        problems.append(f"reward is {type(fields['reward']).__name__}")
    for flag in ("done", "won"):
        if not isinstance(fields[flag], bool):
            problems.append(f"{flag} is {type(fields[flag]).__name__}, not bool")
    p = fields["progress"]
    if p is not None and (not isinstance(p, (int, float)) or isinstance(p, bool) or not 0.0 <= p <= 1.0):
        problems.append(f"progress is {p!r}, not None or a number in [0, 1]")
    if problems:
        report.add("step_type", f"step returned {type(res).__name__}: " + "; ".join(problems), task_id)
        return False
    if len(fields["observation"]) > max_chars:
        report.add("observation_size", f"a step's observation has {len(fields['observation'])} characters; the "
                                       f"limit is {max_chars}", task_id)
    if not fields["done"]:
        return check_actions(fields["admissible_actions"], report, task_id, "step")
    return True


def _signature(obs_or_step: Any) -> str:
    return json.dumps({k: v for k, v in vars(obs_or_step).items()}, sort_keys=True, default=str) \
        if hasattr(obs_or_step, "__dict__") else repr(obs_or_step)


def play(bench: Any, spec: Any, agent: Any, max_chars: int, report: CheckReport) -> tuple[list[str], bool, bool]:
    """One episode of ``agent`` (empty memory) on ``spec``; returns (actions, done, won). Checks every result."""
    env = _call(report, "attributes", "make_env()", bench.make_env)
    if env is None:
        return [], False, False
    try:
        obs = _call(report, "reset_type", "reset", env.reset, spec, task_id=spec.task_id)
        if not check_observation(obs, max_chars, report, spec.task_id):
            return [], False, False
        agent.begin(obs.goal, obs.text, "")
        text, actions, taken, limit = obs.text, obs.admissible_actions, [], _limit(bench, spec)
        for _ in range(limit):
            action = agent.act(text, actions)
            if action not in actions:
                report.add("agent_action", f"{type(agent).__name__} returned {action!r:.60}, not one of the "
                                           f"{len(actions)} admissible actions", spec.task_id)
                return taken, False, False
            taken.append(action)
            res = _call(report, "step_type", f"step({action!r:.60})", env.step, action, task_id=spec.task_id)
            if res is None or not check_step(res, max_chars, report, spec.task_id):
                return taken, False, False
            if res.done or res.won:
                return taken, bool(res.done), bool(res.won)
            text, actions = res.observation, res.admissible_actions
        return taken, False, False
    finally:
        _call(report, "attributes", "close()", env.close)


def _limit(bench: Any, spec: Any) -> int:
    params = spec.params if isinstance(spec.params, dict) else {}
    limit = params.get("step_limit") or bench.step_limit
    return limit if isinstance(limit, int) and limit >= 1 else 1


def _run_actions(env: Any, spec: Any, actions: list[str]) -> list[str]:
    seq = [_signature(env.reset(spec))]
    for a in actions:
        res = env.step(a)
        seq.append(_signature(res))
        if res.done:
            break
    return seq


def check_replay(bench: Any, spec: Any, actions: list[str], report: CheckReport) -> None:
    """The same task and actions must give the same results in a fresh environment, in the same environment
    reset again (the harness reuses instances), and in another fresh one; an action that is not admissible must
    be answered, not raised."""
    first, second = bench.make_env(), bench.make_env()
    try:
        runs = {"a fresh environment": _run_actions(first, spec, actions),
                "the same environment reset again": _run_actions(first, spec, actions),
                "another fresh environment": _run_actions(second, spec, actions)}
    except Exception:  # noqa: BLE001 - the same call already raised (and was reported) while playing
        return
    finally:
        first.close()
        second.close()
    base = runs.pop("a fresh environment")
    for label, seq in runs.items():
        if seq != base:
            step = next((i for i, (a, b) in enumerate(zip(base, seq, strict=False)) if a != b), len(base))
            where = "reset" if step == 0 else f"step {step} ({actions[step - 1]!r:.60})"
            report.add("reset_determinism", f"{label} gave another result at {where} than a fresh one",
                       spec.task_id)
            break
    env = bench.make_env()
    try:
        env.reset(spec)
        env.step("xyzzy, not an admissible action")
    except Exception as exc:  # noqa: BLE001
        report.add("inadmissible_action", f"step('xyzzy, not an admissible action') raised {_error(exc)}; answer "
                                          "it with an observation such as \"That's not a command I know.\"",
                   spec.task_id)
    finally:
        env.close()


def check_benchmark(bench: Any, *, seed: int = 0, n_train: int = 4, n_test: int = 2, tasks_per_split: int = 2,
                    max_chars: int = 8000, agents: dict[str, Callable[[int], Any]] | None = None,
                    name: str | None = None) -> CheckReport:
    """Check ``bench`` against the contract (see the module docstring).

    ``agents``: name -> ``factory(seed)`` of the players (default: random and heuristic); every task of the first
    ``tasks_per_split`` of each split is played once by each."""
    report = CheckReport(name or str(getattr(bench, "name", type(bench).__name__)))
    if not check_attributes(bench, report):
        return report
    players = agents or {"random": lambda s: RandomAgent(seed=s), "heuristic": lambda s: HeuristicAgent(seed=s)}
    with tempfile.TemporaryDirectory(prefix="alma-check-") as cache:
        suite = _call(report, "suite", f"build_suite({seed}, {n_train}, {n_test})", bench.build_suite, seed,
                      n_train, n_test, cache)
        if not check_suite(bench, suite, n_train, n_test, report):
            return report
        check_suite_determinism(bench, seed, n_train, n_test, suite, cache, report)
        any_done = False
        for split in SPLITS:
            for k, spec in enumerate(_specs(suite, split)[:tasks_per_split]):
                for agent_name, factory in players.items():
                    actions, done, won = play(bench, spec, factory(seed * 1000 + k), max_chars, report)
                    stats = report.played.setdefault(agent_name, [0, 0, 0])
                    stats[0], stats[1], stats[2] = stats[0] + 1, stats[1] + won, stats[2] + done
                    any_done |= done
                    if agent_name == next(iter(players)):
                        check_replay(bench, spec, actions, report)
        if report.played and not any_done:
            report.add("never_done", f"none of the {sum(v[0] for v in report.played.values())} episodes reached "
                                     "done within its step limit: set done=True when the task is won (or lost for "
                                     "good), and check that the step limit leaves room to win")
    return report
