"""One place that turns :class:`ModelSettings` into the model clients of a run (:class:`Models`).

Every default works offline: with no ``chat_base_url`` the embedded llama.cpp model is used, and it is started
only when something first asks for ``Models.chat`` (or awaits ``Models.llm.complete``), because the heuristic
agent and memory-free designs never need an LLM. With ``uds`` set (inside the sandbox) chat and remote
embeddings go to the broker over that Unix socket.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Literal

from pydantic import BaseModel, ConfigDict

from harness.design import Embedder
from harness.errors import ModelError
from harness.models import DEFAULT_LOCAL_MODEL, DEFAULT_MAX_ATTEMPTS, DEFAULT_TIMEOUT_S
from harness.models.chat import NO_KEY, AsyncLLM, ChatClient
from harness.models.embed import HashingEmbedder, MiniLMEmbedder, RemoteEmbedder
from harness.models.local_llm import LocalModelServer
from harness.models.usage import UsageMeter

#: Base URL used with ``uds`` when none is configured: the host part is only sent as the Host header.
UDS_BASE_URL = "http://alma-broker/v1"


class ModelSettings(BaseModel):
    """Which models a run uses and how to reach them."""

    model_config = ConfigDict(extra="forbid")

    chat_base_url: str | None = None
    """OpenAI-compatible endpoint (ending in /v1); None starts the embedded local model (or uses ``uds``)."""
    chat_model: str = DEFAULT_LOCAL_MODEL
    """Model name sent in chat requests to ``chat_base_url``/``uds``."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the API key (unset is fine for local servers)."""
    embedder: Literal["minilm", "hashing", "remote"] = "minilm"
    """minilm: all-MiniLM-L6-v2 in process; hashing: hashed bag of words; remote: /v1/embeddings."""
    embed_base_url: str | None = None
    """Endpoint for ``embedder="remote"``; defaults to ``chat_base_url``."""
    embed_model: str = "text-embedding-3-small"
    local_model: str = DEFAULT_LOCAL_MODEL
    """Embedded model started when no ``chat_base_url`` and no ``uds`` is set."""
    threads: int = 1
    """CPU threads for in-process and local models."""
    ctx: int = 8192
    """Context window of the embedded local model (tokens); the meta agent's prompts need more than 4096."""
    timeout: float = DEFAULT_TIMEOUT_S
    """Seconds per request."""
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    """Attempts per model call (the first included)."""
    uds: str | None = None
    """Unix domain socket of the sandbox's model broker."""


class _LazyLLM(AsyncLLM):
    """An AsyncLLM whose ChatClient comes from ``Models.chat`` on the first ``complete``."""

    def __init__(self, models: Models):
        self._models = models

    async def _resolve(self) -> ChatClient:
        if self._models._chat is not None:
            return self._models._chat
        return await asyncio.to_thread(lambda: self._models.chat)


class Models:
    """The model clients of one run: ``chat``, ``llm``, ``embedder``, and the ``meter`` they all report to.

    ``close()`` (or leaving the ``with`` block) closes the clients and stops the local server if one started.
    """

    def __init__(self, settings: ModelSettings, meter: UsageMeter | None = None):
        self.settings = settings
        self.meter = meter if meter is not None else UsageMeter()
        self.server: LocalModelServer | None = None
        self._chat: ChatClient | None = None
        self._lock = threading.Lock()
        self.llm: AsyncLLM = _LazyLLM(self)
        self.embedder: Embedder = self._make_embedder()

    def _api_key(self) -> str:
        return os.environ.get(self.settings.api_key_env) or NO_KEY

    def _make_embedder(self) -> Embedder:
        s = self.settings
        if s.embedder == "hashing":
            return HashingEmbedder()
        if s.embedder == "minilm":
            return MiniLMEmbedder(threads=s.threads, meter=self.meter)
        base_url = s.embed_base_url or s.chat_base_url or (UDS_BASE_URL if s.uds else None)
        if base_url is None:
            raise ModelError("embedder='remote' needs embed_base_url (or chat_base_url, or uds) in the model "
                             "settings; or choose embedder='minilm' / 'hashing' to embed offline")
        return RemoteEmbedder(base_url, s.embed_model, self._api_key(), timeout=s.timeout,
                              max_attempts=s.max_attempts, meter=self.meter, uds=s.uds)

    @property
    def chat(self) -> ChatClient:
        """The chat client; the first access may start the embedded local model (seconds)."""
        if self._chat is not None:
            return self._chat
        with self._lock:
            if self._chat is None:
                s = self.settings
                if s.chat_base_url or s.uds:
                    base_url, model = s.chat_base_url or UDS_BASE_URL, s.chat_model
                else:
                    self.server = LocalModelServer(s.local_model, threads=s.threads, ctx=s.ctx)
                    base_url, model = self.server.start(), self.server.model_id
                self._chat = ChatClient(base_url, model, self._api_key(), timeout=s.timeout,
                                        max_attempts=s.max_attempts, meter=self.meter, uds=s.uds)
        return self._chat

    def close(self) -> None:
        with self._lock:
            if self._chat is not None:
                self._chat.close()
                self._chat = None
            if isinstance(self.embedder, RemoteEmbedder):
                self.embedder.close()
            if self.server is not None:
                self.server.stop()
                self.server = None

    def __enter__(self) -> Models:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_models(settings: ModelSettings) -> Models:
    """The model clients described by ``settings`` (nothing is started or loaded until first used)."""
    return Models(settings)
