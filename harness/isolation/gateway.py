"""Serves a design's model calls from the harness's own clients (so they are metered in one place)."""

from __future__ import annotations

from typing import Any


class ModelGateway:
    """Wraps the harness's models (``harness.models.factory.Models``): sync calls, JSON-able values."""

    def __init__(self, models):
        self.models = models

    def handle(self, message: dict[str, Any]) -> Any:
        if message["type"] == "llm":
            messages = []
            if message.get("system"):
                messages.append({"role": "system", "content": str(message["system"])})
            messages.append({"role": "user", "content": str(message["prompt"])})
            return self.models.chat.chat(
                messages, json_mode=bool(message.get("json_mode")),
                max_tokens=min(int(message.get("max_tokens", 512)), 4096),
                temperature=float(message.get("temperature", 0.0)),
            )
        if message["type"] == "embed":
            texts = [str(t) for t in message["texts"]][:256]
            return self.models.embedder.embed_sync(texts)
        raise ValueError(f"unknown model call {message['type']!r}")
