"""Token and request accounting shared by every model client of one process.

A :class:`UsageMeter` is handed to the chat and embedding clients; each successful request calls
:meth:`UsageMeter.record` once. The meter is thread-safe because the async wrappers run the synchronous
clients in worker threads.
"""

from __future__ import annotations

import threading
from collections import defaultdict


def _empty() -> dict[str, int]:
    return {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0}


class UsageMeter:
    """Counts requests and tokens per model (and per kind of call: ``"chat"``, ``"embed"``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_model: dict[str, dict[str, int]] = defaultdict(_empty)
        self._by_kind: dict[str, dict[str, int]] = defaultdict(_empty)

    def record(self, model: str, prompt_tokens: int, completion_tokens: int, kind: str = "chat") -> None:
        """Add one request of ``model`` that used ``prompt_tokens`` in and ``completion_tokens`` out."""
        prompt_tokens, completion_tokens = max(0, int(prompt_tokens)), max(0, int(completion_tokens))
        with self._lock:
            for entry in (self._by_model[model], self._by_kind[kind]):
                entry["requests"] += 1
                entry["prompt_tokens"] += prompt_tokens
                entry["completion_tokens"] += completion_tokens

    def snapshot(self) -> dict[str, dict]:
        """A copy: model -> ``{"requests", "prompt_tokens", "completion_tokens"}``."""
        with self._lock:
            return {model: dict(entry) for model, entry in self._by_model.items()}

    def by_kind(self) -> dict[str, dict]:
        """A copy: kind (``"chat"``, ``"embed"``, ...) -> the same three counters."""
        with self._lock:
            return {kind: dict(entry) for kind, entry in self._by_kind.items()}

    def total_tokens(self) -> int:
        """Prompt plus completion tokens over all models."""
        with self._lock:
            return sum(e["prompt_tokens"] + e["completion_tokens"] for e in self._by_model.values())

    def __repr__(self) -> str:
        return f"UsageMeter({self.snapshot()!r})"


def estimate_tokens(text: str) -> int:
    """Rough token count of ``text`` for servers that report no usage: one token per word."""
    return len(text.split())
