"""The LLM task agent: any OpenAI-compatible chat endpoint, prompt templates from text files.

The prompt holds the goal, the retrieved memory, a bounded history, the current observation and the admissible
actions; the reply is mapped onto an admissible action by :func:`map_reply` (exact, contained, numbered, then
closest by edit similarity). Tokens are counted by the chat client's usage meter.
"""

from __future__ import annotations

import difflib
import re

from harness.agents.prompts import load_prompt

_NUMBERED = re.compile(r"^\s*(\d+)\s*[.):]?\s*$")


def map_reply(reply: str, admissible: list[str]) -> tuple[str, bool]:
    """Map a model reply onto an admissible action. Returns ``(action, exact)``; never fails. A reply that is not
    exact named an action only if that action is contained in it; otherwise the action is a spelling guess."""
    text = reply.strip().strip("`'\"").strip()
    first = text.splitlines()[0].strip() if text else ""
    lowered = {a.lower(): a for a in admissible}
    for candidate in (text, first, first.rstrip(".").removeprefix("> ").removeprefix("action:").strip()):
        if candidate.lower() in lowered:
            return lowered[candidate.lower()], True
    m = _NUMBERED.match(first)
    if m and 1 <= int(m.group(1)) <= len(admissible):
        return admissible[int(m.group(1)) - 1], True
    contained = [a for a in admissible if a.lower() in text.lower()]
    if contained:
        return max(contained, key=len), False
    close = difflib.get_close_matches(first.lower(), list(lowered), n=1, cutoff=0.0)
    return (lowered[close[0]] if close else admissible[0]), False


class LLMAgent:
    """Task agent backed by a chat client (``harness.models.chat.ChatClient`` or anything with ``chat``)."""

    name = "llm"

    def __init__(self, chat, *, history: int = 8, temperature: float = 0.0, max_tokens: int = 48,
                 max_memory_chars: int = 3000):
        self.chat = chat
        self.history_len = history
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.max_memory_chars = max_memory_chars
        self.unmapped = 0  # replies that were not exactly an action (contained in the reply, or guessed)
        self.unparsed = 0  # replies that named no admissible action at all (guessed): counted per model by the host
        self.begin("", "", "")

    def begin(self, goal: str, observation: str, memory: str) -> None:
        self.goal = goal
        self.memory = memory[: self.max_memory_chars]
        self.history: list[tuple[str, str]] = []
        self.last_action: str | None = None
        self.last_observation = observation

    def build_messages(self, observation: str, admissible_actions: list[str]) -> list[dict]:
        history = "\n".join(f"> {a}\n{o[:300]}" for a, o in self.history[-self.history_len:]) or "(none)"
        prompt = load_prompt("step").format(
            goal=self.goal or "(not stated)",
            memory=self.memory or "(none)",
            history=history,
            observation=observation[:1500],
            actions="\n".join(f"- {a}" for a in admissible_actions),
        )
        return [{"role": "system", "content": load_prompt("system").strip()},
                {"role": "user", "content": prompt}]

    def act(self, observation: str, admissible_actions: list[str]) -> str:
        if not admissible_actions:
            raise ValueError("the environment offered no admissible action")
        if self.last_action is not None:
            self.history.append((self.last_action, observation))
        reply = self.chat.chat(self.build_messages(observation, admissible_actions),
                               max_tokens=self.max_tokens, temperature=self.temperature)
        action, exact = map_reply(reply, admissible_actions)
        self.unmapped += not exact
        self.unparsed += not (exact or action.lower() in reply.lower())  # a guess: the reply named no action
        self.last_action = action
        return action
