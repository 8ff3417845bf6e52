"""A local OpenAI-compatible server that behaves like a remote model: a fixed latency per call, a cap on the
requests it serves at once, an optional share of HTTP 429s and of timeouts, and exact token counting.

    with LatencyServer(latency_s=0.3, max_concurrency=16, error_rate=0.1, timeout_rate=0.05) as server:
        ... point a client (or the host broker's ``chat_base_url``) at server.base_url ...
        server.summary()   # attempts, successes, 429s, timeouts, tokens over successful replies
        server.records     # one Record per request it answered (or refused, or left hanging)

``POST /v1/chat/completions`` answers the LLM task agent (``harness.agents.llm_agent``) with the first line of
the prompt's "Admissible actions:" list, copied exactly, so an episode plays deterministically to its step
limit; ``POST /v1/embeddings`` answers hashed bag-of-words vectors; ``GET /v1/models`` lists the model.

**Tokens** are this server's own, exact count: a token is a run of word characters or one other non-space
character; a chat prompt is the tokens of every message's content plus 4 per message, a reply the tokens of its
text, an embedding request the tokens of its inputs. Every successful reply carries them as ``usage``, and the
server keeps them per request, so a client's token meter can be checked against the sum over successful replies.

**Faults** are drawn per attempt, in arrival order, from a generator seeded with ``seed``: the sequence of fates
is fixed by the seed (which request meets which depends on arrival order), and a retry draws afresh. A 429 is
answered at once
(no latency, no slot, no ``Retry-After``: the client's own backoff decides); a timeout holds the request
for ``hang_s`` (set it above the client's timeout) and closes the connection without an answer. Requests past
``max_concurrency`` wait for a slot (as a model server queues them); the wait is recorded.

**Episode tags.** A text containing ``alma-episode TAG`` (TAG without spaces) in a chat prompt or an embedding
input is attributed to TAG (``Record.tag``): a benchmark's instrumented design writes it into its memory text so
that calls can be counted per episode.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import threading
import time
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_TOKEN = re.compile(r"\w+|[^\w\s]")
_TAG = re.compile(r"alma-episode (\S+)")
_ACTIONS = re.compile(r"Admissible actions:\n((?:- .*\n?)+)")


def count_tokens(text: str) -> int:
    """This server's exact token count of ``text``."""
    return len(_TOKEN.findall(text))


def first_action(prompt: str) -> str:
    """The first admissible action listed in an LLM-agent prompt (``- action`` lines), else ``look``."""
    m = _ACTIONS.search(prompt)
    if not m:
        return "look"
    return m.group(1).splitlines()[0][2:].strip() or "look"


def hash_embedding(text: str, dim: int = 64) -> list[float]:
    """Bag-of-words vector hashed into ``dim`` buckets, unit length (deterministic)."""
    vec = [0.0] * dim
    for word in text.lower().split():
        h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
        vec[h % dim] += 1.0 if (h >> 8) % 2 else -1.0
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


@dataclass
class Record:
    """One request as the server saw it. ``outcome``: ok | 429 | timeout | bad_request."""

    endpoint: str
    outcome: str
    started: float  # time.monotonic() when the request arrived
    finished: float
    queued_s: float = 0.0  # waiting for a slot (max_concurrency)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tag: str | None = None


