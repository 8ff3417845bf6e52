"""A deterministic, LLM-free task agent that can profit from memory.

It scores every admissible action and takes the best (ties broken by a seeded RNG):

* **memory, exact**: the action's text appears verbatim in the retrieved memory (strongest signal), more so
  when it is the next remembered action after the last one it took (so remembered sequences are followed);
* **memory, words**: the action's content words appear in the memory text;
* **goal**: the action's content words appear in the goal;
* **novelty**: actions already tried in this state, or often in this episode, are penalised; so are actions
  that never change the state (look, inventory, examine) and ones that undo progress (drop);
* **observation**: words of the current observation (newly seen things) give a small bonus.

It reads only the goal, the observations, the admissible actions and the memory text: never walkthroughs,
policy commands or other privileged game data. With empty memory it is a goal-directed explorer, so a design
whose memory carries transferable actions and entities makes it measurably better.
"""

from __future__ import annotations

import random
from collections import Counter

from harness.agents.base import words

STOPWORDS = frozenset(
    "a an the to of in on at with from into and or is are be it its this that you your go take put for by".split()
)
#: verbs that never change the game state: exploring them costs steps
PASSIVE = frozenset({"look", "inventory", "examine", "idle", "wait"})
#: verbs that usually make progress in text games
ACTIVE = frozenset({"take", "open", "unlock", "insert", "put", "cook", "slice", "chop", "dice", "eat", "prepare"})


class HeuristicAgent:
    """See the module docstring. ``seed`` fixes the tie-breaking; weights are constructor arguments."""

    name = "heuristic"

    def __init__(
        self,
        seed: int = 0,
        *,
        w_mem_exact: float = 3.0,
        w_mem_next: float = 2.5,
        w_mem_word: float = 0.6,
        w_goal: float = 1.2,
        w_obs: float = 0.2,
        w_tried_state: float = 2.5,
        w_tried_episode: float = 0.6,
        noise: float = 0.4,
    ):
        self.seed = seed
        self.rng = random.Random(seed)
        self.w = dict(mem_exact=w_mem_exact, mem_next=w_mem_next, mem_word=w_mem_word, goal=w_goal, obs=w_obs,
                      tried_state=w_tried_state, tried_episode=w_tried_episode, noise=noise)
        self.begin("", "", "")

    def begin(self, goal: str, observation: str, memory: str) -> None:
        self.goal_words = set(words(goal)) - STOPWORDS
        self.memory = memory.lower()
        self.memory_words = set(words(memory)) - STOPWORDS
        self.cursor = 0  # position in the memory text just after the last remembered action taken
        self.tried_in_state: Counter[tuple[int, str]] = Counter()
        self.tried: Counter[str] = Counter()
        self.state = hash(observation)

    def _next_remembered(self, actions: list[str]) -> str | None:
        """The admissible action that the memory text mentions first after the cursor (if close enough)."""
        best, best_pos = None, None
        for action in actions:
            pos = self.memory.find(action.lower(), self.cursor)
            if pos >= 0 and (best_pos is None or pos < best_pos):
                best, best_pos = action.lower(), pos
        if best_pos is None or best_pos - self.cursor > 200:
            return None
        return best

    def score(self, action: str, observation_words: set[str], next_action: str | None = None) -> float:
        low = action.lower()
        act_words = words(low)
        content = [w for w in act_words if w not in STOPWORDS]
        s = 0.0
        if self.memory:
            if low in self.memory:
                s += self.w["mem_exact"]
            if low == next_action:
                s += self.w["mem_next"]
            if content:
                s += self.w["mem_word"] * sum(w in self.memory_words for w in content) / len(content) * 2
        s += self.w["goal"] * sum(w in self.goal_words for w in content)
        s += self.w["obs"] * sum(w in observation_words for w in content)
        if act_words and act_words[0] in PASSIVE:
            s -= 1.5
        elif act_words and act_words[0] in ACTIVE:
            s += 0.4
        if act_words and act_words[0] == "drop":
            s -= 1.0
        s -= self.w["tried_state"] * self.tried_in_state[(self.state, low)]
        s -= self.w["tried_episode"] * self.tried[low]
        return s + self.rng.random() * self.w["noise"]

    def act(self, observation: str, admissible_actions: list[str]) -> str:
        if not admissible_actions:
            raise ValueError("the environment offered no admissible action")
        self.state = hash(observation)
        obs_words = set(words(observation)) - STOPWORDS
        next_action = self._next_remembered(admissible_actions) if self.memory else None
        choice = max(admissible_actions, key=lambda a: self.score(a, obs_words, next_action))
        low = choice.lower()
        self.tried_in_state[(self.state, low)] += 1
        self.tried[low] += 1
        nxt = self.memory.find(low, self.cursor) if self.memory else -1
        if nxt >= 0:
            self.cursor = nxt + len(low)
        return choice
