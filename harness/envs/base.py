"""The text-environment contract: what a benchmark is to the harness.

As small as gymnasium's reset/step::

    bench = get_benchmark("textworld")       # or "my_pkg.envs:MyBenchmark", or an installed plug-in's name
    suite = bench.build_suite(seed=0, n_train=6, n_test=4, cache_dir="~/.cache/...")
    env = bench.make_env()
    first = env.reset(suite.train[0])        # -> Observation(text, goal, admissible_actions)
    result = env.step(action)                # -> StepResult(observation, reward, done, won, admissible_actions, progress)
    env.close()

Each benchmark module provides a :class:`Benchmark`: a deterministic task-suite builder (train /
in-distribution / out-of-distribution splits from a seed) and an environment factory.

**Bring your own benchmark.** Any class with the attributes and methods of :class:`Benchmark` (no base class
needed) is one: name it ``my_pkg.envs:MyBenchmark`` wherever a benchmark name is accepted, or register it under
the entry-point group ``alma_engine.benchmarks`` of your package. ``python -m harness.check_plugin NAME`` plays
it with a random and the heuristic agent and reports every breach of this contract. Where it runs:

* ``build_suite`` runs on the host (the sandbox mounts the suite's ``cache_dir`` read-only) and again inside
  the sandbox, where ``cache_dir`` is that read-only copy: build once, then only read.
* ``make_env``/``reset``/``step`` run inside the sandbox, in the scorer (never in the design's process): no
  network; ``/tmp`` is the only writable place.
* The heuristic agent reads text: commands named verbatim in a memory line that mentions the goal's words
  score high (see ``harness/agents/prompts/reads_heuristic.txt``), so name things in goals, observations and
  actions with the same words.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

SPLITS = ("train", "id", "ood")


@dataclass(frozen=True)
class TaskSpec:
    """A task in a suite: enough for ``reset`` to set the game up again, exactly.

    Attributes:
        task_id: unique within the suite; stable across runs for the same suite seed.
        benchmark: benchmark name.
        split: ``"train"``, ``"id"`` or ``"ood"``.
        world_id: tasks with the same world_id share a world (map and objects); ``None`` if unknown.
        params: benchmark-specific, JSON-serialisable (e.g. the path of a generated game file).
    """

    task_id: str
    benchmark: str
    split: str
    world_id: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON-serialisable data (``params`` must be JSON-serialisable)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskSpec:
        """The inverse of :meth:`to_dict`."""
        return cls(
            task_id=data["task_id"], benchmark=data["benchmark"], split=data["split"],
            world_id=data.get("world_id"), params=dict(data.get("params", {})),
        )


@dataclass
class Observation:
    """What ``reset`` returns: the first observation text, the goal and the admissible actions.

    Attributes:
        text: what the agent sees first (plain text, at most a few KB; the checker's limit is 8000 characters).
        goal: the task's objective in natural language; memory designs and agents see it.
        admissible_actions: the commands ``step`` accepts now: a non-empty list of distinct ``str``.
    """

    text: str
    goal: str
    admissible_actions: list[str]


@dataclass
class StepResult:
    """What ``step`` returns.

    Attributes:
        observation: the environment's answer to the action (plain text, at most a few KB).
        reward: this step's reward (a float; a score delta where the game keeps a score).
        done: the episode is over (won, or lost for good); only ``reset`` may follow.
        won: the benchmark's success criterion (a won step should also be ``done``).
        admissible_actions: the commands accepted next (non-empty unless ``done``).
        progress: the share of the game's maximum score reached so far, in [0, 1], or ``None`` where the game
            keeps no score.
    """

    observation: str
    reward: float
    done: bool
    won: bool
    admissible_actions: list[str]
    progress: float | None = None


class TextEnv(Protocol):
    """One playable environment instance; ``reset`` may be called again with another task.

    The harness uses an instance from one thread at a time: ``reset`` once per episode, then ``step`` until
    the result is ``done`` (or the protocol's step limit), then the next ``reset``; ``close`` once at the end.
    """

    def reset(self, task: TaskSpec) -> Observation:
        """Start ``task`` from its beginning and return the first :class:`Observation`.

        Deterministic: the same ``task`` gives the same observation, goal and admissible actions, and the same
        actions afterwards give the same results (memory designs and replays rely on it). ``text`` and
        ``goal`` are plain text (no markup, at most a few KB); ``admissible_actions`` are the commands ``step``
        accepts now, as the agent should write them. Raises :class:`harness.errors.BenchmarkError` when the
        task cannot be set up (a missing game file: the message says how to build the suite).
        """
        ...

    def step(self, action: str) -> StepResult:
        """Play ``action`` (any string: an inadmissible one is answered, not raised) and return the
        :class:`StepResult`. After a result with ``done`` true, only ``reset`` may follow."""
        ...

    def close(self) -> None:
        """Release the game's resources (processes, files); the instance is not used afterwards."""
        ...


@dataclass
class TaskSuite:
    """Tasks for one evaluation, split deterministically from ``seed``.

    Attributes:
        benchmark: the benchmark's name (as in its task specs).
        seed: the suite seed it was built from.
        train: the collection tasks, in the order they are played.
        id: held-out tasks from the training distribution (same worlds, other tasks).
        ood: held-out tasks from another distribution (unseen worlds, harder tasks ...).

    Task ids are unique across the three splits.
    """

    benchmark: str
    seed: int
    train: list[TaskSpec] = field(default_factory=list)
    id: list[TaskSpec] = field(default_factory=list)
    ood: list[TaskSpec] = field(default_factory=list)

    def split(self, name: str) -> list[TaskSpec]:
        """The tasks of split ``name`` (``"train"``, ``"id"`` or ``"ood"``); ValueError for another name."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")
        return getattr(self, name)


class Benchmark(Protocol):
    """A benchmark: its name, its step limit, a suite builder and an environment factory.

    Attributes:
        name: the registry name (``--benchmark NAME``); every :class:`TaskSpec` it builds carries it.
        step_limit: the default number of agent actions per episode (a task's ``params["step_limit"]`` or the
            job's override wins). Part of the measuring instrument: change it only in its own commit.
    """

    name: str
    step_limit: int

    def build_suite(self, seed: int, n_train: int, n_test: int, cache_dir: str | None = None) -> TaskSuite:
        """Build (or load from the on-disk cache) a suite with ``n_train`` train tasks and ``n_test`` tasks in
        each of the ``id`` and ``ood`` splits.

        Args:
            seed: the suite seed. The same ``(seed, n_train, n_test)`` gives the same suite, task for task,
                on any machine and in any process (no ``hash()``, no clock, no global RNG).
            n_train, n_test: split sizes; a suite has exactly these many tasks (``n_test`` in each of id, ood).
            cache_dir: a directory for generated files (game files ...), or None; when it is read-only (inside
                the sandbox) the files are already there.

        Returns:
            a :class:`TaskSuite` whose specs carry ``benchmark=self.name``, their split's name and unique ids.

        Raises:
            harness.errors.BenchmarkError: the suite cannot be built (the message says what to install or do).
        """
        ...

    def make_env(self) -> TextEnv:
        """A new, independent environment instance (the harness makes one per concurrent episode, and may
        play episodes of several instances in parallel threads)."""
        ...
