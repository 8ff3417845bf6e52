"""Model clients against the local OpenAI-compatible test server, driven by the real ``openai`` client."""

from __future__ import annotations

import asyncio
import math
import os
import socketserver
import tempfile
import threading
import time

import pytest

from harness.design import LLM, Embedder
from harness.errors import ModelError
from harness.models.chat import AsyncLLM, ChatClient
from harness.models.embed import HashingEmbedder, MiniLMEmbedder, RemoteEmbedder
from harness.models.factory import Models, ModelSettings, open_models
from harness.models.usage import UsageMeter
from tests.openai_server import OpenAITestServer

FAST = {"backoff_base": 0.001, "timeout": 5.0}
USER = [{"role": "user", "content": "what is in the kitchen"}]


@pytest.fixture
def server():
    with OpenAITestServer() as srv:
        yield srv


def _norm(vec: list[float]) -> float:
    return math.sqrt(sum(v * v for v in vec))


def _cos(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_usage_meter_counts_per_model_and_is_thread_safe():
    meter = UsageMeter()

    def work():
        for _ in range(500):
            meter.record("a", 2, 3)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    meter.record("e", 7, 0, kind="embed")
    assert meter.snapshot() == {"a": {"requests": 2000, "prompt_tokens": 4000, "completion_tokens": 6000},
                                "e": {"requests": 1, "prompt_tokens": 7, "completion_tokens": 0}}
    assert meter.total_tokens() == 10007
    assert meter.by_kind()["embed"]["requests"] == 1


def test_chat_round_trip_and_token_accounting(server):
    meter = UsageMeter()
    client = ChatClient(server.base_url, "test-model", meter=meter, **FAST)
    reply = client.chat([{"role": "system", "content": "be brief"}, *USER], max_tokens=32, temperature=0.2)
    assert reply == "reply to: what is in the kitchen"
    body = server.chat_requests()[-1]
    assert body["model"] == "test-model" and body["max_tokens"] == 32 and body["temperature"] == 0.2
    assert "response_format" not in body
    # the test server counts words: prompt 2 + 5, completion 7
    assert meter.snapshot() == {"test-model": {"requests": 1, "prompt_tokens": 7, "completion_tokens": 7}}
    assert meter.total_tokens() == 14


@pytest.mark.parametrize("status", [429, 500, 503])
def test_retryable_status_is_retried_then_succeeds(server, status):
    client = ChatClient(server.base_url, "m", max_attempts=3, **FAST)
    server.fail_next(2, status)
    assert client.chat(USER).startswith("reply to:")
    assert len(server.chat_requests()) == 3
    assert client.meter.snapshot()["m"]["requests"] == 1


def test_exhausted_attempts_raise_model_error_naming_endpoint_and_model(server):
    client = ChatClient(server.base_url, "m", max_attempts=3, **FAST)
    server.fail_next(3, 429)
    with pytest.raises(ModelError) as info:
        client.chat(USER)
    message = str(info.value)
    assert server.base_url in message and "'m'" in message and "3 attempt" in message and "429" in message
    assert len(server.chat_requests()) == 3
    assert client.meter.snapshot() == {}


def test_client_error_is_not_retried(server):
    client = ChatClient(server.base_url, "m", max_attempts=5, **FAST)
    server.fail_next(1, 400)
    with pytest.raises(ModelError, match="1 attempt"):
        client.chat(USER)
    assert len(server.chat_requests()) == 1
    server.fail_next(1, 401)
    with pytest.raises(ModelError, match="API key"):
        client.chat(USER)
    assert len(server.chat_requests()) == 2


def test_timeout_is_retried(server):
    calls = []

    def slow_once(request):
        calls.append(1)
        if len(calls) == 1:
            time.sleep(1.0)
        return "late but fine"

    server.script_chat(slow_once)
    client = ChatClient(server.base_url, "m", max_attempts=2, backoff_base=0.001, timeout=0.3)
    assert client.chat(USER) == "late but fine"
    assert len(calls) == 2


def test_unreachable_endpoint_raises_model_error():
    client = ChatClient("http://127.0.0.1:9/v1", "m", max_attempts=2, **FAST)
    with pytest.raises(ModelError, match="check that a server is running"):
        client.chat(USER)


def test_json_mode_sends_response_format(server):
    client = ChatClient(server.base_url, "m", **FAST)
    reply = client.chat(USER, json_mode=True)
    assert reply.startswith("{") and "insight" in reply
    assert server.chat_requests()[-1]["response_format"] == {"type": "json_object"}


def test_json_mode_falls_back_once_when_response_format_is_rejected(server):
    client = ChatClient(server.base_url, "m", **FAST)
    server.fail_next(1, 400)
    assert client.chat(USER, json_mode=True) == "reply to: what is in the kitchen"
    first, second = server.chat_requests()
    assert "response_format" in first and "response_format" not in second
    assert second["messages"][0]["role"] == "system" and "JSON" in second["messages"][0]["content"]
    client.chat(USER, json_mode=True)  # not sent again to this server
    assert "response_format" not in server.chat_requests()[-1]


def test_async_llm_complete(server):
    llm = AsyncLLM(ChatClient(server.base_url, "m", **FAST))
    assert isinstance(llm, LLM)

    async def both():
        return await asyncio.gather(llm.complete("first question", system="you help"),
                                    llm.complete("second", json_mode=True, max_tokens=16))

    plain, as_json = asyncio.run(both())
    assert plain == "reply to: first question" and as_json.startswith("{")
    bodies = sorted(server.chat_requests(), key=lambda b: b["max_tokens"])
    assert bodies[0]["max_tokens"] == 16 and bodies[0]["response_format"] == {"type": "json_object"}
    assert bodies[1]["messages"] == [{"role": "system", "content": "you help"},
                                     {"role": "user", "content": "first question"}]


def test_remote_embedder_returns_unit_vectors_and_records_usage(server):
    meter = UsageMeter()
    embedder = RemoteEmbedder(server.base_url, "embed-model", meter=meter, batch_size=2, **FAST)
    assert isinstance(embedder, Embedder)
    texts = ["open the fridge", "take the apple", "", "go north"]
    vectors = asyncio.run(embedder.embed(texts))
    assert len(vectors) == 4 and all(abs(_norm(v) - 1.0) < 1e-6 for v in vectors)
    assert vectors == embedder.embed_sync(texts)
    embed_bodies = [r["body"] for r in server.requests if r["path"].endswith("/embeddings")]
    assert [b["input"] for b in embed_bodies[:2]] == [texts[:2], [" ", "go north"]]
    assert meter.snapshot()["embed-model"]["requests"] == 4
    assert meter.snapshot()["embed-model"]["prompt_tokens"] == 2 * (3 + 3 + 0 + 2)
    assert meter.by_kind()["embed"]["requests"] == 4


def test_remote_embedder_shares_the_retry_policy(server):
    embedder = RemoteEmbedder(server.base_url, "e", max_attempts=2, **FAST)
    server.fail_next(1, 502)
    assert len(embedder.embed_sync(["a"])) == 1
    server.fail_next(2, 429)
    with pytest.raises(ModelError, match="embedding request"):
        embedder.embed_sync(["a"])


def test_hashing_embedder_is_deterministic_and_unit_length():
    emb = HashingEmbedder(dim=128)
    texts = ["Go to the kitchen and open the fridge", "open the fridge in the kitchen", "stocks fell", ""]
    first = asyncio.run(emb.embed(texts))
    assert first == HashingEmbedder(dim=128).embed_sync(texts)
    assert all(len(v) == 128 and abs(_norm(v) - 1.0) < 1e-9 for v in first)
    assert _cos(first[0], first[1]) > _cos(first[0], first[2])
    assert isinstance(emb, Embedder)


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def test_uds_transport_talks_http_over_a_unix_socket(server):
    # The test server's own request handler, listening on a Unix socket instead of TCP.
    handler = server._httpd.RequestHandlerClass
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "broker.sock")
        uds_server = _UnixHTTPServer(path, handler)
        thread = threading.Thread(target=uds_server.serve_forever, kwargs={"poll_interval": 0.05},
                                  daemon=True)
        thread.start()
        try:
            unreachable = "http://broker.invalid/v1"  # only sent as Host; no TCP connection is made
            client = ChatClient(unreachable, "m", uds=path, **FAST)
            assert client.chat(USER) == "reply to: what is in the kitchen"
            embedder = RemoteEmbedder(unreachable, "e", uds=path, **FAST)
            assert len(embedder.embed_sync(["x y"])) == 1
        finally:
            uds_server.shutdown()
            uds_server.server_close()
    assert len(server.chat_requests()) == 1


