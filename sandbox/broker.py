"""The host-side model broker: OpenAI-compatible HTTP on a Unix socket, one socket (session) per job.

Inside the sandbox the harness's clients speak HTTP over ``/broker/broker.sock`` (``ModelSpec.uds``). The
broker serves ``POST /v1/chat/completions``, ``POST /v1/embeddings`` and ``GET /v1/models``, and forwards what
its cassette cannot answer to the configured upstream: an OpenAI-compatible endpoint (the API key is read
from the host's environment and never enters the sandbox) or, for embeddings, the host's own embedder.

**The broker decides what is paid for.** The socket is reachable by the design's own code, so a request is
never forwarded as sent: :mod:`sandbox.broker_policy` builds a new upstream body from an allow-list and this
run's configuration, and anything outside the rules is refused with HTTP 400 (error code ``refused``) and
recorded as the session event ``{"kind": "broker", "event": "refused", "detail": "<field and value>"}``.

``/chat/completions``
  - ``model``: absent, or exactly the configured chat model (``BrokerConfig.chat_model``; by default the
    embedded model's name when the embedded model serves chat, else the first of ``BrokerConfig.models``);
    any other name is refused. The upstream is always sent the configured model.
  - ``messages``: a non-empty list of at most 64 objects with exactly ``role`` (system, user, assistant) and
    ``content`` (a string); at most 200,000 characters of content in all.
  - ``n``: absent or 1.
  - ``max_tokens`` or its alias ``max_completion_tokens`` (not both): an integer >= 1; above
    ``BrokerConfig.max_completion_tokens`` (default 1024) it is clamped to it, with a ``clamped`` event (the
    first per field and session); absent means the cap. The upstream is sent ``max_tokens``.
  - ``temperature`` in [0, 2]; ``top_p`` in (0, 1]; ``stop`` a string or at most 4 strings (200 characters
    each); ``seed`` a 64-bit integer; ``response_format`` only ``{"type": "json_object"}`` or
    ``{"type": "text"}``; ``stream`` absent or false. A field set to null counts as absent.
  - Any other field (tools, functions, logprobs, logit_bias, user, ...) is refused, the event naming it.

``/embeddings``
  - ``input``: a string or a non-empty list of at most 256 strings, each at most 8,000 characters.
  - ``model``: any string or absent; the upstream is always sent the configured embedding model
    (``BrokerConfig.embed_model``; by default the host embedder's name, ``all-MiniLM-L6-v2`` or ``hashing``).
  - ``encoding_format``: absent or ``"float"``; ``dimensions`` and any other field are refused.

Per session (= per job): a request budget and a token budget, **never overshot**. Before forwarding, a
request reserves its maximum cost: an upper bound on its prompt tokens (the UTF-8 bytes of the content, as
no tokenizer makes more tokens than bytes, plus 8 per message and 64 per request for the chat template; 4 per
embedding input) plus the max_tokens sent upstream. When the tokens used, plus those reserved by requests in
flight, plus this request's maximum would pass the budget, the job gets HTTP 402 with error code
``budget_exceeded`` at once (the harness's clients do not retry 4xx), never a hang; the same when the request
budget is spent. After the reply the reservation is replaced by the usage the upstream reports (when it
reports none: the prompt bound and at most max_tokens, counted by the reply's bytes); a failed request is
charged nothing. This holds as long as the upstream honours max_tokens. ``usage()`` also splits the tokens
by endpoint and counts those a cassette served (:data:`SPLIT_COUNTERS`): what a price table needs. Across sessions: a cap on concurrent
upstream requests. Every exchange is recorded in the cassette (see :mod:`sandbox.cassette`), keyed by the
sanitised body, so a replay sees the same keys; in ``replay`` mode no upstream is needed at all.

Per upstream model, across sessions: ``BrokerConfig.requests_per_minute`` and ``tokens_per_minute`` (None:
unlimited), the limits a remote API enforces, kept by :class:`sandbox.ratelimit.RateLimiter` for requests
forwarded to an OpenAI-compatible endpoint (the host's embedder and the embedded local model have no quota).
A request first takes a concurrency slot, then waits (it never fails) until it fits the limits, charged its
reserved maximum cost and corrected to the reply's usage; the time it waited is the session's
``rate_wait_ms`` (usage) and the first wait of a session is a ``rate_limited`` event. Every chat reply
forwarded upstream is classified by :mod:`sandbox.model_health` (ok, empty, truncated, refused) into
``Broker.health`` (per model, read by the host to stop a run) and the session's ``replies_*`` usage counters,
the first bad reply of each kind being an event (``empty_reply``, ``truncated_reply``, ``refusal_reply``);
cassette hits are not counted (they were when recorded).

    broker = Broker(BrokerConfig(chat_base_url="http://127.0.0.1:8080/v1", chat_model="gpt-4o-mini",
                                 cassette_dir=run_dir / "cassette"))
    session = broker.open_session("job-1", Budget(max_requests=200), client_uid=backend.uid)
    ... mount session.socket_dir at /broker ...
    session.usage(); session.events; session.close(); broker.close()
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socketserver
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from harness.models import DEFAULT_LOCAL_MODEL, DEFAULT_MAX_ATTEMPTS, DEFAULT_TIMEOUT_S
from sandbox.broker_policy import Admitted, Policy, Refused, sanitise
from sandbox.cassette import Cassette, CassetteMode, request_key
from sandbox.errors import BrokerError
from sandbox.model_health import KINDS, USAGE_KEYS, ModelHealth
from sandbox.ratelimit import RateLimiter
from sandbox.upstream import (
    LocalChat,
    LocalEmbeddings,
    OpenAIUpstream,
    Upstream,
    UpstreamRejected,
    UpstreamUnavailable,
)

log = logging.getLogger(__name__)

SOCKET_NAME = "broker.sock"
MAX_BODY = 8 * 1024 * 1024
MAX_EVENTS = 200
ENDPOINTS = ("/chat/completions", "/embeddings")
#: counters :meth:`BrokerSession.usage` adds to prompt/completion tokens: the same tokens by endpoint, and (the
#: ``cassette_`` ones) the part of those the cassette served (not paid again)
SPLIT_COUNTERS = tuple(f"{source}{name}" for source in ("", "cassette_") for name in (
    "chat_requests", "chat_prompt_tokens", "chat_completion_tokens", "embed_requests", "embed_tokens"))
#: session events for the first reply of each bad kind (:mod:`sandbox.model_health`)
REPLY_EVENTS = {"empty": ("empty_reply", "an empty reply"),
                "truncated": ("truncated_reply", "a reply cut at max_tokens (finish_reason=length)"),
                "refused": ("refusal_reply", "a refusal")}


@dataclass
class BrokerConfig:
    """Where the broker forwards, and how. Every default works offline (chat: the embedded local model;
    embeddings: the host's hashing embedder)."""

    chat_base_url: str | None = None
    """OpenAI-compatible chat endpoint; None: the embedded local model, started on the first chat request."""
    local_chat_model: str | None = DEFAULT_LOCAL_MODEL
    """The embedded model used when chat_base_url is None; None: no chat upstream (cassette only)."""
    chat_model: str | None = None
    """The one chat model served and sent upstream (the name the harness sends: ``ModelSpec.chat_model``);
    None: ``local_chat_model`` when the embedded model serves chat, else the first of ``models``, else chat
    requests are refused."""
    embed_base_url: str | None = None
    local_embedder: str | None = "hashing"
    """``minilm`` / ``hashing``: serve /v1/embeddings on the host; None: forward to embed_base_url."""
    embed_model: str | None = None
    """The embedding model sent upstream; None: the host embedder's name (``all-MiniLM-L6-v2`` / ``hashing``)
    when local_embedder is set, else embedding requests are refused."""
    max_completion_tokens: int = 1024
    """Cap on a chat request's max_tokens: larger values are clamped, an absent one is the cap."""
    api_key_env: str = "OPENAI_API_KEY"
    models: list[str] = field(default_factory=list)
    """What ``GET /v1/models`` lists; empty: the chat model."""
    cassette_dir: Path | None = None
    cassette_mode: CassetteMode = "auto"
    max_concurrency: int = 4
    requests_per_minute: int | None = None
    """Requests per minute sent to each upstream model (an OpenAI-compatible endpoint); None: unlimited."""
    tokens_per_minute: int | None = None
    """Tokens per minute (reserved maximum, corrected to the reported usage) per upstream model; None: unlimited."""
    timeout: float = DEFAULT_TIMEOUT_S
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff_base: float = 0.5
    threads: int = 1


@dataclass
class Budget:
    """Per-job limits; None means unlimited."""

    max_requests: int | None = 500
    max_tokens: int | None = 500_000


class Broker:
    """Upstream clients, the cassette and the concurrency cap, shared by every session."""

    def __init__(self, config: BrokerConfig | None = None):
        self.config = cfg = config or BrokerConfig()
        key = os.environ.get(cfg.api_key_env) or None
        self.cassette = Cassette(cfg.cassette_dir, cfg.cassette_mode) if cfg.cassette_dir else None
        if cfg.cassette_mode == "replay" and self.cassette is None:
            raise BrokerError("cassette_mode='replay' needs a cassette_dir to replay from")
        options = {"timeout": cfg.timeout, "max_attempts": cfg.max_attempts, "backoff_base": cfg.backoff_base}
        chat: Upstream | None = None
        if cfg.chat_base_url:
            chat = OpenAIUpstream(cfg.chat_base_url, key, **options)
        elif cfg.local_chat_model:
            chat = LocalChat(cfg.local_chat_model, cfg.threads, **options)
        self._upstreams: dict[str, Upstream | None] = {"/chat/completions": chat}
        if cfg.local_embedder:
            self._upstreams["/embeddings"] = LocalEmbeddings(cfg.local_embedder, threads=cfg.threads)
        elif cfg.embed_base_url or cfg.chat_base_url:
            self._upstreams["/embeddings"] = OpenAIUpstream(cfg.embed_base_url or cfg.chat_base_url, key,
                                                            **options)
        else:
            self._upstreams["/embeddings"] = None
        if cfg.max_completion_tokens < 1:
            raise BrokerError(f"max_completion_tokens must be >= 1, got {cfg.max_completion_tokens}")
        local_embed = self._upstreams["/embeddings"] if cfg.local_embedder else None
        self.policy = Policy(
            chat_model=(cfg.chat_model or (cfg.local_chat_model if not cfg.chat_base_url else None)
                        or next(iter(cfg.models), None)),
            embed_model=cfg.embed_model or getattr(local_embed, "model", None),
            max_completion_tokens=cfg.max_completion_tokens)
        self._slots = threading.BoundedSemaphore(cfg.max_concurrency)
        try:
            self.limiter = RateLimiter(cfg.requests_per_minute, cfg.tokens_per_minute)
        except ValueError as exc:
            raise BrokerError(f"invalid rate limit: {exc}") from exc
        #: per model, the chat replies forwarded upstream by kind (ok, empty, truncated, refused)
        self.health = ModelHealth()
        self._sessions: list[BrokerSession] = []
        self._lock = threading.Lock()

    def open_session(self, job_id: str, budget: Budget | None = None, *, client_uid: int | None = None,
                     socket_dir: Path | None = None) -> BrokerSession:
        """Start serving a new job on its own socket (``session.socket_path``) and return the session."""
        session = BrokerSession(self, job_id, budget or Budget(), client_uid=client_uid, socket_dir=socket_dir)
        with self._lock:
            self._sessions.append(session)
        return session

    def forward(self, endpoint: str, body: dict[str, Any], *, tokens: int = 0) -> Forwarded:
        """Send ``body`` upstream under the concurrency cap and, for a remote endpoint, the rate limits
        (``tokens``: the request's reserved maximum cost); a chat reply is counted in :attr:`health`."""
        upstream = self._upstreams.get(endpoint)
        if upstream is None:
            raise UpstreamUnavailable(f"the broker has no upstream for {endpoint}: configure one "
                                      "(--chat-base-url / --embed-base-url) or replay from a cassette")
        model = str(body.get("model") or endpoint)
        limited = self.limiter.enabled and isinstance(upstream, OpenAIUpstream)
        with self._slots:
            permit = self.limiter.acquire(model, tokens) if limited else None
            reply: dict[str, Any] | None = None
            try:
                reply = upstream.post(endpoint, body)
            finally:
                if permit is not None:
                    self.limiter.settle(permit, _used(reply))
        kind = self.health.record(model, reply) if endpoint == "/chat/completions" else None
        return Forwarded(reply, permit.waited_s if permit else 0.0, kind)

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for s in sessions:
            s.close()
        for upstream in self._upstreams.values():
            if upstream is not None:
                upstream.close()

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    # socketserver's default backlog is 5: a job with more requests at once (concurrent episodes) would see a
    # client with a timeout (non-blocking connect) fail with EAGAIN whenever the accept loop lags behind
    request_queue_size = 128
    session: BrokerSession


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("broker %s: " + format, self.server.session.job_id, *args)

    def address_string(self) -> str:
        return "sandbox"

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.rstrip("/").endswith("/models"):
            broker = self.server.session.broker
            names = broker.config.models or [m for m in (broker.policy.chat_model,) if m]
            self._reply(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in names]})
        else:
            self._reply(404, _error(f"no route GET {self.path}", "not_found"))

    def do_POST(self) -> None:  # noqa: N802
        endpoint = next((e for e in ENDPOINTS if self.path.split("?")[0].rstrip("/").endswith(e)), None)
        try:
            length = int(self.headers.get("Content-Length") or -1)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            self._reply(413 if length > MAX_BODY else 411, _error(f"request body must have a Content-Length "
                                                                  f"of at most {MAX_BODY} bytes", "invalid_request"))
            return
        raw = self.rfile.read(length)
        if endpoint is None:
            self._reply(404, _error(f"no route POST {self.path}", "not_found"))
            return
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            self._reply(400, _error(f"request body is not a JSON object: {exc}", "invalid_request"))
            return
        status, reply = self.server.session.handle(endpoint, body)
        self._reply(status, reply)


