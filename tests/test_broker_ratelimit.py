"""Per-model rate limits of the broker (sandbox.ratelimit): pacing and token accounting on an injected clock,
then through a real Broker and the harness's clients against the local OpenAI-compatible test server (the only
test double). Timed checks are short and use generous tolerances: the box is shared."""

from __future__ import annotations

import threading
import time

import pytest

from engine.config import EvolveConfig, ModelConfig
from engine.models import task_broker_config
from harness.models.chat import ChatClient
from harness.models.embed import RemoteEmbedder
from sandbox.broker import Broker, BrokerConfig
from sandbox.errors import BrokerError
from sandbox.ratelimit import RateLimiter
from sandbox.run import broker_config, build_parser


class FakeClock:
    """A clock that only moves when the limiter sleeps (or the test says so)."""

    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def limiter(clock: FakeClock, **limits) -> RateLimiter:
    return RateLimiter(**limits, clock=clock, sleep=clock.sleep)


def make_broker(server, **overrides) -> Broker:
    config = {"chat_base_url": server.base_url, "local_embedder": "hashing", "backoff_base": 0.01,
              "max_attempts": 2, "local_chat_model": None, "chat_model": "test-model", **overrides}
    return Broker(BrokerConfig(**config))


def chat(session, content: str = "hi", **kw) -> str:
    client = ChatClient("http://alma-broker/v1", "test-model", uds=str(session.socket_path), max_attempts=1)
    return client.chat([{"role": "user", "content": content}], **kw)


# ----------------------------------------------------------------------------------------- the limiter alone
def test_requests_per_minute_spreads_requests_evenly():
    clock = FakeClock()
    rl = limiter(clock, requests_per_minute=120)
    admitted = []
    for _ in range(5):
        permit = rl.acquire("m")
        admitted.append((clock.now, permit.waited_s))
    assert [t for t, _ in admitted] == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])
    assert [w for _, w in admitted] == pytest.approx([0.0, 0.5, 0.5, 0.5, 0.5])
    clock.now += 10  # idle: no credit builds up, the next request goes at once and the one after waits again
    assert rl.acquire("m").waited_s == 0.0
    assert rl.delay("m") == pytest.approx(0.5)


def test_limits_are_per_model():
    clock = FakeClock()
    rl = limiter(clock, requests_per_minute=60, tokens_per_minute=600)
    rl.acquire("a", 100)
    assert rl.delay("a") == pytest.approx(10.0)  # 100 tokens at 10 per second
    assert rl.delay("b") == 0.0
    assert rl.acquire("b", 5).waited_s == 0.0 and clock.sleeps == []


def test_tokens_are_charged_the_reservation_then_corrected_to_the_usage():
    clock = FakeClock()
    rl = limiter(clock, tokens_per_minute=600)  # 10 tokens per second
    permit = rl.acquire("m", 100)
    assert rl.delay("m") == pytest.approx(10.0)
    clock.now = 1.0
    rl.settle(permit, 30)  # 70 unused tokens given back
    assert rl.delay("m") == pytest.approx(2.0)  # 100 - 10 drained - 70 refunded = 20 tokens
    more = rl.acquire("m", 10)  # waits out the 20, then charges 10
    assert clock.now == pytest.approx(3.0) and more.waited_s == pytest.approx(2.0)
    rl.settle(more, 25)  # used more than reserved: the extra is charged
    assert rl.delay("m") == pytest.approx(2.5)
    rl.settle(rl.acquire("m", 40), None)  # no usage reported (or the request failed): the reservation stays
    assert rl.delay("m") == pytest.approx(4.0)


def test_a_refund_never_makes_room_for_a_burst():
    clock = FakeClock()
    rl = limiter(clock, tokens_per_minute=600)
    first = rl.acquire("m", 100)
    clock.now = 10.0  # the first request's charge has drained completely
    rl.acquire("m", 100)
    rl.settle(first, 0)  # nothing of the first charge is left to give back
    assert rl.delay("m") == pytest.approx(10.0)


def test_a_request_bigger_than_the_minute_is_admitted_alone():
    clock = FakeClock()
    rl = limiter(clock, tokens_per_minute=60)  # 1 token per second
    assert rl.acquire("m", 5).waited_s == 0.0
    big = rl.acquire("m", 1000)  # larger than the whole minute: waits for the 5 before it, then goes
    assert big.waited_s == pytest.approx(5.0)
    after = rl.acquire("m", 1)  # held back until the big one's debt has drained
    assert after.waited_s == pytest.approx(1000.0) and clock.now == pytest.approx(1005.0)


