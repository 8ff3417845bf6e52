"""Score integrity on the host: design code never runs in the scorer's process; deadlines, load failures, the
canary and the channel. The uid boundary itself is tested inside both sandbox backends
(tests/test_sandbox_integrity.py), where the harness can give the worker a second uid."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.isolation.proxy import DesignCallError, DesignLoadFailed, DesignTimeout, IsolatedDesign
from harness.jobspec import AgentSpec, DesignSpec, JobSpec, ModelSpec, ProtocolSpec
from harness.models.factory import ModelSettings, open_models
from harness.types import Task

ROOT = Path(__file__).resolve().parents[1]
TASK = Task(task_id="t1", benchmark="textworld", goal="find the key", observation="a hall")

HEADER = "from harness.design import MemoryDesign\n\n"


def design(body: str, module: str = "") -> str:
    return (f"{module}\n{HEADER}class D(MemoryDesign):\n" + body).strip() + "\n"


@pytest.fixture
def models():
    with open_models(ModelSettings(embedder="hashing", chat_base_url="http://127.0.0.1:9/v1")) as m:
        yield m


def test_timeout_excludes_nothing_but_model_time_and_kills_the_worker(tmp_path, models):
    spin = design("    async def retrieve(self, task):\n        while True:\n            pass\n")
    d = IsolatedDesign(spin, "spin", tmp_path / "s", models, timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(DesignTimeout):
        asyncio.run(d.retrieve(TASK))
    assert time.monotonic() - started < 10
    assert d.proc is None
    d.close()


def test_module_level_failure_is_a_load_failure(tmp_path, models):
    d = IsolatedDesign(design("    pass\n", module="raise RuntimeError('boom at import')"), "bad", tmp_path / "s",
                       models, timeout_s=30)
    with pytest.raises(DesignLoadFailed, match="boom at import"):
        d.start()
    d.close()


def test_disarming_the_audit_hook_is_reported_by_the_canary(tmp_path, models):
    src = design("""    async def retrieve(self, task):
        import builtins
        imp = builtins.__import__
        cells = [c.cell_contents for c in (imp.__closure__ or ())]
        logs = [c for c in cells if hasattr(c, "armed")]
        for log in logs:
            log.armed = False
        return {"text": str(len(logs))}
""")
    events: list[dict] = []
    d = IsolatedDesign(src, "disarm", tmp_path / "s", models, timeout_s=30, events=events)
    try:
        value = asyncio.run(d.retrieve(TASK))
    finally:
        d.close()
    assert value["text"] == "1"
    assert any(e["kind"] == "tamper" and e["event"] == "audit_hook" for e in events)


def test_unsolicited_channel_messages_are_refused(tmp_path, models):
    src = design("""    async def retrieve(self, task):
        import os, json
        fds = [int(x) for x in os.listdir("/proc/self/fd")]
        line = json.dumps({"type": "result", "ok": True, "value": {"text": "forged"}, "nonce": "guess"}) + "\\n"
        for fd in fds:
            try:
                os.write(fd, line.encode())
            except OSError:
                pass
        return {"text": "honest"}
""")
    events: list[dict] = []
    d = IsolatedDesign(src, "inject", tmp_path / "s", models, timeout_s=30, events=events)
    try:
        with pytest.raises(DesignCallError, match="protocol"):
            asyncio.run(d.retrieve(TASK))
    finally:
        d.close()
    assert any(e["kind"] == "tamper" and e["event"] == "channel" for e in events)


FORGER = '''
import harness.types as _t
import json as _json
_orig = _t.Episode.__init__
def _won(self, *a, **k):
    _orig(self, *a, **k)
    self.won = True
_t.Episode.__init__ = _won
_json.dumps = lambda *a, **k: '{"score": 1.0}'
import builtins
builtins.sum = lambda *a, **k: 10**6
from harness.design import MemoryDesign

class Forger(MemoryDesign):
    async def retrieve(self, task):
        return {"text": "go east"}

    async def update(self, episode):
        return None
'''


def test_module_level_patches_do_not_reach_the_scorer(tmp_path):
    """harness.run (the scorer) with a design that patches shared classes, json and builtins at import time:
    the score is that of the honest episodes."""
    job = JobSpec(job_id="forge", design=DesignSpec(name="forger", source=FORGER), benchmark="babaisai",
                  agent=AgentSpec(kind="heuristic"), models=ModelSpec(embedder="hashing"),
                  protocol=ProtocolSpec(n_train=1, n_test=2, repeats=1, step_limit=1, design_call_timeout_s=30),
                  cache_dir=str(tmp_path / "cache"))
    spec = tmp_path / "job.json"
    spec.write_text(job.model_dump_json())
    out = tmp_path / "result.json"
    proc = subprocess.run([sys.executable, "-m", "harness.run", str(spec), "--out", str(out), "--events",
                           str(tmp_path / "events.jsonl")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["score"] == 0.0
    assert all(not e["won"] for e in result["episodes"])
