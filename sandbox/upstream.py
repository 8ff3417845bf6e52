"""Where the broker sends what it cannot answer from its cassette: an OpenAI-compatible endpoint (with the
harness's retry policy: 429, 408/409, 5xx, timeouts and lost connections are retried with backoff), or the
host's own embedder (MiniLM or hashing), so the evaluation image needs no torch.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

import openai

from harness.errors import ModelError
from harness.models import DEFAULT_LOCAL_MODEL
from harness.models.chat import Endpoint, is_retryable
from harness.models.usage import estimate_tokens


class UpstreamRejected(Exception):
    """The upstream refused the request itself (a 4xx that retrying cannot fix); passed through to the job."""

    def __init__(self, status: int, body: Any):
        super().__init__(f"upstream answered {status}")
        self.status, self.body = status, body


class UpstreamUnavailable(Exception):
    """The upstream failed after its retries (or is not configured)."""


class Upstream(Protocol):
    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` to ``path`` (``/chat/completions`` or ``/embeddings``) and return the JSON reply."""
        ...

    def close(self) -> None: ...


class OpenAIUpstream:
    """An OpenAI-compatible endpoint; the request body is forwarded as the job sent it."""

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout: float = 120.0,
                 max_attempts: int = 5, backoff_base: float = 0.5):
        self.base_url = base_url
        self.endpoint = Endpoint(base_url, "(as requested)", api_key, timeout=timeout, max_attempts=max_attempts,
                                 backoff_base=backoff_base)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        client = self.endpoint.client
        try:
            return self.endpoint.call(path.strip("/"), lambda: client.post(path, body=body, cast_to=object))
        except ModelError as exc:
            cause = exc.__cause__
            if isinstance(cause, openai.APIStatusError) and not is_retryable(cause):
                try:
                    payload = cause.response.json()
                except ValueError:
                    payload = {"error": {"message": cause.response.text[:2000], "type": "upstream"}}
                raise UpstreamRejected(cause.status_code, payload) from exc
            raise UpstreamUnavailable(str(exc)) from exc

    def close(self) -> None:
        self.endpoint.close()


class LocalEmbeddings:
    """``/embeddings`` served by an embedder on the host (``minilm`` or ``hashing`` from harness.models)."""

    def __init__(self, kind: str = "minilm", threads: int = 1):
        from harness.models.embed import MINILM_MODEL_ID, HashingEmbedder, MiniLMEmbedder

        if kind == "minilm":
            self.embedder: Any = MiniLMEmbedder(threads=threads)
            self.model = MINILM_MODEL_ID
        elif kind == "hashing":
            self.embedder, self.model = HashingEmbedder(), "hashing"
        else:
            raise ValueError(f"local embedder must be 'minilm' or 'hashing', got {kind!r}")
        self.kind = kind
        self._lock = threading.Lock()

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path.rstrip("/") != "/embeddings":
            raise UpstreamRejected(404, {"error": {"message": f"the local embedder serves only /embeddings, "
                                                              f"not {path}", "type": "not_found"}})
        raw = body.get("input")
        texts = [raw] if isinstance(raw, str) else raw
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise UpstreamRejected(400, {"error": {"message": "input must be a string or a list of strings "
                                                              "(token arrays are not supported)",
                                                   "type": "invalid_request_error"}})
        try:
            with self._lock:
                vectors = self.embedder.embed_sync(texts)
        except ModelError as exc:
            raise UpstreamUnavailable(str(exc)) from exc
        tokens = sum(estimate_tokens(t) for t in texts)
        return {"object": "list", "model": self.model,
                "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    def close(self) -> None:
        pass


class LocalChat:
    """Chat served by the embedded llama.cpp model on the host, started on the first request (seconds) and
    stopped by :meth:`close`. The offline default when no chat endpoint is configured."""

    def __init__(self, model: str = DEFAULT_LOCAL_MODEL, threads: int = 1, **endpoint_options: Any):
        self.model, self.threads, self.options = model, threads, endpoint_options
        self._server: Any = None
        self._upstream: OpenAIUpstream | None = None
        self._lock = threading.Lock()

    def _resolve(self) -> OpenAIUpstream:
        with self._lock:
            if self._upstream is None:
                from harness.models.local_llm import LocalModelServer

                server = LocalModelServer(self.model, threads=self.threads)
                try:
                    base_url = server.start()
                except ModelError as exc:
                    raise UpstreamUnavailable(f"the embedded local model could not start: {exc}") from exc
                self._server, self._upstream = server, OpenAIUpstream(base_url, None, **self.options)
            return self._upstream

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._resolve().post(path, body)

    def close(self) -> None:
        with self._lock:
            if self._upstream is not None:
                self._upstream.close()
            if self._server is not None:
                self._server.stop()
            self._server = self._upstream = None
