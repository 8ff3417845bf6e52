"""The host-side model broker, driven by the harness's real clients over its Unix socket; the upstream is the
local OpenAI-compatible test server (the only test double: the edge we do not own)."""

from __future__ import annotations

import json
import os
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx2
import pytest

from harness.errors import ModelError
from harness.models.chat import ChatClient
from harness.models.embed import RemoteEmbedder
from sandbox.broker import Broker, BrokerConfig, Budget
from sandbox.broker_policy import MAX_EMBED_CHARS, MAX_EMBED_INPUTS, MAX_MESSAGES, MAX_PROMPT_CHARS
from sandbox.cassette import Cassette, request_key

FAKE_KEY = "sk-alma-broker-fake-key-42"


def make_broker(**overrides) -> Broker:
    config = {"local_embedder": "hashing", "backoff_base": 0.01, "max_attempts": 4, "local_chat_model": None,
              "chat_model": "test-model", **overrides}
    return Broker(BrokerConfig(**config))


def chat_client(session, **kw) -> ChatClient:
    return ChatClient("http://alma-broker/v1", "test-model", uds=str(session.socket_path), max_attempts=1, **kw)


def raw(session) -> httpx2.Client:
    return httpx2.Client(transport=httpx2.HTTPTransport(uds=str(session.socket_path)), timeout=10)


def by_hand(session, path: str, body: bytes) -> tuple[int, dict]:
    """POST ``body`` to the session's socket with an HTTP request written by hand (what a hostile design does)."""
    head = (f"POST {path} HTTP/1.1\r\nHost: anything\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(session.socket_path))
        sock.sendall(head + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])


def post(session, body: dict, endpoint: str = "chat/completions") -> tuple[int, dict]:
    return by_hand(session, f"/v1/{endpoint}", json.dumps(body).encode())


def ask(content: str = "hi", **fields) -> dict:
    return {"messages": [{"role": "user", "content": content}], **fields}


def refusals(session) -> list[str]:
    """The details of the session's refusal events (checking the event's exact shape, which the audit reads)."""
    refused = [e for e in session.events if e.get("event") == "refused"]
    assert all(set(e) == {"kind", "event", "detail"} and e["kind"] == "broker" for e in refused)
    return [e["detail"] for e in refused]


def full_allowance(request: dict) -> str:
    """An upstream that always uses every completion token it is allowed (the worst case for a budget)."""
    return " ".join(["w"] * request["max_tokens"])


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


def test_token_budget_reserves_the_most_a_request_can_cost(openai_server):
    """Admission reserves the prompt bound (bytes + 8 per message + 64) plus max_tokens; usage then replaces it."""
    with make_broker(chat_base_url=openai_server.base_url) as broker:
        session = broker.open_session("j3", Budget(max_requests=None, max_tokens=100))
        assert chat_client(session).chat([{"role": "user", "content": "one two three"}], max_tokens=10) \
            == "reply to: one two three"
        assert session.usage()["prompt_tokens"] == 3 and session.usage()["completion_tokens"] == 5
        assert session.reserved == 0
        with pytest.raises(ModelError, match="token budget"):  # 8 used + 64 + 8 + 4 + 20 > 100
            chat_client(session).chat([{"role": "user", "content": "more"}], max_tokens=20)
        assert len(openai_server.chat_requests()) == 1
        assert session.events[-1]["event"] == "budget_exceeded"


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
                                  json={"model": "test-model", "messages": [{"role": "user", "content": "hi"}]})
            assert reply.status_code == 200 and FAKE_KEY not in reply.text
            assert FAKE_KEY not in "".join(f"{k}: {v}" for k, v in reply.headers.items())
            # this upstream reports no usage: the job is charged the bounds (64 + 8 + 2 bytes; "ok" is 2 bytes)
            assert session.usage()["prompt_tokens"] == 74 and session.usage()["completion_tokens"] == 2
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


