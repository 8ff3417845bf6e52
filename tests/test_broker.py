"""The host-side model broker, driven by the harness's real clients over its Unix socket; the upstream is the
local OpenAI-compatible test server (the only test double: the edge we do not own)."""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx2
import pytest

from harness.errors import ModelError
from harness.models.chat import ChatClient
from harness.models.embed import RemoteEmbedder
from sandbox.broker import Broker, BrokerConfig, Budget
from sandbox.cassette import Cassette, request_key

FAKE_KEY = "sk-alma-broker-fake-key-42"


def make_broker(**overrides) -> Broker:
    config = {"local_embedder": "hashing", "backoff_base": 0.01, "max_attempts": 4, "local_chat_model": None,
              **overrides}
    return Broker(BrokerConfig(**config))


def chat_client(session, **kw) -> ChatClient:
    return ChatClient("http://alma-broker/v1", "test-model", uds=str(session.socket_path), max_attempts=1, **kw)


def raw(session) -> httpx2.Client:
    return httpx2.Client(transport=httpx2.HTTPTransport(uds=str(session.socket_path)), timeout=10)


def test_chat_embeddings_and_models_through_the_socket(openai_server):
    with make_broker(chat_base_url=openai_server.base_url, models=["test-model"]) as broker:
        session = broker.open_session("j1")
        assert chat_client(session).chat([{"role": "user", "content": "hello"}]) == "reply to: hello"
        vectors = RemoteEmbedder("http://alma-broker/v1", "hashing", uds=str(session.socket_path)).embed_sync(
            ["a cat", "a dog"])
        assert len(vectors) == 2 and len(vectors[0]) == 256
        with raw(session) as http:
            assert http.get("http://b/v1/models").json()["data"][0]["id"] == "test-model"
        assert session.usage()["requests"] == 2
        assert os.stat(session.socket_path).st_mode & 0o777 == 0o600


def test_request_budget_refuses_fast_with_a_clear_error(openai_server):
    with make_broker(chat_base_url=openai_server.base_url) as broker:
        session = broker.open_session("j2", Budget(max_requests=2, max_tokens=None))
        client = chat_client(session, backoff_base=0.01)
        client.max_attempts = 5
        for _ in range(2):
            client.chat([{"role": "user", "content": "hi"}])
        started = time.monotonic()
        with pytest.raises(ModelError, match="request budget"):
            chat_client(session).chat([{"role": "user", "content": "one too many"}])
        assert time.monotonic() - started < 2.0
        assert len(openai_server.chat_requests()) == 2
        assert [e["event"] for e in session.events] == ["budget_exceeded"]


def test_token_budget(openai_server):
    with make_broker(chat_base_url=openai_server.base_url) as broker:
        session = broker.open_session("j3", Budget(max_requests=None, max_tokens=5))
        chat_client(session).chat([{"role": "user", "content": "one two three four five six"}])
        with pytest.raises(ModelError, match="token budget"):
            chat_client(session).chat([{"role": "user", "content": "more"}])
        assert session.usage()["prompt_tokens"] == 6


@pytest.mark.parametrize("status", [429, 500, 503])
def test_upstream_errors_are_retried(openai_server, status):
    with make_broker(chat_base_url=openai_server.base_url) as broker:
        session = broker.open_session("j4")
        openai_server.fail_next(2, status)
        assert chat_client(session).chat([{"role": "user", "content": "retry me"}]) == "reply to: retry me"
        assert len(openai_server.chat_requests()) == 3


def test_upstream_down_after_retries_is_a_502_and_an_event(openai_server):
    with make_broker(chat_base_url=openai_server.base_url, max_attempts=2) as broker:
        session = broker.open_session("j5")
        openai_server.fail_next(5, 500)
        with pytest.raises(ModelError, match="upstream failed"):
            chat_client(session).chat([{"role": "user", "content": "x"}])
        assert session.events[0]["event"] == "upstream_error"


def test_upstream_4xx_passes_through_unretried(openai_server):
    """A 400 for response_format reaches the client, whose JSON-mode fallback then asks without it."""
    with make_broker(chat_base_url=openai_server.base_url) as broker:
        session = broker.open_session("j6")
        openai_server.fail_next(1, 400)
        reply = chat_client(session).chat([{"role": "user", "content": "json please"}], json_mode=True)
        assert reply == "reply to: json please"
        assert len(openai_server.chat_requests()) == 2
        assert "response_format" not in openai_server.chat_requests()[1]


