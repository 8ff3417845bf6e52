"""The random task agent: a uniformly random admissible action each step (seeded). A floor for any score, and
the contract checker's first player (:mod:`harness.check_plugin`)."""

from __future__ import annotations

import random


class RandomAgent:
    """Picks ``rng.choice(admissible_actions)``; ignores goal, observations and memory."""

    name = "random"
    reads_memory = "The task agent is a random agent: it ignores the memory text entirely."

    def __init__(self, seed: int = 0):
        self.rng = random.Random(seed)

    def begin(self, goal: str, observation: str, memory: str) -> None:
        """Nothing to prepare: the agent reads nothing."""

    def act(self, observation: str, admissible_actions: list[str]) -> str:
        """A uniformly random element of ``admissible_actions`` (ValueError when it is empty)."""
        if not admissible_actions:
            raise ValueError("the environment offered no admissible action")
        return self.rng.choice(admissible_actions)
