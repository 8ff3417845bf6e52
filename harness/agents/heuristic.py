"""A deterministic, LLM-free task agent that can profit from memory.

It scores every admissible action and takes the best (ties broken by a seeded RNG):

* **memory, exact**: the action's text appears verbatim in the retrieved memory (strongest signal), more so
  when it is the next remembered action after the last one it took (so remembered sequences are followed);
* **memory, words**: the action's content words appear in the memory text;
* **goal**: the action's content words appear in the goal;
* **novelty**: actions already tried in this state, or often in this episode, are penalised; so are actions
  that never change the state (look, inventory, examine) and ones that undo progress (drop);
* **observation**: words of the current observation (newly seen things) give a small bonus;
* **route**: on text games a :class:`~harness.agents.navigator.Navigator` keeps a map read from the memory
  text and the agent's own observations (rooms named by headers such as ``-= Kitchen =-``, doors, what was seen
  where, moves remembered from a named room) and the goal's progress (objects in hand, delivered). The move on
  the shortest known way to where the next goal object (then its destination) was seen gets a bonus (and no
  penalty for going back the way it came); without one, exits not taken yet do, closed doors included. Memory
  that contradicts what the agent sees is dropped block by block. So memory that places the goal's objects in
  named rooms, and records moves followed by the header of the room they led to, lets the agent walk straight
  there;
* **errand**: in "go to <place>" worlds (ALFWorld) an :class:`~harness.agents.places.Errand` names the command
  that moves the goal on (take, clean/heat/cool, use a lamp, open, place, or go to the next place -- those that
  memory names next to the goal's object first), and that command gets a large bonus.

It reads only the goal, the observations, the admissible actions and the memory text: never walkthroughs,
policy commands or other privileged game data. With empty memory it is a goal-directed explorer, so a design
whose memory carries transferable actions and entities makes it measurably better.
"""

from __future__ import annotations

import random
import re
from collections import Counter

from harness.agents.base import STOPWORDS, VERBS, words
from harness.agents.navigator import Navigator
from harness.agents.places import Errand

#: verbs that never change the game state: exploring them costs steps
PASSIVE = frozenset({"look", "inventory", "examine", "idle", "wait"})
#: verbs that usually make progress in text games
ACTIVE = frozenset({"take", "open", "unlock", "insert", "put", "cook", "slice", "chop", "dice", "prepare"})
#: verbs that usually undo progress or destroy things
UNDO = frozenset({"close", "drop", "eat", "lock"})
#: action pairs that undo each other (the second undoes the first)
INVERSE = {"open": "close", "close": "open", "take": "put", "lock": "unlock", "unlock": "lock",
           "north": "south", "south": "north", "east": "west", "west": "east", "up": "down", "down": "up",
           "left": "right", "right": "left"}