def _error(message: str, code: str) -> dict[str, Any]:
    return {"error": {"message": f"alma broker: {message}", "type": code, "code": code}}


@dataclass(frozen=True)
class Forwarded:
    """An upstream reply, how long it waited for the rate limits, and (chat) its kind in :attr:`Broker.health`."""

    reply: dict[str, Any]
    rate_wait_s: float = 0.0
    kind: str | None = None


def _used(reply: dict[str, Any] | None) -> int | None:
    """The tokens a reply reports using, or None when it reports none."""
    usage = reply.get("usage") if isinstance(reply, dict) else None
    if not isinstance(usage, dict):
        return None
    total = _tokens(usage.get("total_tokens"))
    if total is not None:
        return total
    prompt = _tokens(usage.get("prompt_tokens"))
    return None if prompt is None else prompt + (_tokens(usage.get("completion_tokens")) or 0)


def _tokens(value: Any) -> int | None:
    """A token count from a reply's usage, or None when it is not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return None
    return max(0, int(min(value, 2**62)))


class BrokerSession:
    """One job's socket, budget, usage and events."""

    def __init__(self, broker: Broker, job_id: str, budget: Budget, *, client_uid: int | None,
                 socket_dir: Path | None):
        self.broker, self.job_id, self.budget = broker, job_id, budget
        self.requests = self.prompt_tokens = self.completion_tokens = self.cassette_hits = 0
        self.refused = 0  # requests refused by the policy
        self.reserved = 0  # tokens held by the requests in flight (see _admit)
        #: the tokens above split by endpoint and by source (what a price table needs: embeddings are priced
        #: apart, and a reply served from the cassette was paid for once, when it was recorded)
        self.split: Counter[str] = Counter()
        self.rate_wait_s = 0.0  # time this session's requests waited for the upstream's rate limits
        self.replies: Counter[str] = Counter()  # chat replies forwarded upstream, by kind (sandbox.model_health)
        self.events: list[dict[str, Any]] = []
        self._clamped: set[str] = set()
        self._occurrences: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._own_dir = socket_dir is None
        self.socket_dir = Path(socket_dir or tempfile.mkdtemp(prefix="alma-b-"))
        self.socket_path = self.socket_dir / SOCKET_NAME
        if len(str(self.socket_path)) > 100:
            raise BrokerError(f"socket path {self.socket_path} is too long for a Unix socket (max ~100 bytes)")
        try:
            self.server = _Server(str(self.socket_path), _Handler)
        except OSError as exc:
            raise BrokerError(f"cannot listen on {self.socket_path}: {exc}") from exc
        self.server.session = self
        self._secure_socket(client_uid)
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name=f"broker-{job_id}")
        self._thread.start()

    def _secure_socket(self, client_uid: int | None) -> None:
        self.socket_dir.chmod(0o711)
        if client_uid is not None and os.geteuid() == 0:
            os.chown(self.socket_path, client_uid, -1)
            self.socket_path.chmod(0o600)
        elif client_uid is None or client_uid == os.getuid():
            self.socket_path.chmod(0o600)
        else:
            self.socket_path.chmod(0o666)  # another uid must connect and we cannot chown

    def alive(self) -> bool:
        return self._thread.is_alive() and self.socket_path.exists()

    def _event(self, event: str, detail: str) -> None:
        with self._lock:
            if len(self.events) < MAX_EVENTS:
                self.events.append({"kind": "broker", "event": event, "detail": detail[:500]})

    def usage(self) -> dict[str, int]:
        with self._lock:
            return {"requests": self.requests, "prompt_tokens": self.prompt_tokens,
                    "completion_tokens": self.completion_tokens, "cassette_hits": self.cassette_hits,
                    "refused": self.refused, **{k: self.split[k] for k in SPLIT_COUNTERS},
                    "rate_wait_ms": round(self.rate_wait_s * 1000),
                    **{USAGE_KEYS[k]: self.replies[k] for k in KINDS}}

    def _admit(self, cost: int) -> str | None:
        """Count the request and reserve its maximum cost, or say why the budget does not allow it."""
        with self._lock:
            b = self.budget
            if b.max_requests is not None and self.requests >= b.max_requests:
                return f"job {self.job_id} used its request budget ({b.max_requests} requests)"
            used = self.prompt_tokens + self.completion_tokens
            if b.max_tokens is not None and used + self.reserved + cost > b.max_tokens:
                return (f"job {self.job_id} used its token budget ({used} of {b.max_tokens} tokens used, "
                        f"{self.reserved} reserved by requests in flight, and this request may cost up to {cost})")
            self.requests += 1
            self.reserved += cost
            return None

    def _settle(self, admitted: Admitted, reply: dict[str, Any] | None, endpoint: str = "/chat/completions",
                from_cassette: bool = False) -> None:
        """Replace the request's reservation by what it used (nothing when it failed)."""
        prompt = completion = 0
        if isinstance(reply, dict):
            usage = reply.get("usage")
            reported = _tokens(usage.get("prompt_tokens")) if isinstance(usage, dict) else None
            if reported is not None:
                prompt, completion = reported, _tokens(usage.get("completion_tokens")) or 0
            else:  # no usage reported: the bounds (a token is at least one byte of the reply)
                choices = reply.get("choices")
                text = "".join(str((c.get("message") or {}).get("content") or "") for c in
                               (choices if isinstance(choices, list) else []) if isinstance(c, dict))
                prompt = admitted.prompt_tokens
                completion = min(admitted.completion_tokens, len(text.encode("utf-8", "replace")))
        with self._lock:
            self.reserved -= admitted.cost
            self.prompt_tokens += prompt
            self.completion_tokens += completion
            for prefix in ("", "cassette_") if from_cassette else ("",) if reply is not None else ():
                if endpoint == "/embeddings":
                    self.split[f"{prefix}embed_requests"] += 1
                    self.split[f"{prefix}embed_tokens"] += prompt + completion
                else:
                    self.split[f"{prefix}chat_requests"] += 1
                    self.split[f"{prefix}chat_prompt_tokens"] += prompt
                    self.split[f"{prefix}chat_completion_tokens"] += completion

    def handle(self, endpoint: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Answer one request: policy, budget, then cassette, then upstream. Returns (HTTP status, JSON body)."""
        try:
            admitted = sanitise(endpoint, body, self.broker.policy)
        except Refused as exc:
            with self._lock:
                self.refused += 1
            self._event("refused", f"{endpoint}: {exc}")
            return 400, _error(f"refused: {exc}", "refused")
        with self._lock:
            first = [d for name, d in admitted.clamped.items() if name not in self._clamped]
            self._clamped.update(admitted.clamped)
        for detail in first:
            self._event("clamped", f"{endpoint}: {detail} (the first such request of this job)")
        refused = self._admit(admitted.cost)
        if refused:
            self._event("budget_exceeded", refused)
            return 402, _error(f"{refused}; the job may not make more model requests", "budget_exceeded")
        status, reply, from_cassette = 500, _error("internal error", "broker_error"), False
        try:
            status, reply, from_cassette = self._answer(endpoint, admitted.body, admitted.cost)
        finally:
            self._settle(admitted, reply if status == 200 else None, endpoint, from_cassette)
        return status, reply

    def _answer(self, endpoint: str, body: dict[str, Any], cost: int = 0) -> tuple[int, dict[str, Any], bool]:
        """(HTTP status, JSON body, whether the cassette answered)."""
        cassette = self.broker.cassette
        key = request_key(endpoint, body)
        with self._lock:
            occurrence = self._occurrences[key]
            self._occurrences[key] += 1
        if cassette is not None and cassette.reads:
            reply = cassette.lookup(key, occurrence)
            if reply is not None:
                with self._lock:
                    self.cassette_hits += 1
                return 200, reply, True
            if cassette.mode == "replay":
                self._event("cassette_miss", f"{endpoint} {key[:16]}-{occurrence}")
                return 404, _error(f"replay: no recorded response for this {endpoint} request (key {key[:16]}, "
                                   f"occurrence {occurrence}); record the job first", "cassette_miss"), False
        try:
            forwarded = self.broker.forward(endpoint, body, tokens=cost)
        except UpstreamRejected as exc:
            return exc.status, (exc.body if isinstance(exc.body, dict) else _error(str(exc.body), "upstream")), False
        except UpstreamUnavailable as exc:
            self._event("upstream_error", str(exc))
            return 502, _error(f"upstream failed: {exc}", "upstream_unavailable"), False
        except Exception as exc:  # noqa: BLE001 - a broker bug must not hang the job
            log.exception("broker session %s: %s failed", self.job_id, endpoint)
            self._event("broker_error", f"{type(exc).__name__}: {exc}")
            return 500, _error(f"internal error: {type(exc).__name__}", "broker_error"), False
        reply = forwarded.reply
        self._forwarded(forwarded, str(body.get("model")))
        if cassette is not None and cassette.writes:
            cassette.store(key, occurrence, endpoint, body, reply)
        return 200, reply, False

    def _forwarded(self, forwarded: Forwarded, model: str) -> None:
        """Count an upstream reply's rate-limit wait and kind; the first of each is an event."""
        with self._lock:
            first_wait = forwarded.rate_wait_s > 0 and self.rate_wait_s == 0
            self.rate_wait_s += forwarded.rate_wait_s
            first_kind = forwarded.kind in REPLY_EVENTS and not self.replies[forwarded.kind]
            if forwarded.kind is not None:
                self.replies[forwarded.kind] += 1
        if first_wait:
            self._event("rate_limited", f"model {model}: waited {forwarded.rate_wait_s:.2f} s for the upstream's "
                                        f"rate limits ({self.broker.limiter.describe()}; the first wait of this "
                                        "job, usage rate_wait_ms counts them all)")
        if first_kind:
            event, what = REPLY_EVENTS[forwarded.kind]
            self._event(event, f"model {model}: {what} (the first of this job; usage {USAGE_KEYS[forwarded.kind]} "
                               "counts them all)")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.server.shutdown()
            self.server.server_close()
        with contextlib.suppress(OSError):
            self.socket_path.unlink()
        if self._own_dir:
            shutil.rmtree(self.socket_dir, ignore_errors=True)
