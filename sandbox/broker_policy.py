"""Turning a job's request into the body the broker sends upstream, or a refusal.

The rules are stated in :mod:`sandbox.broker`'s docstring (the reference); this module implements them.
:func:`sanitise` never copies a field it does not know: it builds a new upstream body from an allow-list and
the broker's configuration, and returns it with an upper bound on what the request can cost in tokens (what
the broker reserves from the job's budget before forwarding). A request that breaks a rule raises
:class:`Refused`, whose message names the field and the value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

MAX_MESSAGES = 64
MAX_PROMPT_CHARS = 200_000
"""Total characters of message content in one chat request."""
MAX_STOP = 4
MAX_STOP_CHARS = 200
MAX_EMBED_INPUTS = 256
MAX_EMBED_CHARS = 8_000
"""Characters of one embedding input."""
ROLES = ("system", "user", "assistant")
RESPONSE_FORMATS = ({"type": "json_object"}, {"type": "text"})

# The prompt bound: a token covers at least one UTF-8 byte in byte-level BPE and SentencePiece (byte fallback)
# tokenizers alike, so the byte count bounds the content's tokens; the chat template adds a few tokens per
# message and a default system prompt per request, an embedding model a couple of special tokens per input.
TOKENS_PER_MESSAGE = 8
TOKENS_PER_REQUEST = 64
TOKENS_PER_INPUT = 4

CHAT_FIELDS = frozenset({"model", "messages", "n", "max_tokens", "max_completion_tokens", "temperature", "top_p",
                         "stop", "seed", "response_format", "stream"})
EMBED_FIELDS = frozenset({"model", "input", "encoding_format"})


class Refused(ValueError):
    """The request breaks a rule; the message names the field and the value."""


@dataclass(frozen=True)
class Policy:
    """What the broker's configuration decides for every request."""

    chat_model: str | None
    """The only chat model served; None: chat requests are refused."""
    embed_model: str | None
    """The embedding model every embedding request is sent with; None: embedding requests are refused."""
    max_completion_tokens: int = 1024
    """Cap on a chat request's max_tokens (larger values are clamped; absent means the cap)."""