def test_the_harness_requests_reach_the_upstream_unchanged(openai_server):
    """What the harness's clients send is within the rules: forwarded as is (old cassettes keep their keys)."""
    with make_broker(chat_base_url=openai_server.base_url) as broker:
        session = broker.open_session("same")
        chat_client(session).chat([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
                                  json_mode=True, max_tokens=48, temperature=0.0)
        assert openai_server.chat_requests() == [{
            "model": "test-model", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
            "max_tokens": 48, "temperature": 0.0, "response_format": {"type": "json_object"}}]
        assert session.events == []


def test_model_names_are_the_brokers_choice(openai_server):
    with make_broker(chat_base_url=openai_server.base_url) as broker:
        session = broker.open_session("model")
        assert post(session, ask("no model named"))[0] == 200
        assert post(session, ask("named", model="test-model"))[0] == 200
        status, reply = post(session, ask("dearer", model="gpt-4-32k"))
        assert status == 400 and reply["error"]["code"] == "refused" and "gpt-4-32k" in reply["error"]["message"]
        assert [r["model"] for r in openai_server.chat_requests()] == ["test-model", "test-model"]
        assert refusals(session) == ["/chat/completions: model='gpt-4-32k' is not the configured chat model "
                                     "'test-model'"]
        assert session.usage()["refused"] == 1 and session.usage()["requests"] == 2


def test_default_model_names():
    embedded = Broker(BrokerConfig(local_chat_model="qwen2.5-coder-0.5b", local_embedder="hashing"))
    remote = Broker(BrokerConfig(chat_base_url="http://127.0.0.1:9/v1", local_embedder=None))
    listed = Broker(BrokerConfig(chat_base_url="http://127.0.0.1:9/v1", models=["listed"], local_embedder="minilm"))
    try:
        assert (embedded.policy.chat_model, embedded.policy.embed_model) == ("qwen2.5-coder-0.5b", "hashing")
        assert (listed.policy.chat_model, listed.policy.embed_model) == ("listed", "all-MiniLM-L6-v2")
        assert (remote.policy.chat_model, remote.policy.embed_model) == (None, None)
        session = remote.open_session("unnamed")
        assert post(session, ask())[0] == 400 and post(session, {"input": "x"}, "embeddings")[0] == 400
        assert refusals(session) == ["/chat/completions: this broker has no chat model configured",
                                     "/embeddings: this broker has no embedding model configured"]
    finally:
        embedded.close()
        remote.close()
        listed.close()


def test_n_above_one_is_refused(openai_server):
    with make_broker(chat_base_url=openai_server.base_url) as broker:
        session = broker.open_session("n")
        assert post(session, ask(n=16))[0] == 400
        assert post(session, ask(n=True))[0] == 400
        assert post(session, ask(n=1))[0] == 200
        assert len(openai_server.chat_requests()) == 1 and "n" not in openai_server.chat_requests()[0]
        assert [d.split(":")[1].strip() for d in refusals(session)] == ["n=16", "n=True"]


def test_max_tokens_is_clamped_to_the_configured_cap(openai_server):
    with make_broker(chat_base_url=openai_server.base_url) as broker:
        session = broker.open_session("clamp")
        for body in (ask(max_tokens=100000), ask(max_completion_tokens=5000), ask(), ask(max_tokens=7),
                     ask(max_tokens=2000)):
            assert post(session, body)[0] == 200
        sent = openai_server.chat_requests()
        assert [r["max_tokens"] for r in sent] == [1024, 1024, 1024, 7, 1024]
        assert not any("max_completion_tokens" in r for r in sent)
        clamped = [e["detail"] for e in session.events if e["event"] == "clamped"]  # the first per field
        assert clamped == ["/chat/completions: max_tokens=100000 clamped to 1024 (the first such request of this job)",
                           "/chat/completions: max_completion_tokens=5000 clamped to 1024 (the first such request "
                           "of this job)"]
        for bad in (ask(max_tokens=0), ask(max_tokens="9"), ask(max_tokens=1.5),
                    ask(max_tokens=10, max_completion_tokens=10)):
            assert post(session, bad)[0] == 400
        assert len(openai_server.chat_requests()) == 5 and len(refusals(session)) == 4
    with make_broker(chat_base_url=openai_server.base_url, max_completion_tokens=64) as broker:
        assert post(broker.open_session("cap"), ask(max_tokens=100))[0] == 200
        assert openai_server.chat_requests()[-1]["max_tokens"] == 64


@pytest.mark.parametrize("field,value", [
    ("tools", [{"type": "function", "function": {"name": "f"}}]), ("functions", [{"name": "f"}]),
    ("logprobs", True), ("top_logprobs", 5), ("logit_bias", {"1": 100}), ("user", "me"), ("best_of", 20),
    ("presence_penalty", 1.0), ("extra_body", {"n": 16}), ("prompt", "x"),
])
def test_unknown_fields_are_refused_with_an_event(openai_server, field, value):
    with make_broker(chat_base_url=openai_server.base_url) as broker:
        session = broker.open_session("unknown")
        status, reply = post(session, ask(**{field: value}))
        assert status == 400 and field in reply["error"]["message"]
        assert openai_server.chat_requests() == []
        assert len(refusals(session)) == 1 and f"field '{field}' is not allowed" in refusals(session)[0]


def test_allowed_fields_are_checked_and_rebuilt(openai_server):
    with make_broker(chat_base_url=openai_server.base_url) as broker:
        session = broker.open_session("fields")
        fine = ask(temperature=2, top_p=1, stop=["\n", "END"], seed=7, response_format={"type": "text"},
                   stream=False, user=None)
        assert post(session, fine)[0] == 200
        assert openai_server.chat_requests() == [{
            "model": "test-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1024,
            "temperature": 2, "top_p": 1, "stop": ["\n", "END"], "seed": 7, "response_format": {"type": "text"}}]
        bad = [ask(temperature=2.5), ask(temperature=-0.1), ask(temperature="0"), ask(top_p=0), ask(top_p=1.01),
               ask(stop=["a"] * 5), ask(stop=7), ask(stop="x" * 201), ask(seed="7"), ask(seed=2**64),
               ask(response_format={"type": "json_schema", "json_schema": {}}), ask(stream=True),
               ask(response_format={"type": "json_object", "x": 1}),
               {"messages": []}, {"messages": "hi"}, {}, {"messages": [{"role": "tool", "content": "x"}]},
               {"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]},
               {"messages": [{"role": "user", "content": "x", "name": "n"}]},
               {"messages": [{"role": "user", "content": "x"}] * (MAX_MESSAGES + 1)},
               {"messages": [{"role": "user", "content": "x" * (MAX_PROMPT_CHARS // 2 + 1)}] * 2}]
        for body in bad:
            status, _ = post(session, body)
            assert status == 400, body
        by_bytes = b'{"messages": [{"role": "user", "content": "\\ud800"}]}'  # a lone surrogate
        assert by_hand(session, "/v1/chat/completions", by_bytes)[0] == 400
        assert len(openai_server.chat_requests()) == 1
        assert len(refusals(session)) == len(bad) + 1 == session.usage()["refused"]


def test_embeddings_are_sanitised(openai_server):
    with make_broker(chat_base_url=openai_server.base_url, local_embedder=None,
                     embed_model="text-embedding-3-small") as broker:
        session = broker.open_session("embed")
        assert post(session, {"input": ["a", "b"], "model": "text-embedding-3-large", "encoding_format": "float"},
                    "embeddings")[0] == 200
        assert post(session, {"input": "c"}, "embeddings")[0] == 200
        bad = [{"input": "x", "dimensions": 3072}, {"input": "x", "encoding_format": "base64"},
               {"input": "x", "user": "u"}, {"input": []}, {"input": [1, 2]}, {"input": [[1, 2, 3]]},
               {"input": ["x"] * (MAX_EMBED_INPUTS + 1)}, {"input": "x" * (MAX_EMBED_CHARS + 1)}, {}]
        for body in bad:
            assert post(session, body, "embeddings")[0] == 400, body
        sent = [r["body"] for r in openai_server.requests]
        assert sent == [{"model": "text-embedding-3-small", "input": ["a", "b"], "encoding_format": "float"},
                        {"model": "text-embedding-3-small", "input": "c"}]
        assert len(refusals(session)) == len(bad) and "dimensions=3072" in refusals(session)[0]
        small = broker.open_session("embed-budget", Budget(max_tokens=100))  # 4 + 200 bytes > 100
        assert post(small, {"input": "y" * 200}, "embeddings")[0] == 402
        assert len(openai_server.requests) == 2


def test_budget_is_never_overshot_whatever_is_asked(openai_server):
    """The upstream spends every completion token allowed; random requests cannot take a job past its budget."""
    openai_server.script_chat(full_allowance)
    rng = random.Random(7)
    with make_broker(chat_base_url=openai_server.base_url, max_completion_tokens=400) as broker:
        session = broker.open_session("sequential", Budget(max_requests=None, max_tokens=1000))
        statuses = []
        for _ in range(60):
            asked = rng.choice([{}, {"max_tokens": rng.choice([1, 30, 399, 100000])},
                                {"max_completion_tokens": 10**9}, {"n": 16}])
            words = " ".join(["z"] * rng.randint(1, 40))
            statuses.append(post(session, ask(words, **asked))[0])
            used = session.usage()
            assert used["prompt_tokens"] + used["completion_tokens"] <= 1000
        assert statuses.count(200) >= 2 and 402 in statuses and session.reserved == 0
        sent = openai_server.chat_requests()
        assert all(r["max_tokens"] <= 400 for r in sent) and len(sent) == statuses.count(200)


def test_concurrent_requests_cannot_jointly_overshoot(openai_server):
    """Each request may cost 64 + 8 + 1 + 400 = 473: two fit in 1000 (they use 2 x 401), never a third."""
    def slow(request):
        time.sleep(0.3)
        return full_allowance(request)

    openai_server.script_chat(slow)
    with make_broker(chat_base_url=openai_server.base_url, max_completion_tokens=400) as broker:
        session = broker.open_session("concurrent", Budget(max_requests=None, max_tokens=1000))
        statuses: list[int] = []
        threads = [threading.Thread(target=lambda: statuses.append(post(session, ask("x", max_tokens=100000))[0]))
                   for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        used = session.usage()
        assert sorted(statuses) == [200] * 2 + [402] * 10
        assert (used["prompt_tokens"], used["completion_tokens"]) == (2, 800) and session.reserved == 0
        assert len(openai_server.chat_requests()) == 2


def test_the_raw_socket_attack_gets_the_same_treatment(openai_server):
    """The reported attack: a request written by hand to the socket, with its own model, n and max_tokens."""
    with make_broker(chat_base_url=openai_server.base_url) as broker:
        session = broker.open_session("attack", Budget(max_requests=None, max_tokens=500_000))
        attack = {"model": "gpt-4-32k", "n": 16, "max_tokens": 100000, "logit_bias": {"1": 100},
                  "messages": [{"role": "user", "content": "write forever"}]}
        status, reply = post(session, attack)
        assert status == 400 and reply["error"]["code"] == "refused"
        assert openai_server.chat_requests() == [] and len(refusals(session)) == 1
        status, _ = post(session, {**attack, "model": "test-model", "n": 1, "logit_bias": None})
        assert status == 200
        assert openai_server.chat_requests() == [{"model": "test-model", "max_tokens": 1024,
                                                  "messages": [{"role": "user", "content": "write forever"}]}]
        assert [e["event"] for e in session.events] == ["refused", "clamped"]


def test_cassette_keys_are_computed_from_the_sanitised_body(openai_server, tmp_path):
    asked = ask("same", max_tokens=100000, temperature=0.5, stop=None)
    with make_broker(chat_base_url=openai_server.base_url, cassette_dir=tmp_path, cassette_mode="record") as b:
        assert post(b.open_session("rec"), asked)[0] == 200
    sent = openai_server.chat_requests()[0]
    key = request_key("/chat/completions", sent)
    entry = json.loads(next(tmp_path.glob(f"*/{key}-0.json")).read_text())
    assert entry["request"] == sent and sent["max_tokens"] == 1024 and "stop" not in sent
    with make_broker(cassette_dir=tmp_path, cassette_mode="replay") as broker:  # no upstream at all
        session = broker.open_session("replay")
        status, reply = post(session, {**asked, "max_tokens": 5000, "model": "test-model"})  # the same once sanitised
        assert status == 200 and reply == entry["response"] and session.usage()["cassette_hits"] == 1