def test_unlimited_and_invalid_limits():
    rl = RateLimiter()
    assert not rl.enabled and rl.acquire("m", 10**9).waited_s == 0.0 and rl.delay("m") == 0.0
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="requests_per_minute must be an integer >= 1"):
            RateLimiter(requests_per_minute=bad)
        with pytest.raises(ValueError, match="tokens_per_minute must be an integer >= 1"):
            RateLimiter(tokens_per_minute=bad)
    with pytest.raises(BrokerError, match="tokens_per_minute must be an integer >= 1"):
        Broker(BrokerConfig(local_chat_model=None, tokens_per_minute=0))


def test_a_refund_wakes_a_waiting_request():
    """Real threads and clock: a request waiting ~30 s on the token limit goes once the first reply's refund
    arrives (generous bound: well under the 30 s it would otherwise wait)."""
    rl = RateLimiter(tokens_per_minute=6000)  # 100 tokens per second
    first = rl.acquire("m", 3000)
    waited: list[float] = []
    waiter = threading.Thread(target=lambda: waited.append(rl.acquire("m", 10).waited_s))
    waiter.start()
    time.sleep(0.2)
    assert waiter.is_alive()  # still waiting
    rl.settle(first, 5)
    waiter.join(timeout=15)
    assert not waiter.is_alive() and 0.1 < waited[0] < 10


# ------------------------------------------------------------------------------------------- through a broker
def test_rpm_spreads_upstream_arrivals_across_sessions(openai_server):
    """5 jobs asking at once with requests_per_minute=120 reach the upstream about 0.5 s apart."""
    with make_broker(openai_server, requests_per_minute=120, max_concurrency=5) as broker:
        sessions = [broker.open_session(f"r{i}") for i in range(5)]
        threads = [threading.Thread(target=chat, args=(s,)) for s in sessions]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        arrivals = openai_server.arrivals()
        assert len(arrivals) == 5
        gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
        assert min(gaps) > 0.3, gaps  # the limiter admits them 0.5 s apart; the HTTP hop adds jitter
        waits = sorted(s.usage()["rate_wait_ms"] for s in sessions)
        assert waits[0] < 300 and sum(waits) > 3500, waits  # 0 + 0.5 + 1 + 1.5 + 2 s in all
        for s in sessions:
            limited = [e for e in s.events if e["event"] == "rate_limited"]
            assert len(limited) == (1 if s.usage()["rate_wait_ms"] else 0)
            assert all("requests_per_minute=120" in e["detail"] and e["kind"] == "broker" for e in limited)


def test_tpm_charges_the_reservation_and_keeps_the_actual_usage(openai_server):
    """A reply reporting 4 tokens leaves ~4 tokens of debt, not the ~1,070 reserved (prompt bound + max_tokens);
    a request the upstream rejected keeps its reservation."""
    with make_broker(openai_server, tokens_per_minute=6000) as broker:  # 100 tokens per second
        session = broker.open_session("t1")
        assert chat(session, "one", max_tokens=1000) == "reply to: one"
        assert broker.limiter.delay("test-model") < 2.0  # ~0.04 s; the reservation alone would be ~10.7 s
        assert session.usage()["prompt_tokens"] == 1 and session.usage()["completion_tokens"] == 3
        openai_server.fail_next(1, 400)
        with pytest.raises(Exception, match="400"):
            chat(session, "two", max_tokens=1000)
        assert broker.limiter.delay("test-model") > 5.0


def test_the_hosts_own_embedder_is_not_rate_limited(openai_server):
    with make_broker(openai_server, requests_per_minute=1) as broker:
        session = broker.open_session("e1")
        embedder = RemoteEmbedder("http://alma-broker/v1", "hashing", uds=str(session.socket_path))
        for _ in range(3):
            embedder.embed_sync(["a cat"])
        assert session.usage()["embed_requests"] == 3 and session.usage()["rate_wait_ms"] == 0


def test_the_limits_come_from_the_cli_and_the_task_role():
    args = build_parser().parse_args(["--design", "seeds/no_memory.py", "--requests-per-minute", "500",
                                      "--tokens-per-minute", "200000"])
    config = broker_config(args)
    assert (config.requests_per_minute, config.tokens_per_minute) == (500, 200_000)
    default = broker_config(build_parser().parse_args(["--design", "seeds/no_memory.py"]))
    assert (default.requests_per_minute, default.tokens_per_minute) == (None, None)
    role = ModelConfig(base_url="http://127.0.0.1:1/v1", model="m", requests_per_minute=60, tokens_per_minute=9000)
    config = task_broker_config(EvolveConfig(task=role), cassette_dir=None)
    assert (config.requests_per_minute, config.tokens_per_minute) == (60, 9000)
    with pytest.raises(ValueError, match="requests_per_minute"):
        ModelConfig(requests_per_minute=0)