class LatencyServer:
    """See the module docstring. ``port=0``: a free loopback port."""

    def __init__(self, *, latency_s: float = 0.3, max_concurrency: int = 16, error_rate: float = 0.0,
                 timeout_rate: float = 0.0, hang_s: float = 5.0, seed: int = 0, model: str = "latency-model",
                 host: str = "127.0.0.1", port: int = 0):
        if not (0 <= error_rate and 0 <= timeout_rate and error_rate + timeout_rate < 1):
            raise ValueError("error_rate and timeout_rate must be >= 0 and add up to less than 1")
        self.latency_s, self.max_concurrency, self.hang_s = latency_s, max_concurrency, hang_s
        self.error_rate, self.timeout_rate, self.seed, self.model = error_rate, timeout_rate, seed, model
        self.records: list[Record] = []
        self._random = random.Random(seed)
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._lock = threading.Lock()
        self._active = self.peak_active = 0
        self._httpd = ThreadingHTTPServer((host, port), self._handler())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------------------------ lifecycle
    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> LatencyServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name="latency-server")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> LatencyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------------------ figures
    def mark(self) -> int:
        """The number of records so far: pass it to :meth:`summary` / :meth:`since` to look at what came after."""
        with self._lock:
            return len(self.records)

    def since(self, mark: int = 0) -> list[Record]:
        with self._lock:
            return list(self.records[mark:])

    def summary(self, mark: int = 0) -> dict[str, Any]:
        """Attempts by outcome and endpoint, and the tokens of the successful replies (what a client should have
        been charged), over the records after ``mark``."""
        records = self.since(mark)
        ok = [r for r in records if r.outcome == "ok"]
        chat = [r for r in ok if r.endpoint == "chat"]
        embed = [r for r in ok if r.endpoint == "embeddings"]
        return {"attempts": len(records), "ok": len(ok), **{k: sum(r.outcome == k for r in records)
                                                             for k in ("429", "timeout", "bad_request")},
                "chat_ok": len(chat), "embed_ok": len(embed),
                "chat_prompt_tokens": sum(r.prompt_tokens for r in chat),
                "chat_completion_tokens": sum(r.completion_tokens for r in chat),
                "embed_tokens": sum(r.prompt_tokens for r in embed),
                "peak_active": self.peak_active}

    def dump(self, mark: int = 0) -> list[dict[str, Any]]:
        return [asdict(r) for r in self.since(mark)]

    # ------------------------------------------------------------------------------------------------ serving
    def _fate(self) -> str:
        """ok | 429 | timeout: the next draw of the seeded generator."""
        with self._lock:
            u = self._random.random()
        return "429" if u < self.error_rate else "timeout" if u < self.error_rate + self.timeout_rate else "ok"

    def _answer(self, endpoint: str, body: dict[str, Any]) -> tuple[dict[str, Any], int, int, str | None]:
        """(reply, prompt tokens, completion tokens, tag) for a well-formed request; ValueError otherwise."""
        if endpoint == "chat":
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                raise ValueError("messages must be a non-empty list")
            contents = [str(m.get("content") or "") for m in messages if isinstance(m, dict)]
            prompt = "\n".join(contents)
            text = first_action(contents[-1])
            p, c = sum(count_tokens(t) + 4 for t in contents), count_tokens(text)
            tag = _TAG.search(prompt)
            return ({"id": "chatcmpl-latency", "object": "chat.completion", "created": int(time.time()),
                     "model": self.model,
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                  "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}},
                    p, c, tag.group(1) if tag else None)
        raw = body.get("input")
        texts = [raw] if isinstance(raw, str) else raw
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise ValueError("input must be a string or a list of strings")
        p = sum(count_tokens(t) for t in texts)
        tag = next((m.group(1) for m in map(_TAG.search, texts) if m), None)
        return ({"object": "list", "model": self.model,
                 "data": [{"object": "embedding", "index": i, "embedding": hash_embedding(t)}
                          for i, t in enumerate(texts)],
                 "usage": {"prompt_tokens": p, "total_tokens": p}}, p, 0, tag)

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # as model servers do: no 40 ms delayed-ACK stall per reply

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": "not found", "type": "not_found"}})

            def do_POST(self) -> None:  # noqa: N802
                started = time.monotonic()
                path = self.path.split("?")[0].rstrip("/")
                endpoint = "chat" if path.endswith("/chat/completions") else \
                    "embeddings" if path.endswith("/embeddings") else None
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if endpoint is None:
                    self._send(404, {"error": {"message": f"no route {path}", "type": "not_found"}})
                    return
                record = Record(endpoint, "ok", started, started)
                try:
                    body = json.loads(raw)
                    reply, record.prompt_tokens, record.completion_tokens, record.tag = server._answer(
                        endpoint, body)
                except (ValueError, AttributeError) as exc:
                    record.outcome, record.finished = "bad_request", time.monotonic()
                    server._keep(record)
                    self._send(400, {"error": {"message": str(exc), "type": "invalid_request_error"}})
                    return
                record.outcome = server._fate()
                if record.outcome == "429":
                    record.prompt_tokens = record.completion_tokens = 0
                    record.finished = time.monotonic()
                    server._keep(record)
                    self._send(429, {"error": {"message": "rate limited (simulated)", "type": "rate_limit"}})
                    return
                if record.outcome == "timeout":  # hold the request past the client's timeout, answer nothing
                    record.prompt_tokens = record.completion_tokens = 0
                    server._keep(record)  # kept now: the client's retry may finish the run before the hang ends
                    time.sleep(server.hang_s)
                    record.finished = time.monotonic()
                    self.close_connection = True
                    return
                with server._slots:
                    record.queued_s = time.monotonic() - started
                    with server._lock:
                        server._active += 1
                        server.peak_active = max(server.peak_active, server._active)
                    try:
                        time.sleep(server.latency_s)
                    finally:
                        with server._lock:
                            server._active -= 1
                record.finished = time.monotonic()
                try:
                    self._send(200, reply)
                except OSError:  # the client gave up meanwhile: not a successful reply
                    record.outcome = "client_gone"
                    record.prompt_tokens = record.completion_tokens = 0
                server._keep(record)

        return Handler

    def _keep(self, record: Record) -> None:
        with self._lock:
            self.records.append(record)


def main(argv: list[str] | None = None) -> int:
    """Serve until interrupted (for pointing other tools at it by hand)."""
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--latency-ms", type=float, default=300.0)
    p.add_argument("--server-concurrency", type=int, default=16)
    p.add_argument("--error-rate", type=float, default=0.0)
    p.add_argument("--timeout-rate", type=float, default=0.0)
    p.add_argument("--hang-s", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    server = LatencyServer(latency_s=args.latency_ms / 1000, max_concurrency=args.server_concurrency,
                           error_rate=args.error_rate, timeout_rate=args.timeout_rate, hang_s=args.hang_s,
                           seed=args.seed, port=args.port)
    print(f"serving {server.base_url} (Ctrl-C stops)", flush=True)
    with server:
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    print(json.dumps(server.summary(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
