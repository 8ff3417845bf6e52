"""Score integrity: design code never runs in the scorer's process, the worker has its own uid (as root), no
process of the design outlives its call, and the channel, the canary and sys.path resist tampering."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.isolation import procs
from harness.isolation.proxy import DesignCallError, DesignLoadFailed, DesignTimeout, IsolatedDesign
from harness.jobspec import AgentSpec, DesignSpec, JobSpec, ModelSpec, ProtocolSpec
from harness.models.factory import ModelSettings, open_models
from harness.types import Task

ROOT = Path(__file__).resolve().parents[1]
TASK = Task(task_id="t1", benchmark="textworld", goal="find the key", observation="a hall")
as_root = pytest.mark.skipif(os.geteuid() != 0 or procs.design_uid() is None,
                             reason="a second uid for the worker needs root (or CAP_SETUID) and setpriv")

HEADER = "from harness.design import MemoryDesign\n\n"


def design(body: str, module: str = "") -> str:
    return (f"{module}\n{HEADER}class D(MemoryDesign):\n" + body).strip() + "\n"


@pytest.fixture
def models():
    with open_models(ModelSettings(embedder="hashing", chat_base_url="http://127.0.0.1:9/v1")) as m:
        yield m


@as_root
def test_worker_runs_under_its_own_uid_and_cannot_touch_harness_files(tmp_path, models):
    secret = tmp_path / "private" / "result.json"
    secret.parent.mkdir(mode=0o700)
    secret.write_text("{}")
    tmp_path.chmod(0o755)
    src = design(f"""    async def retrieve(self, task):
        import os
        out = {{"uid": os.getuid(), "euid": os.geteuid()}}
        for name, fn in (("write", lambda: open({str(secret)!r}, "w").write("forged")),
                         ("setuid", lambda: os.setuid(0))):
            try:
                fn()
                out[name] = "done"
            except Exception as exc:
                out[name] = type(exc).__name__
        return {{"text": "", "out": out}}
""")
    d = IsolatedDesign(src, "uid", tmp_path / "designs" / "s", models, timeout_s=30)
    try:
        out = asyncio.run(d.retrieve(TASK))["out"]
    finally:
        d.close()
    assert out["uid"] == out["euid"] == d.uid != os.getuid()
    assert out["write"] == "PermissionError" and out["setuid"] == "PermissionError"
    assert secret.read_text() == "{}"


@as_root
def test_stray_processes_are_killed_after_every_call(tmp_path, models):
    """A process of the design's uid started behind the worker's back (here by the test, as the design's uid
    would) is reported and killed when the next call ends."""
    d = IsolatedDesign(design("    async def retrieve(self, task):\n        return {'text': 'x'}\n"), "s",
                       tmp_path / "s", models, timeout_s=30, events=(events := []))
    try:
        asyncio.run(d.retrieve(TASK))
        stray = subprocess.Popen(procs.worker_command(d.uid, ["sleep", "300"]), start_new_session=True)
        time.sleep(0.3)
        assert asyncio.run(d.retrieve(TASK)) == {"text": "x"}
        assert stray.wait(timeout=5) == -9
    finally:
        d.close()
    assert any(e["kind"] == "process" and "sleep" in e["detail"] for e in events)


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


@as_root
def test_modules_planted_in_scratch_are_not_imported_by_the_next_worker(tmp_path, models):
    src = design("""    async def retrieve(self, task):
        import json, sys
        planted = self.toolkit.scratch_dir / "json.py"
        if not planted.exists():
            planted.write_text("PLANTED = True\\n")
            (self.toolkit.scratch_dir / "statistics.py").write_text("PLANTED = True\\n")
        return {"text": str(getattr(json, "PLANTED", False)), "path": [p for p in sys.path if "scratch" in p]}
""")
    scratch = tmp_path / "s"
    first = IsolatedDesign(src, "plant", scratch, models, timeout_s=30)
    try:
        asyncio.run(first.retrieve(TASK))
    finally:
        first.close()
    second = IsolatedDesign(src, "plant", scratch, models, timeout_s=30)
    try:
        value = asyncio.run(second.retrieve(TASK))
    finally:
        second.close()
    assert value == {"text": "False", "path": []}


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
