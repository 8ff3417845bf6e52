"""The task-agent contract: picks one admissible action per step, reading the goal and the design's memory.

Per episode the harness calls ``begin`` once, then ``act`` until the episode ends or the step limit is hit::

    agent.begin(goal, first_observation, memory_text)
    action = agent.act(observation, admissible_actions)   # always one of admissible_actions

**Bring your own agent.** Any class with the attributes and methods of :class:`Agent` is one: name it
``my_pkg.agents:MyAgent`` wherever an agent name is accepted (``--agent``, ``eval.agent``), or register it under
the entry-point group ``alma_engine.agents``. The harness builds one instance per episode
(:func:`harness.agents.factory.make_agent`), passing only the keyword arguments its ``__init__`` declares of:

* ``seed`` (int): a per-episode seed derived from the suite seed, the phase, the task and the repeat;
* ``chat``: the job's chat model (an object with ``chat(messages, max_tokens=, temperature=) -> str``; inside
  a sandbox it goes through the host's broker, which meters and records it); started on first use;
* ``history``, ``temperature``, ``max_tokens``: the job's LLM-agent settings.

A class attribute ``reads_memory`` (str) says how the agent reads a design's memory text; the meta agent is shown
it (the class docstring when there is none), so that it designs memory for the reader it has.
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
        name: a short label (``heuristic``, ``llm``); results record the name the job gave.
    """

    name: str

    def begin(self, goal: str, observation: str, memory: str) -> None:
        """Start an episode (called once per instance, before the first :meth:`act`).

        Args:
            goal: the environment's goal text for this task.
            observation: the environment's first observation.
            memory: the design's retrieved text ('' when there is none), at most
                ``harness.design.MAX_MEMORY_CHARS`` long.
        """
        ...

    def act(self, observation: str, admissible_actions: list[str]) -> str:
        """Choose the next action.

        Args:
            observation: the environment's latest observation (the first one on the first call).
            admissible_actions: the commands the environment accepts now; never empty.

        Returns:
            one element of ``admissible_actions``, exactly as given. Deterministic for a given seed and history
            (an LLM agent: for a given model reply).

        Raises:
            harness.errors.ModelError: a model call failed. Never raises for a strange observation.
        """
        ...
