"""Silent model failures made loud: per model, how many chat replies were empty, truncated or refusals.

A broken endpoint rarely fails with an error: a wrong model name behind a proxy, a reasoning model that spends
its whole ``max_tokens`` before answering, or a safety filter all answer HTTP 200 with nothing usable, and an
evolution run then scores designs on noise. The broker (:mod:`sandbox.broker`) classifies every chat reply
it forwards upstream (replies served from the cassette are not counted: they were counted when recorded, and a
replay has no model to judge) into exactly one of:

``truncated``
  ``finish_reason == "length"``: the reply hit max_tokens (empty or not: the cut is what went wrong);
``empty``
  no choices, or no content / only whitespace;
``refused``
  the content starts with one of the refusal openings in ``sandbox/refusals.txt`` (case-insensitive);
``ok``
  anything else.

Apart from those kinds, a reply can be fine to the broker and still useless to the agent: the host adds, per
model, how many of the task agent's replies named no admissible action (:meth:`ModelHealth.add_parsing`, from the
episodes' ``unparsed`` counts), and the same threshold stops a run whose replies repeatedly fail to parse.

:class:`ModelHealth` keeps the counts (thread-safe); :meth:`ModelHealth.verdict` (and :func:`check`, what the
evolve loop calls after each evaluation) turns them into a message once enough replies are bad, e.g.
``model m: 14 of 20 replies were empty (70%) — check the endpoint / model name``.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

KINDS = ("ok", "empty", "truncated", "refused")
BAD_KINDS = KINDS[1:]
REFUSALS_FILE = Path(__file__).with_name("refusals.txt")
#: the session usage counters (:meth:`sandbox.broker.BrokerSession.usage`) that hold these counts
USAGE_KEYS = {kind: f"replies_{kind}" for kind in KINDS}

_WHAT = {"empty": "empty", "truncated": "truncated at max_tokens (finish_reason=length)",
         "refused": "refusals"}
_HINT = {"empty": "check the endpoint / model name",
         "truncated": "raise the role's max_tokens (the broker caps it at max_completion_tokens), or use a model "
                      "that answers before it runs out (a reasoning model may spend every token thinking)",
         "refused": "the model declines the task prompt: use another model or check its safety settings"}


@cache
def load_refusals(path: Path = REFUSALS_FILE) -> tuple[str, ...]:
    """The refusal openings in ``path`` (one per line; blank lines and ``#`` comments skipped), normalised."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise OSError(f"cannot read the refusal patterns {path}: {exc.strerror}") from exc
    return tuple(_normal(line) for line in lines if line.strip() and not line.lstrip().startswith("#"))


def _normal(text: str) -> str:
    return text.replace("\u2019", "'").replace("\u2018", "'").strip().strip("\"'`").strip().lower()


def _text(content: Any) -> str:
    """A message's content as text (a string, or a list of text parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    return ""


def classify(reply: Any, refusals: Iterable[str] | None = None) -> str:
    """The kind (one of :data:`KINDS`) of an OpenAI-compatible chat completion ``reply``."""
    choices = reply.get("choices") if isinstance(reply, dict) else None
    first = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    if first.get("finish_reason") == "length":
        return "truncated"
    message = first.get("message")
    text = _text(message.get("content")) if isinstance(message, dict) else ""
    if not text.strip():
        return "empty"
    opening = _normal(text)
    if any(opening.startswith(p) for p in (load_refusals() if refusals is None else refusals)):
        return "refused"
    return "ok"


class ModelHealth:
    """Per model, how many chat replies were ok, empty, truncated or refused."""

    def __init__(self, refusals: Iterable[str] | None = None):
        self.refusals = tuple(_normal(p) for p in refusals) if refusals is not None else load_refusals()
        self._counts: dict[str, Counter[str]] = {}
        self._parsing: dict[str, Counter[str]] = {}  # model -> {"actions": n, "unparsed": n}
        self._lock = threading.Lock()

    def record(self, model: str, reply: Any) -> str:
        """Classify ``reply`` from ``model``, count it, and return its kind."""
        kind = classify(reply, self.refusals)
        self.add(model, {kind: 1})
        return kind

    def add(self, model: str, counts: Mapping[str, int]) -> None:
        """Add counts by kind (e.g. another broker's) for ``model``; unknown kinds are refused."""
        unknown = set(counts) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown reply kinds {sorted(unknown)} (known: {', '.join(KINDS)})")
        with self._lock:
            mine = self._counts.setdefault(model, Counter({k: 0 for k in KINDS}))
            for kind, n in counts.items():
                mine[kind] += int(n)

    def add_usage(self, model: str, usage: Mapping[str, Any]) -> None:
        """Add the reply counts of a broker session's usage (``replies_*``; e.g. a report from a Ray worker)."""
        self.add(model, {k: int(usage.get(key) or 0) for k, key in USAGE_KEYS.items()})

    def add_parsing(self, model: str, actions: int, unparsed: int) -> None:
        """Add ``actions`` agent steps taken on ``model``'s replies, ``unparsed`` of which named no admissible
        action (``0 <= unparsed <= actions``)."""
        if not 0 <= unparsed <= actions:
            raise ValueError(f"need 0 <= unparsed <= actions, got unparsed={unparsed!r}, actions={actions!r}")
        with self._lock:
            mine = self._parsing.setdefault(model, Counter(actions=0, unparsed=0))
            mine["actions"] += int(actions)
            mine["unparsed"] += int(unparsed)

    def parsing(self) -> dict[str, dict[str, int]]:
        """Model -> {"actions", "unparsed"}: agent steps on the model's replies, and those that named no action."""
        with self._lock:
            return {m: dict(c) for m, c in self._parsing.items()}

    def counts(self) -> dict[str, dict[str, int]]:
        """Model -> kind -> replies."""
        with self._lock:
            return {m: {k: c[k] for k in KINDS} for m, c in self._counts.items()}

    def rates(self) -> dict[str, dict[str, float]]:
        """Model -> kind -> share of that model's replies (models with no reply are left out)."""
        out = {}
        for model, c in self.counts().items():
            total = sum(c.values())
            if total:
                out[model] = {k: c[k] / total for k in KINDS}
        return out

    def verdict(self, threshold: float = 0.5, min_requests: int = 10) -> str | None:
        """None while every model with at least ``min_requests`` replies has less than ``threshold`` of them
        bad (and, with as many agent steps, less than ``threshold`` unparsed); else one message per failing
        model (joined by ``"; "``): the kind past the threshold, or all bad kinds together when none is alone, or
        the unparsed share, with a hint of what to check."""
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
        if min_requests < 1:
            raise ValueError(f"min_requests must be >= 1, got {min_requests!r}")
        messages = []
        for model, c in sorted(self.counts().items()):
            total = sum(c.values())
            if total < min_requests:
                continue
            worst = max(BAD_KINDS, key=lambda k: c[k])
            bad = sum(c[k] for k in BAD_KINDS)
            if c[worst] / total >= threshold:
                messages.append(f"model {model}: {c[worst]} of {total} replies were {_WHAT[worst]} "
                                f"({c[worst] / total:.0%}) — {_HINT[worst]}")
            elif bad / total >= threshold:
                parts = ", ".join(f"{c[k]} {k}" for k in BAD_KINDS if c[k])
                messages.append(f"model {model}: {bad} of {total} replies were empty, truncated or refusals "
                                f"({bad / total:.0%}: {parts}) — check the endpoint / model name, max_tokens "
                                "and the prompt")
        for model, c in sorted(self.parsing().items()):
            if c["actions"] >= min_requests and c["unparsed"] / c["actions"] >= threshold:
                messages.append(f"model {model}: {c['unparsed']} of {c['actions']} replies named no admissible "
                                f"action ({c['unparsed'] / c['actions']:.0%}) — the reply format does not parse: "
                                "check the model and the agent's prompt")
        return "; ".join(messages) or None


def parsed_steps(episodes: Iterable[Any]) -> tuple[int, int] | None:
    """``(actions, unparsed)`` over an evaluation's episode records (each with ``steps`` and ``unparsed``; an
    episode's unparsed count is capped at its steps), or None when no episode took a step."""
    actions = unparsed = 0
    for episode in episodes:
        steps = max(0, int(episode.steps))
        actions += steps
        unparsed += min(steps, max(0, int(getattr(episode, "unparsed", 0) or 0)))
    return (actions, unparsed) if actions else None


def check(health: ModelHealth | None, threshold: float = 0.5, min_requests: int = 10) -> str | None:
    """What the evolve loop calls after each evaluation: None when the models look fine (or there is no
    ``health`` to judge), else the message to stop the run with (see :meth:`ModelHealth.verdict`)."""
    if health is None:
        return None
    broken = health.verdict(threshold, min_requests)
    return f"the model replies look broken: {broken}" if broken else None
