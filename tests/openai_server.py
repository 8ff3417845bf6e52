"""A local OpenAI-compatible test server (the edge we do not own), driven by the real ``openai`` client.

Serves ``/v1/chat/completions``, ``/v1/embeddings`` and ``/v1/models`` on a free loopback port. Replies are
scripted per test: ``server.script_chat(fn)`` sets a function ``request_json -> reply text`` (or a dict
``{"content": str | None, "finish_reason": str}``, for empty or truncated replies); ``server.fail_next(n,
status)`` makes the next n requests fail with that HTTP status (e.g. 429); ``server.latency`` (seconds) delays
every reply. Every request body is recorded with its arrival time (``time.monotonic()``, see ``arrivals()``).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def default_chat(request: dict[str, Any]) -> str:
    """Echo a short deterministic reply; JSON mode gets a JSON object."""
    if request.get("response_format", {}).get("type") == "json_object":
        return json.dumps({"insight": "look around, then take the needed object", "strategy": "explore"})
    last = request["messages"][-1]["content"]
    return f"reply to: {last[:60]}"


def hash_embedding(text: str, dim: int = 64) -> list[float]:
    """Bag-of-words vector hashed into ``dim`` buckets, unit length (deterministic)."""
    vec = [0.0] * dim
    for word in text.lower().split():
        h = int(hashlib.md5(word.encode()).hexdigest(), 16)
        vec[h % dim] += 1.0 if (h >> 8) % 2 else -1.0
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


class OpenAITestServer:
    def __init__(self, model: str = "test-model"):
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self.chat_fn: Callable[[dict[str, Any]], str | dict[str, Any]] = default_chat
        self.latency = 0.0
        self._failures: list[int] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # silence
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    server.requests.append({"path": self.path, "body": body, "t": time.monotonic()})
                    status = server._failures.pop(0) if server._failures else None
                if status is not None:
                    self._send(status, {"error": {"message": f"injected {status}", "type": "test"}})
                    return
                if server.latency:
                    time.sleep(server.latency)
                if self.path.endswith("/chat/completions"):
                    scripted = server.chat_fn(body)
                    reply = scripted if isinstance(scripted, dict) else {"content": scripted}
                    text, finish = reply.get("content"), reply.get("finish_reason", "stop")
                    prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
                    completion_tokens = len((text or "").split())
                    self._send(200, {
                        "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": body["model"],
                        "choices": [{"index": 0, "finish_reason": finish,
                                     "message": {"role": "assistant", "content": text}}],
                        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                                  "total_tokens": prompt_tokens + completion_tokens},
                    })
                elif self.path.endswith("/embeddings"):
                    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
                    tokens = sum(len(str(t).split()) for t in inputs)
                    self._send(200, {
                        "object": "list", "model": body["model"],
                        "data": [{"object": "embedding", "index": i, "embedding": hash_embedding(str(t))}
                                 for i, t in enumerate(inputs)],
                        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                    })
                else:
                    self._send(404, {"error": {"message": "not found"}})

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def script_chat(self, fn: Callable[[dict[str, Any]], str]) -> None:
        self.chat_fn = fn

    def fail_next(self, n: int, status: int = 429) -> None:
        with self._lock:
            self._failures.extend([status] * n)

    def chat_requests(self) -> list[dict[str, Any]]:
        return [r["body"] for r in self.requests if r["path"].endswith("/chat/completions")]

    def arrivals(self) -> list[float]:
        """When each chat request arrived (``time.monotonic()``), in order."""
        return [r["t"] for r in self.requests if r["path"].endswith("/chat/completions")]

    def __enter__(self) -> OpenAITestServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