class HeuristicAgent:
    """See the module docstring. ``seed`` fixes the tie-breaking; weights are constructor arguments."""

    name = "heuristic"

    def __init__(
        self,
        seed: int = 0,
        *,
        w_mem_exact: float = 3.0,
        w_mem_next: float = 0.0,
        w_mem_word: float = 0.6,
        w_goal: float = 1.2,
        w_obs: float = 0.2,
        w_route: float = 3.0,
        w_frontier: float = 1.0,
        w_tried_state: float = 2.5,
        w_tried_episode: float = 1.5,
        noise: float = 0.4,
    ):
        self.seed = seed
        self.rng = random.Random(seed)
        self.w = dict(mem_exact=w_mem_exact, mem_next=w_mem_next, mem_word=w_mem_word, goal=w_goal, obs=w_obs,
                      route=w_route, frontier=w_frontier,
                      tried_state=w_tried_state, tried_episode=w_tried_episode, noise=noise)
        self.begin("", "", "")

    def begin(self, goal: str, observation: str, memory: str) -> None:
        self.goal_words = set(words(goal)) - STOPWORDS
        self.memory = memory.lower()
        # the parts of memory that speak of the goal's entities: their words point at where things are
        chunks = [c for c in re.split(r"->|[\n.;|]", self.memory) if set(words(c)) & self.goal_words]
        self.relevant_memory = " | ".join(chunks)
        self.memory_words = (set(words(self.relevant_memory)) - STOPWORDS - self.goal_words - VERBS)
        self.cursor = 0  # position in the memory text just after the last remembered action taken
        self.tried_in_state: Counter[tuple[int, str]] = Counter()
        self.tried: Counter[str] = Counter()
        self.state = hash(observation)
        self.first_actions: tuple[str, ...] | None = None
        self.fixed_vocabulary = True
        self.last: list[str] = []
        self.location: int | None = None
        self.nav = Navigator(goal, observation, memory, route=self.w["route"], frontier=self.w["frontier"])
        self.errand = Errand(goal, observation, memory)

    def _state_key(self, observation: str, actions: list[str]) -> int:
        """The state's identity: the admissible-action set where it changes with the state (text games),
        else the observation (fixed action vocabularies such as grid worlds)."""
        key = tuple(sorted(a.lower() for a in actions))
        if self.first_actions is None:
            self.first_actions = key
        elif key != self.first_actions:
            self.fixed_vocabulary = False
        return hash(observation) if self.fixed_vocabulary else hash(key)

    def _undoes_last(self, act_words: list[str]) -> bool:
        if not self.last or not act_words:
            return False
        verb, objects = act_words[0], act_words[1:]
        last_verb, last_objects = self.last[0], self.last[1:]
        if verb == "go" or last_verb == "go" or len(act_words) == 1:
            a = act_words[-1]
            b = self.last[-1]
            return INVERSE.get(b) == a and (verb == last_verb or len(act_words) == 1)
        if INVERSE.get(last_verb) == verb or (last_verb == "take" and verb in ("put", "insert", "drop")):
            return bool(objects) and bool(last_objects) and objects[0] == last_objects[0]
        return False

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

    def score(self, action: str, observation_words: set[str], next_action: str | None = None,
              planned: bool = False) -> float:
        low = action.lower()
        act_words = words(low)
        verb = act_words[0] if act_words else ""
        # the words after the verb ("insert staple into locker" -> staple, locker), or the lone word
        content = [w for w in act_words[1:] if w not in STOPWORDS] if len(act_words) > 1 else act_words
        obj = content[0] if content else ""
        s = 0.0
        goal_hits = sum(w in self.goal_words for w in content)
        detour = False
        if verb in ("put", "insert", "take", "drop", "eat") and obj and obj not in self.goal_words:
            detour = True  # moving things the goal does not mention, whatever the destination
        elif verb in ("put", "insert") and not all(w in self.goal_words for w in content[-1:]):
            detour = True  # the goal's object, but somewhere the goal does not ask for
        elif verb in ("put", "insert") and self.nav.pairs and not any(
                obj in x and content[-1] in y for x, y in self.nav.pairs):
            detour = True  # the goal's object, but where the goal wants another one
        if verb == "take" and obj in self.nav.done:
            detour = True  # delivered already: taking it back undoes the goal
        if verb in PASSIVE or verb in UNDO:
            goal_hits = 0  # looking at, dropping or closing the goal's things is no progress towards it
        if detour:
            goal_hits = 0
            s -= 1.5
        elif self.memory and verb not in PASSIVE and verb not in UNDO:  # memory guides productive steps
            move = self._is_move(act_words)
            if low == next_action:
                s += self.w["mem_next"]
            if not move and low in self.relevant_memory:  # a remembered step towards the goal's entities
                s += self.w["mem_exact"]
            if content and not move:
                s += self.w["mem_word"] * sum(w in self.memory_words for w in content) / len(content) * 2
        s += self.w["goal"] * goal_hits
        s += self.w["obs"] * sum(w in observation_words for w in content)
        if verb in PASSIVE:
            s -= 1.5
        elif verb in ACTIVE:
            s += 0.4
        elif verb in UNDO:
            s -= 1.0
        delivers = verb in ("put", "insert") and not detour and goal_hits >= 2
        leaves_dead_end = self._is_move(act_words) and len(self.nav.moves) <= 1
        if not (planned or delivers or leaves_dead_end) and self._undoes_last(act_words):
            s -= 2.0  # (the planned way, delivering what was just taken, or leaving a dead end, is no undo)
        if self._is_move(act_words):
            if not planned:
                s -= self.w["tried_state"] * self.tried_in_state[(self.location, low)]
        else:
            s -= self.w["tried_state"] * self.tried_in_state[(self.state, low)]
            s -= self.w["tried_episode"] * self.tried[low]
        return s + self.rng.random() * self.w["noise"]

    @staticmethod
    def _is_move(act_words: list[str]) -> bool:
        return bool(act_words) and (act_words[0] == "go" or (len(act_words) == 1 and act_words[0] in INVERSE))

    def act(self, observation: str, admissible_actions: list[str]) -> str:
        if not admissible_actions:
            raise ValueError("the environment offered no admissible action")
        self.nav.observe(observation, admissible_actions)
        self.state = self._state_key(observation, admissible_actions)
        if self.fixed_vocabulary or (self.last and self._is_move(self.last)) or self.location is None:
            self.location = self.state if self.fixed_vocabulary else hash(observation.strip().split("\n")[0])
        obs_words = set(words(observation)) - STOPWORDS
        next_action = self._next_remembered(admissible_actions) if self.memory and self.w["mem_next"] else None
        plan = self.nav.plan(admissible_actions)
        self.errand.observe(observation, admissible_actions)
        errand = self.errand.next_action(admissible_actions)
        choice = max(admissible_actions,
                     key=lambda a: self.score(a, obs_words, next_action, self.nav.planned(a, plan) or a == errand)
                     + self.nav.bonus(a, plan) + (2 * self.w["route"] if a == errand else 0.0))
        self.nav.record(choice)
        self.errand.record(choice)
        low = choice.lower()
        self.tried_in_state[(self.location if self._is_move(words(low)) else self.state, low)] += 1
        self.tried[low] += 1
        self.last = words(low)
        nxt = self.memory.find(low, self.cursor) if self.memory else -1
        if nxt >= 0:
            self.cursor = nxt + len(low)
        return choice
