"""Chat completions against any OpenAI-compatible endpoint, with one retry policy for every model call.

:class:`Endpoint` wraps an ``openai.OpenAI`` client (its own retries switched off) and runs each request under
our policy: 429, 408/409, 5xx, timeouts and connection errors are retried with jittered exponential backoff
(a ``Retry-After`` header lengthens the wait, capped), a bounded number of attempts and a per-request
timeout; anything else fails at once. Every failure surfaces as :class:`harness.errors.ModelError` naming the
endpoint, the model and the last error. The embedding client (``harness.models.embed``) uses the same
:class:`Endpoint`.

:class:`ChatClient` is the synchronous chat client; :class:`AsyncLLM` adapts it to the ``harness.design.LLM``
protocol that memory designs await.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import httpx2
import openai
import tenacity

from harness.errors import ModelError
from harness.models.usage import UsageMeter, estimate_tokens

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Placeholder key for local servers that ignore authentication (the openai client insists on some key).
NO_KEY = "not-needed"

_RETRYABLE_STATUS = frozenset({408, 409, 429})
_JSON_HINT = "Reply with a single JSON object and nothing else."


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of an openai error, or None when the request got no HTTP answer."""
    return exc.status_code if isinstance(exc, openai.APIStatusError) else None


def is_retryable(exc: BaseException) -> bool:
    """True for errors worth another attempt: rate limits, server errors, timeouts and lost connections."""
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return True
    status = status_of(exc)
    return status is not None and (status in _RETRYABLE_STATUS or status >= 500)


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:  # an HTTP date: not worth parsing, the backoff covers it
        return None


def _hint(exc: BaseException, base_url: str) -> str:
    status = status_of(exc)
    if isinstance(exc, openai.APIConnectionError):
        return f"check that a server is running at {base_url} and answering in time"
    if status in (401, 403):
        return "check the API key (ModelSettings.api_key_env names the environment variable)"
    if status == 404:
        return "check the base URL (it usually ends in /v1) and the model name"
    if status is not None and status < 500:
        return "the request was rejected; see the server's message"
    return "the server kept failing; try again later or lower the request rate"


