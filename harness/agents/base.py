"""The task-agent contract: picks one admissible action per step, reading the goal and the design's memory.

Per episode the harness calls ``begin`` once, then ``act`` until the episode ends or the step limit is hit::

    agent.begin(goal, first_observation, memory_text)
    action = agent.act(observation, admissible_actions)   # always one of admissible_actions
"""

from __future__ import annotations

import re
from typing import Protocol

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    """Lower-case alphanumeric words of ``text``."""
    return _WORD.findall(text.lower())


#: words that carry no content in a command or a goal
STOPWORDS = frozenset(
    "a an the to of in on at with from into and or is are be it its this that you your go take put for by".split()
)
#: common verbs: never evidence of where something is
VERBS = frozenset("take put insert open close drop eat examine look inventory unlock lock go find get move push "
                  "use from into on".split())


class Agent(Protocol):
    """A task agent: reads the goal, the observations and the memory text, and chooses actions.

    One instance plays one episode: the harness calls ``begin`` once, then ``act`` once per step with the
    environment's latest observation, until the episode ends or the step limit. An agent never sees the
    memory design itself, only the text its ``retrieve`` returned. It is part of the measuring instrument of
    every search claim: change its behaviour only in its own commit, with a before/after table of every seed.

    Attributes:
        name: a short label recorded in results (``heuristic``, ``llm``).
    """

    name: str

    def begin(self, goal: str, observation: str, memory: str) -> None:
        """Start an episode. ``goal`` and ``observation`` are the environment's first ones; ``memory`` is the
        design's retrieved text ('' when there is none), at most ``harness.design.MAX_MEMORY_CHARS`` long."""
        ...

    def act(self, observation: str, admissible_actions: list[str]) -> str:
        """Return the next action: one element of ``admissible_actions`` (never empty). Deterministic for a
        given seed and history (an LLM agent: for a given model reply). Never raises for a strange
        observation; a model failure surfaces as :class:`harness.errors.ModelError`."""
        ...
