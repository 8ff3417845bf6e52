"""What the scorer accepts from the design's worker: every message is checked here before it is used.

The worker is untrusted (it runs the design's code), so each line it sends is parsed into one of three shapes
or refused as a :class:`ProtocolViolation`: a model request (``llm`` / ``embed``) while a call is in flight, or
the ``result`` of the call, carrying the request's nonce. Sizes are bounded; events are reduced to the fields
and kinds the audit knows, and their number is capped.
"""

from __future__ import annotations

import json
from typing import Any

#: event kinds the worker's audit hook may report (anything else is dropped and counted as tampering)
EVENT_KINDS = frozenset({"import", "subprocess", "fork", "network", "ctypes", "signal", "tamper", "file_write",
                         "file_read", "design_error"})
MAX_EVENTS_PER_REPLY = 100
MAX_PROMPT_CHARS = 200_000
MAX_EMBED_TEXTS = 256
MAX_EMBED_CHARS = 8_000
#: the largest ``retrieve`` value (JSON bytes) the scorer keeps; the agent reads at most 4,000 characters
MAX_VALUE_BYTES = 256 * 1024
MAX_ERROR_CHARS = 4_000


class ProtocolViolation(Exception):
    """The worker sent something the protocol does not allow (the design tampered with its channel)."""


def _str(value: Any, field: str, limit: int) -> str:
    if not isinstance(value, str):
        raise ProtocolViolation(f"{field} must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise ProtocolViolation(f"{field} is over {limit} characters")
    return value


def model_request(message: dict[str, Any]) -> dict[str, Any]:
    """A checked ``llm`` or ``embed`` request (only the known fields, with checked types)."""
    if message["type"] == "llm":
        system = message.get("system")
        max_tokens, temperature = message.get("max_tokens", 512), message.get("temperature", 0.0)
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or not 1 <= max_tokens <= 4096:
            raise ProtocolViolation("llm max_tokens must be an int in 1..4096")
        if not isinstance(temperature, (int, float)) or not 0.0 <= float(temperature) <= 2.0:
            raise ProtocolViolation("llm temperature must be a number in 0..2")
        return {"type": "llm", "prompt": _str(message.get("prompt"), "llm prompt", MAX_PROMPT_CHARS),
                "system": None if system is None else _str(system, "llm system", MAX_PROMPT_CHARS),
                "json_mode": bool(message.get("json_mode")), "max_tokens": max_tokens,
                "temperature": float(temperature)}
    texts = message.get("texts")
    if not isinstance(texts, list) or len(texts) > MAX_EMBED_TEXTS:
        raise ProtocolViolation(f"embed texts must be a list of at most {MAX_EMBED_TEXTS} strings")
    return {"type": "embed", "texts": [_str(t, "embed text", MAX_EMBED_CHARS) for t in texts]}


def events(raw: Any) -> list[dict[str, Any]]:
    """The audit events of a reply, reduced to known kinds and fields."""
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > MAX_EVENTS_PER_REPLY:
        raise ProtocolViolation("events must be a list of at most 100 objects")
    out = []
    for e in raw:
        if not isinstance(e, dict) or e.get("kind") not in EVENT_KINDS:
            raise ProtocolViolation(f"malformed audit event {str(e)[:100]!r}")
        out.append({"kind": e["kind"], "event": str(e.get("event", ""))[:100], "detail": str(e.get("detail", ""))[:300],
                    "refused": bool(e.get("refused", False))})
    return out


def parse(line_bytes: int, message: Any, nonce: str) -> tuple[str, dict[str, Any]]:
    """Classify one message from the worker: ("model", request) or ("result", reply)."""
    if not isinstance(message, dict):
        raise ProtocolViolation("a message must be a JSON object")
    kind = message.get("type")
    if kind in ("llm", "embed"):
        return "model", model_request(message)
    if kind != "result":
        raise ProtocolViolation(f"unknown message type {str(kind)[:40]!r}")
    if message.get("nonce") != nonce:
        raise ProtocolViolation("a result that answers no pending request (wrong nonce)")
    if line_bytes > MAX_VALUE_BYTES + 64 * 1024:
        raise ProtocolViolation(f"a result of {line_bytes} bytes (the limit is {MAX_VALUE_BYTES} for the value)")
    reply = {"ok": bool(message.get("ok")), "events": events(message.get("events"))}
    if reply["ok"]:
        reply["value"] = message.get("value")
    else:
        reply["error"] = str(message.get("error", "unknown error"))[:MAX_ERROR_CHARS]
        reply["stage"] = str(message.get("stage", ""))[:20]
    return "result", reply


def encoded_size(value: Any) -> int:
    return len(json.dumps(value, default=str))