@dataclass
class Admitted:
    """A request that passed: the upstream body and the most it can cost."""

    body: dict[str, Any]
    prompt_tokens: int
    """Upper bound on the prompt (input) tokens."""
    completion_tokens: int = 0
    """Upper bound on the completion tokens: the max_tokens sent upstream (0 for embeddings)."""
    clamped: dict[str, str] = field(default_factory=dict)
    """Field -> what was clamped, for the session's events."""

    @property
    def cost(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def sanitise(endpoint: str, body: dict[str, Any], policy: Policy) -> Admitted:
    """The upstream body for ``body`` sent to ``endpoint`` (``/chat/completions`` or ``/embeddings``)."""
    if endpoint == "/chat/completions":
        return _chat(body, policy)
    if endpoint == "/embeddings":
        return _embeddings(body, policy)
    raise Refused(f"no route {_show(endpoint)}")


def _show(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _unknown(body: dict[str, Any], allowed: frozenset[str]) -> None:
    extra = sorted(str(k) for k, v in body.items() if k not in allowed and v is not None)
    if extra:
        raise Refused(f"field {_show(extra[0])} is not allowed (allowed: {', '.join(sorted(allowed))})")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(body: dict[str, Any], name: str, low: float, high: float, *, low_open: bool = False) -> Any:
    value = body.get(name)
    if value is None:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value > high or value < low or (low_open and value == low):
        bounds = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise Refused(f"{name}={_show(value)} is not a number in {bounds}")
    return value


def _utf8(text: str, where: str) -> int:
    """The UTF-8 length of ``text``; refuses lone surrogates (JSON allows them, UTF-8 and the cassette do not)."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise Refused(f"{where} is not valid Unicode (it holds a lone surrogate)") from None


def _messages(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise Refused(f"messages={_show(value)} is not a non-empty list")
    if len(value) > MAX_MESSAGES:
        raise Refused(f"messages has {len(value)} entries (at most {MAX_MESSAGES})")
    out, chars = [], 0
    for i, m in enumerate(value):
        if not isinstance(m, dict) or set(m) != {"role", "content"}:
            raise Refused(f"messages[{i}]={_show(m)} is not an object with exactly 'role' and 'content'")
        if m["role"] not in ROLES:
            raise Refused(f"messages[{i}].role={_show(m['role'])} is not one of {', '.join(ROLES)}")
        if not isinstance(m["content"], str):
            raise Refused(f"messages[{i}].content={_show(m['content'])} is not a string")
        chars += len(m["content"])
        _utf8(m["content"], f"messages[{i}].content")
        out.append({"role": m["role"], "content": m["content"]})
    if chars > MAX_PROMPT_CHARS:
        raise Refused(f"messages hold {chars} characters (at most {MAX_PROMPT_CHARS})")
    return out


def _max_tokens(body: dict[str, Any], cap: int, clamped: dict[str, str]) -> int:
    names = [n for n in ("max_tokens", "max_completion_tokens") if body.get(n) is not None]
    if len(names) == 2:
        raise Refused("max_tokens and max_completion_tokens are both given (give one)")
    if not names:
        return cap
    name, value = names[0], body[names[0]]
    if not _is_int(value) or value < 1:
        raise Refused(f"{name}={_show(value)} is not an integer >= 1")
    if value > cap:
        clamped[name] = f"{name}={value} clamped to {cap}"
        return cap
    return value


def _stop(value: Any) -> Any:
    items = [value] if isinstance(value, str) else value
    ok = isinstance(items, list) and len(items) <= MAX_STOP and all(
        isinstance(s, str) and len(s) <= MAX_STOP_CHARS for s in items)
    if not ok:
        raise Refused(f"stop={_show(value)} is not a string or a list of at most {MAX_STOP} strings "
                      f"(each at most {MAX_STOP_CHARS} characters)")
    for s in items:
        _utf8(s, "stop")
    return value if isinstance(value, str) else list(items)


def _chat(body: dict[str, Any], policy: Policy) -> Admitted:
    _unknown(body, CHAT_FIELDS)
    stream = body.get("stream")
    if stream not in (None, False):
        raise Refused(f"stream={_show(stream)}: streaming is not supported through the sandbox broker")
    model = body.get("model")
    if policy.chat_model is None:
        raise Refused("this broker has no chat model configured")
    if model is not None and model != policy.chat_model:
        raise Refused(f"model={_show(model)} is not the configured chat model {policy.chat_model!r}")
    n = body.get("n")
    if n is not None and not (_is_int(n) and n == 1):
        raise Refused(f"n={_show(n)}: only one choice per request (n=1) is allowed")
    messages = _messages(body.get("messages"))
    clamped: dict[str, str] = {}
    out: dict[str, Any] = {"model": policy.chat_model, "messages": messages,
                           "max_tokens": _max_tokens(body, policy.max_completion_tokens, clamped)}
    temperature = _number(body, "temperature", 0.0, 2.0)
    if temperature is not None:
        out["temperature"] = temperature
    top_p = _number(body, "top_p", 0.0, 1.0, low_open=True)
    if top_p is not None:
        out["top_p"] = top_p
    if body.get("stop") is not None:
        out["stop"] = _stop(body["stop"])
    seed = body.get("seed")
    if seed is not None:
        if not _is_int(seed) or not -(2**63) <= seed < 2**63:
            raise Refused(f"seed={_show(seed)} is not a 64-bit integer")
        out["seed"] = seed
    response_format = body.get("response_format")
    if response_format is not None:
        if response_format not in RESPONSE_FORMATS:
            raise Refused(f"response_format={_show(response_format)} is not {{'type': 'json_object'}} or "
                          f"{{'type': 'text'}}")
        out["response_format"] = {"type": response_format["type"]}
    prompt = TOKENS_PER_REQUEST + sum(TOKENS_PER_MESSAGE + _utf8(m["content"], "content") for m in messages)
    return Admitted(out, prompt, out["max_tokens"], clamped)


def _embeddings(body: dict[str, Any], policy: Policy) -> Admitted:
    if body.get("dimensions") is not None:
        raise Refused(f"dimensions={_show(body['dimensions'])} is not allowed (the configured model's own size "
                      "is served)")
    _unknown({k: v for k, v in body.items() if k != "dimensions"}, EMBED_FIELDS)
    if policy.embed_model is None:
        raise Refused("this broker has no embedding model configured")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise Refused(f"model={_show(model)} is not a string")
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise Refused(f"input={_show(raw)} is not a string or a non-empty list of strings")
    if len(texts) > MAX_EMBED_INPUTS:
        raise Refused(f"input has {len(texts)} entries (at most {MAX_EMBED_INPUTS})")
    longest = max(len(t) for t in texts)
    if longest > MAX_EMBED_CHARS:
        raise Refused(f"an input holds {longest} characters (at most {MAX_EMBED_CHARS})")
    tokens = sum(TOKENS_PER_INPUT + _utf8(t, "input") for t in texts)
    out: dict[str, Any] = {"model": policy.embed_model, "input": raw if isinstance(raw, str) else list(texts)}
    encoding = body.get("encoding_format")
    if encoding is not None:
        if encoding != "float":
            raise Refused(f"encoding_format={_show(encoding)} is not 'float'")
        out["encoding_format"] = "float"
    return Admitted(out, tokens)
