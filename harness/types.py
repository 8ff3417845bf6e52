"""Plain, JSON-serialisable records exchanged between environments, agents and memory designs.

These are the only shapes a memory design ever sees: a :class:`Task` in ``retrieve`` and an :class:`Episode`
in ``update``. Every field is a str, int, float, bool, list or dict, so ``to_dict()`` / ``from_dict()``
round-trip through JSON exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Task:
    """What a memory design may know before an episode starts.

    Attributes:
        task_id: stable identifier of the task inside its suite (e.g. ``"tw-treasure/w03/q1"``).
        benchmark: benchmark name (``"textworld"``, ...).
        goal: the task's objective in natural language.
        observation: the first observation, as the agent sees it after ``reset``.
    """

    task_id: str
    benchmark: str
    goal: str
    observation: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Task:
        return cls(**{k: data[k] for k in ("task_id", "benchmark", "goal", "observation")})


@dataclass
class Step:
    """One agent action and what the environment answered.

    Attributes:
        action: the admissible action the agent took.
        observation: the environment's text after the action.
        reward: reward of this step (score delta where the game keeps a score).
        done: whether the episode ended with this step.
    """

    action: str
    observation: str
    reward: float = 0.0
    done: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Episode:
    """A whole trajectory and its outcome, given to ``update`` after the episode.

    Attributes:
        task: the task that was played.
        steps: the trajectory, in order.
        won: whether the task was solved (the success criterion of the benchmark).
        reward: total reward collected.
        progress: fraction of the game's maximum score reached, in [0, 1] (equals ``won`` where the game has
            no score).
        retrieved: what ``retrieve`` returned for this episode (``{}`` when it failed).
    """

    task: Task
    steps: list[Step] = field(default_factory=list)
    won: bool = False
    reward: float = 0.0
    progress: float = 0.0
    retrieved: dict[str, Any] = field(default_factory=dict)

    @property
    def actions(self) -> list[str]:
        return [s.action for s in self.steps]

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task.to_dict(),
            "steps": [s.to_dict() for s in self.steps],
            "won": self.won,
            "reward": self.reward,
            "progress": self.progress,
            "retrieved": self.retrieved,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Episode:
        return cls(
            task=Task.from_dict(data["task"]),
            steps=[Step(**s) for s in data.get("steps", [])],
            won=bool(data.get("won", False)),
            reward=float(data.get("reward", 0.0)),
            progress=float(data.get("progress", 0.0)),
            retrieved=dict(data.get("retrieved", {})),
        )