def test_cassette_records_then_replays_with_no_upstream(openai_server, tmp_path):
    counter = iter(range(100))
    openai_server.script_chat(lambda req: f"sample {next(counter)}")
    ask = [{"role": "user", "content": "same question"}]
    with make_broker(chat_base_url=openai_server.base_url, cassette_dir=tmp_path, cassette_mode="record") as b:
        session = b.open_session("rec")
        recorded = [chat_client(session).chat(ask, temperature=1.0) for _ in range(2)]
        recorded.append(RemoteEmbedder("http://alma-broker/v1", "hashing", uds=str(session.socket_path))
                        .embed_sync(["x y"])[0][:3])
    assert recorded[:2] == ["sample 0", "sample 1"] and len(Cassette(tmp_path)) == 3
    upstream_calls = len(openai_server.requests)
    with make_broker(cassette_dir=tmp_path, cassette_mode="replay") as broker:  # no upstream at all
        session = broker.open_session("replay")
        replayed = [chat_client(session).chat(ask, temperature=1.0) for _ in range(2)]
        replayed.append(RemoteEmbedder("http://alma-broker/v1", "hashing", uds=str(session.socket_path))
                        .embed_sync(["x y"])[0][:3])
        assert replayed == recorded and session.usage()["cassette_hits"] == 3
        with pytest.raises(ModelError, match="no recorded response"):
            chat_client(session).chat([{"role": "user", "content": "never asked"}])
        assert session.events[-1]["event"] == "cassette_miss"
    assert len(openai_server.requests) == upstream_calls


def test_cassette_key_is_a_content_hash():
    a = request_key("/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "x"}]})
    b = request_key("/chat/completions", {"messages": [{"content": "x", "role": "user"}], "model": "m"})
    assert a == b and len(a) == 64
    assert a != request_key("/embeddings", {"model": "m", "messages": [{"role": "user", "content": "x"}]})


class _KeyRecordingUpstream:
    """A minimal chat upstream that records the Authorization headers it receives."""

    def __init__(self):
        self.auth: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.auth.append(self.headers.get("Authorization", ""))
                data = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                                   "choices": [{"index": 0, "finish_reason": "stop",
                                                "message": {"role": "assistant", "content": "ok"}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_key_goes_upstream_but_never_to_the_client(monkeypatch):
    monkeypatch.setenv("ALMA_TEST_UPSTREAM_KEY", FAKE_KEY)
    upstream = _KeyRecordingUpstream()
    try:
        with make_broker(chat_base_url=upstream.base_url, api_key_env="ALMA_TEST_UPSTREAM_KEY") as broker:
            session = broker.open_session("key")
            with raw(session) as http:
                reply = http.post("http://b/v1/chat/completions",
                                  json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
            assert reply.status_code == 200 and FAKE_KEY not in reply.text
            assert FAKE_KEY not in "".join(f"{k}: {v}" for k, v in reply.headers.items())
        assert upstream.auth == [f"Bearer {FAKE_KEY}"]
    finally:
        upstream.close()


def test_concurrency_cap(openai_server):
    active, peak, lock = [0], [0], threading.Lock()

    def slow(request):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.15)
        with lock:
            active[0] -= 1
        return "slow"

    openai_server.script_chat(slow)
    with make_broker(chat_base_url=openai_server.base_url, max_concurrency=1) as broker:
        sessions = [broker.open_session(f"c{i}") for i in range(3)]
        threads = [threading.Thread(target=chat_client(s).chat, args=([{"role": "user", "content": "x"}],))
                   for s in sessions]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)
    assert peak[0] == 1 and len(openai_server.chat_requests()) == 3


def test_malformed_requests_get_clear_4xx(openai_server):
    with make_broker(chat_base_url=openai_server.base_url) as broker:
        session = broker.open_session("bad")
        with raw(session) as http:
            url = "http://b/v1/chat/completions"
            assert http.post(url, content=b"not json").status_code == 400
            streamed = http.post(url, json={"model": "m", "messages": [], "stream": True})
            assert streamed.status_code == 400 and "streaming" in streamed.text
            assert http.post("http://b/v1/completions", json={}).status_code == 404
            assert http.post(url, content=b"x" * (9 * 2**20)).status_code == 413
        assert openai_server.chat_requests() == []
