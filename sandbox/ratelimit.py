"""Per-model request and token rate limits for the broker's upstream, as remote APIs enforce them.

A :class:`RateLimiter` paces the requests sent to each upstream model (the key) so that neither
``requests_per_minute`` nor ``tokens_per_minute`` (None: unlimited) is passed. Each limit is a debt that drains
continuously at limit/60 per second: a request is sent once the debt that the requests before it left has
drained, and then adds its own (one request; its tokens). So requests are spread evenly (with
``requests_per_minute=120``: one every 0.5 s) rather than sent in a burst at the top of a minute, which also
satisfies providers that enforce a per-minute limit over shorter periods. Over any minute at most the limit
plus one request's share is sent.

Tokens are charged before sending with the request's reserved maximum cost (the broker's budget reservation:
the prompt bound plus max_tokens, which is also what OpenAI counts against a TPM limit), and corrected to the
usage the reply reports by :meth:`RateLimiter.settle` (a request that failed, or a reply with no usage, keeps
its reservation: the upstream may have counted it). A refund wakes the requests waiting on that model.

A request waits (blocks) until it fits; it never fails. A request that costs more than the whole
per-minute token limit cannot fit in any minute: it is admitted alone, once every earlier request's debt has
drained, and the debt it leaves (more than a minute's worth) holds the requests after it back until it has
drained too. There is no deadlock whatever the sizes, and waiting requests are admitted by the same rule, so a
large request is not starved by small ones.

``clock`` and ``sleep`` are injectable for tests (``sleep`` replaces the condition wait; it is called with the
limiter's lock released).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

#: a debt below this many seconds counts as drained (float rounding)
EPSILON_S = 1e-9


@dataclass(frozen=True)
class Permit:
    """One admitted request: what it was charged and how long it waited to be admitted."""

    key: str
    tokens: int
    waited_s: float
    at: float = 0.0
    """When it was admitted (the limiter's clock)."""
    ahead: float = 0.0
    """The token debt in front of it when it was admitted (its charge drains after that)."""


class _Lane:
    """One key's debts (requests, tokens), as of ``stamp``."""

    def __init__(self, now: float):
        self.requests = 0.0
        self.tokens = 0.0
        self.stamp = now

    def drain(self, now: float, requests_per_s: float | None, tokens_per_s: float | None) -> None:
        elapsed = max(0.0, now - self.stamp)
        if requests_per_s:
            self.requests = max(0.0, self.requests - elapsed * requests_per_s)
        if tokens_per_s:
            self.tokens = max(0.0, self.tokens - elapsed * tokens_per_s)
        self.stamp = max(self.stamp, now)


class RateLimiter:
    """Thread-safe request and token pacing per key (the upstream model's name); see the module docstring."""

    def __init__(self, requests_per_minute: int | None = None, tokens_per_minute: int | None = None, *,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] | None = None):
        for name, value in (("requests_per_minute", requests_per_minute), ("tokens_per_minute", tokens_per_minute)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be an integer >= 1 or None (unlimited), got {value!r}")
        self.requests_per_minute, self.tokens_per_minute = requests_per_minute, tokens_per_minute
        self._requests_per_s = requests_per_minute / 60.0 if requests_per_minute else None
        self._tokens_per_s = tokens_per_minute / 60.0 if tokens_per_minute else None
        self._clock, self._sleep = clock, sleep
        self._cond = threading.Condition()
        self._lanes: dict[str, _Lane] = {}

    @property
    def enabled(self) -> bool:
        return bool(self.requests_per_minute or self.tokens_per_minute)

    def _lane(self, key: str, now: float) -> _Lane:
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane(now)
        lane.drain(now, self._requests_per_s, self._tokens_per_s)
        return lane

    def _delay(self, lane: _Lane) -> float:
        waits = [0.0]
        if self._requests_per_s:
            waits.append(lane.requests / self._requests_per_s)
        if self._tokens_per_s:
            waits.append(lane.tokens / self._tokens_per_s)
        return max(waits)

    def delay(self, key: str) -> float:
        """Seconds a request for ``key`` would wait if it arrived now (nothing is charged)."""
        with self._cond:
            return self._delay(self._lane(key, self._clock()))

    def acquire(self, key: str, tokens: int = 0) -> Permit:
        """Block until a request for ``key`` reserving ``tokens`` may be sent, charge it and return its permit."""
        tokens = max(0, int(tokens))
        if not self.enabled:
            return Permit(key, tokens, 0.0)
        start, paused = self._clock(), False
        with self._cond:
            while True:
                now = self._clock()
                lane = self._lane(key, now)
                wait = self._delay(lane)
                if wait <= EPSILON_S:
                    ahead = lane.tokens
                    if self._requests_per_s:
                        lane.requests += 1.0
                    if self._tokens_per_s:
                        lane.tokens += tokens
                    return Permit(key, tokens, max(0.0, now - start) if paused else 0.0, now, ahead)
                self._pause(wait)
                paused = True

    def _pause(self, seconds: float) -> None:
        """Wait ``seconds`` or until a refund (called with the lock held; returns with it held)."""
        if self._sleep is None:
            self._cond.wait(seconds)
            return
        self._cond.release()
        try:
            self._sleep(seconds)
        finally:
            self._cond.acquire()

    def settle(self, permit: Permit, used_tokens: int | None) -> None:
        """Correct the permit's token charge to ``used_tokens`` (None: keep the reservation).

        Tokens used beyond the reservation are added to the debt. Unused ones are given back, but only the part
        of the charge that has not drained yet (the debt drains in order of admission): a refund never makes
        room for a burst."""
        if used_tokens is None or not self._tokens_per_s:
            return
        used = max(0, int(used_tokens))
        if used == permit.tokens:
            return
        with self._cond:
            now = self._clock()
            lane = self._lane(permit.key, now)
            if used > permit.tokens:
                lane.tokens += used - permit.tokens
            else:
                drained = max(0.0, (now - permit.at) * self._tokens_per_s - permit.ahead)
                undrained = max(0.0, permit.tokens - drained)
                lane.tokens = max(0.0, lane.tokens - min(permit.tokens - used, undrained))
            self._cond.notify_all()

    def describe(self) -> str:
        """The limits, for messages: ``requests_per_minute=120, tokens_per_minute=unlimited``."""
        return (f"requests_per_minute={self.requests_per_minute or 'unlimited'}, "
                f"tokens_per_minute={self.tokens_per_minute or 'unlimited'}")