def test_models_factory_is_lazy_and_uses_settings(server, monkeypatch):
    monkeypatch.setenv("ALMA_TEST_KEY", "sk-test")
    settings = ModelSettings(chat_base_url=server.base_url, chat_model="m", embedder="remote",
                             api_key_env="ALMA_TEST_KEY", max_attempts=2)
    with open_models(settings) as models:
        assert models._chat is None  # nothing built until used
        assert asyncio.run(models.llm.complete("hello")) == "reply to: hello"
        assert models.chat is models.chat and models.chat.endpoint.client.api_key == "sk-test"
        assert len(asyncio.run(models.embedder.embed(["a b"]))[0]) == 64
        assert set(models.meter.snapshot()) == {"m", "text-embedding-3-small"}
    assert models.server is None


def test_models_factory_offline_defaults_start_nothing():
    models = Models(ModelSettings(embedder="hashing"))
    assert isinstance(models.embedder, HashingEmbedder) and models.server is None and models._chat is None
    assert isinstance(Models(ModelSettings()).embedder, MiniLMEmbedder)
    with pytest.raises(ModelError, match="embed_base_url"):
        Models(ModelSettings(embedder="remote"))
    models.close()


@pytest.mark.slow
def test_minilm_embedder_gives_384d_unit_vectors_and_sensible_similarity():
    meter = UsageMeter()
    emb = MiniLMEmbedder(threads=1, meter=meter)
    texts = ["Put the apple in the fridge.", "Place an apple inside the refrigerator.",
             "The stock market fell sharply today."]
    vectors = asyncio.run(emb.embed(texts))
    assert all(len(v) == 384 and abs(_norm(v) - 1.0) < 1e-4 for v in vectors)
    assert _cos(vectors[0], vectors[1]) > _cos(vectors[0], vectors[2]) + 0.3
    assert emb.embed_sync([texts[1], texts[1]]) == [vectors[1], vectors[1]]  # served from the cache
    assert meter.snapshot()["all-MiniLM-L6-v2"]["requests"] == 1
