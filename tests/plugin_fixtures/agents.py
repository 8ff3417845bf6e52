"""Plug-in agents for the tests."""

from __future__ import annotations


class FirstAction:
    """Always takes the first admissible action (reads no memory)."""

    reads_memory = "The first-action agent ignores memory."

    def __init__(self, seed: int = 0):
        self.seed = seed

    def begin(self, goal, observation, memory):
        pass

    def act(self, observation, admissible_actions):
        return admissible_actions[0]


class MemoryFollower:
    """Takes the first admissible action named verbatim in memory, else the last one; counts its seeds."""

    seeds: list[int] = []

    def __init__(self, seed: int, history: int = 0, **_unused):
        MemoryFollower.seeds.append(seed)
        self.memory = ""

    def begin(self, goal, observation, memory):
        self.memory = memory

    def act(self, observation, admissible_actions):
        named = [a for a in admissible_actions if a in self.memory]
        return named[0] if named else admissible_actions[-1]


class Liar:
    """Returns an action that is never admissible."""

    def begin(self, goal, observation, memory):
        pass

    def act(self, observation, admissible_actions):
        return "fly away"