class Endpoint:
    """One OpenAI-compatible endpoint (base URL + model) and the retry policy its requests run under.

    Args:
        base_url: e.g. ``http://127.0.0.1:8080/v1``.
        model: the model name sent with each request.
        api_key: the key; None for local servers (a placeholder is sent).
        timeout: seconds per request (each attempt).
        max_attempts: attempts per call, the first included (>= 1).
        backoff_base: seconds; the wait before attempt n+1 is uniform in [0, backoff_base * 2**n], capped at
            ``backoff_max`` ("full jitter"). A ``Retry-After`` header raises the wait to its value (capped).
        uds: path of a Unix domain socket to speak HTTP over instead of TCP (the host in base_url is then only
            sent as the Host header). The sandbox's broker listens on one.
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None, *, timeout: float = 60.0,
                 max_attempts: int = 5, backoff_base: float = 0.5, backoff_max: float = 20.0,
                 uds: str | None = None):
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self.base_url, self.model, self.uds = base_url, model, uds
        self.max_attempts, self.backoff_max = max_attempts, backoff_max
        self._jitter = tenacity.wait_random_exponential(multiplier=backoff_base, max=backoff_max)
        http_client = httpx2.Client(transport=httpx2.HTTPTransport(uds=uds), timeout=timeout) if uds else None
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key or NO_KEY, timeout=timeout,
                                    max_retries=0, http_client=http_client)

    def _wait(self, state: tenacity.RetryCallState) -> float:
        wait = self._jitter(state)
        exc = state.outcome.exception() if state.outcome else None
        after = _retry_after(exc) if exc is not None else None
        return min(max(wait, after), self.backoff_max) if after is not None else wait

    def _log_retry(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("%s (model %s): attempt %d/%d failed (%s); retrying in %.2fs", self.base_url, self.model,
                    state.attempt_number, self.max_attempts, exc, state.upcoming_sleep)

    def call(self, what: str, request: Callable[[], T]) -> T:
        """Run ``request`` (one API call) under the retry policy; ``what`` names it in errors ("chat")."""
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception(is_retryable),
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            return retrying(request)
        except openai.OpenAIError as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            where = f"{self.base_url}" + (f" via unix socket {self.uds}" if self.uds else "")
            raise ModelError(
                f"{what} request to {where} (model {self.model!r}) failed after {attempts} attempt(s): "
                f"{type(exc).__name__}: {exc}; {_hint(exc, self.base_url)}"
            ) from exc

    def close(self) -> None:
        self.client.close()


class ChatClient:
    """Synchronous chat completions with retries, timeouts and token accounting.

    Args mirror :class:`Endpoint`; ``meter`` receives one record per successful request (a private meter is
    made when None). Thread-safe: the async wrapper calls it from worker threads.
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None, *, timeout: float = 60.0,
                 max_attempts: int = 5, meter: UsageMeter | None = None, uds: str | None = None,
                 backoff_base: float = 0.5):
        self.model = model
        self.meter = meter if meter is not None else UsageMeter()
        self.endpoint = Endpoint(base_url, model, api_key, timeout=timeout, max_attempts=max_attempts,
                                 backoff_base=backoff_base, uds=uds)
        self._json_format_supported = True

    @property
    def base_url(self) -> str:
        return self.endpoint.base_url

    def chat(self, messages: list[dict], *, json_mode: bool = False, max_tokens: int = 512,
             temperature: float = 0.0) -> str:
        """Return the assistant's reply to ``messages`` (OpenAI chat format).

        With ``json_mode`` the request asks for ``response_format={"type": "json_object"}``; a server that
        rejects that parameter (400/422) is asked once more without it, with an instruction to answer in JSON,
        and is not sent the parameter again.
        Raises ModelError when the endpoint fails after its retries or rejects the request.
        """
        create = self.endpoint.client.chat.completions.create
        kwargs: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": max_tokens,
                                  "temperature": temperature}

        def request() -> Any:
            if not json_mode:
                return create(**kwargs)
            if self._json_format_supported:
                try:
                    return create(**kwargs, response_format={"type": "json_object"})
                except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
                    log.warning("%s rejected response_format (%s); asking once more without it",
                                self.base_url, exc)
                    reply = create(**{**kwargs, "messages": _with_json_hint(messages)})
                    self._json_format_supported = False
                    return reply
            return create(**{**kwargs, "messages": _with_json_hint(messages)})

        response = self.endpoint.call("chat", request)
        if not response.choices:
            raise ModelError(f"chat reply from {self.base_url} (model {self.model!r}) has no choices")
        text = response.choices[0].message.content or ""
        usage = response.usage
        if usage is not None:
            prompt_tokens, completion_tokens = usage.prompt_tokens or 0, usage.completion_tokens or 0
        else:
            prompt_tokens = sum(estimate_tokens(str(m.get("content") or "")) for m in messages)
            completion_tokens = estimate_tokens(text)
        self.meter.record(self.model, prompt_tokens, completion_tokens, kind="chat")
        return text

    def close(self) -> None:
        self.endpoint.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _with_json_hint(messages: list[dict]) -> list[dict]:
    """``messages`` with an instruction to reply in JSON, added to the first system message (or as one)."""
    if messages and messages[0].get("role") == "system":
        first = dict(messages[0])
        first["content"] = f"{first.get('content') or ''}\n\n{_JSON_HINT}".strip()
        return [first, *messages[1:]]
    return [{"role": "system", "content": _JSON_HINT}, *messages]


class AsyncLLM:
    """The ``harness.design.LLM`` protocol over a :class:`ChatClient` (each call runs in a worker thread)."""

    def __init__(self, client: ChatClient):
        self._client = client

    async def _resolve(self) -> ChatClient:
        """The client to use; subclasses may create it on first use."""
        return self._client

    async def complete(self, prompt: str, *, system: str | None = None, json_mode: bool = False,
                       max_tokens: int = 512, temperature: float = 0.0) -> str:
        """Return the model's reply to ``prompt``. With ``json_mode`` the reply is a JSON object (as text)."""
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": prompt})
        client = await self._resolve()
        return await asyncio.to_thread(client.chat, messages, json_mode=json_mode, max_tokens=max_tokens,
                                       temperature=temperature)
