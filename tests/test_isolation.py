"""Score integrity: the design runs in its own worker process; audit hooks refuse and record hostile acts."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from harness.isolation.proxy import DesignCallError, DesignTimeout, IsolatedDesign
from harness.models.factory import ModelSettings, open_models
from harness.types import Episode, Step, Task

TASK = Task(task_id="t1", benchmark="textworld", goal="find the key", observation="a hall")

HOSTILE = '''
import os
from harness.design import MemoryDesign

class Hostile(MemoryDesign):
    async def retrieve(self, task):
        outcome = {}
        def attempt(name, fn):
            try:
                fn()
                outcome[name] = "done"
            except Exception as exc:
                outcome[name] = type(exc).__name__
        import subprocess
        import socket
        attempt("subprocess", lambda: subprocess.run(["true"]))
        attempt("system", lambda: os.system("true"))
        attempt("fork", lambda: os.fork())
        attempt("connect", lambda: socket.create_connection(("127.0.0.1", 9), timeout=1))
        attempt("write_outside", lambda: open(TARGET, "w").write("forged"))
        attempt("write_scratch", lambda: (self.toolkit.scratch_dir / "ok.txt").write_text("fine"))
        import gc
        attempt("gc", lambda: gc.get_objects())
        attempt("ctypes", lambda: __import__("ctypes").CDLL(None))
        outcome["pid"] = os.getpid()
        outcome["secret"] = os.environ.get("ALMA_TEST_FAKE_API_KEY", "absent")
        return {"text": "", "outcome": outcome}
'''

COUNTER = '''
from harness.design import MemoryDesign

class Counter(MemoryDesign):
    def _path(self):
        return self.toolkit.scratch_dir / "count.txt"

    async def retrieve(self, task):
        n = int(self._path().read_text()) if self._path().exists() else 0
        note = await self.toolkit.llm.complete("say hi")
        vec = await self.toolkit.embed(["a b c"])
        return {"text": f"count={n}", "llm": note, "dim": len(vec[0])}

    async def update(self, episode):
        n = int(self._path().read_text()) if self._path().exists() else 0
        self._path().write_text(str(n + (2 if episode.won else 1)))
'''


@pytest.fixture
def models(openai_server):
    with open_models(ModelSettings(chat_base_url=openai_server.base_url, chat_model="test-model",
                                   embedder="hashing")) as m:
        yield m


def test_hostile_design_is_refused_and_recorded(tmp_path, models, monkeypatch):
    target = tmp_path / "result.json"
    monkeypatch.setenv("ALMA_TEST_FAKE_API_KEY", "sk-planted-secret")
    events: list[dict] = []
    design = IsolatedDesign(HOSTILE.replace("TARGET", repr(str(target))), "hostile", tmp_path / "scratch",
                            models, timeout_s=30, events=events)
    try:
        value = asyncio.run(design.retrieve(TASK))
    finally:
        design.close()
    outcome = value["outcome"]
    for name in ("subprocess", "system", "fork", "connect", "write_outside", "gc", "ctypes"):
        assert outcome[name] == "PermissionError", (name, outcome)
    assert outcome["write_scratch"] == "done"
    assert outcome["pid"] != os.getpid()
    assert outcome["secret"] == "absent"
    assert not target.exists()
    kinds = {e["kind"] for e in events if e["refused"]}
    assert {"subprocess", "fork", "network", "file_write", "tamper", "ctypes"} <= kinds
    assert any(e["kind"] == "import" and e["detail"] == "subprocess" for e in events)


def test_model_calls_are_forwarded_and_metered_and_state_lives_in_scratch(tmp_path, models, openai_server):
    scratch = tmp_path / "scratch"
    design = IsolatedDesign(COUNTER, "counter", scratch, models, timeout_s=30)
    try:
        first = asyncio.run(design.retrieve(TASK))
        episode = Episode(task=TASK, steps=[Step(action="go east", observation="room")], won=True)
        asyncio.run(design.update(episode))
        second = asyncio.run(design.retrieve(TASK))
    finally:
        design.close()
    assert first["text"] == "count=0" and second["text"] == "count=2"
    assert first["llm"].startswith("reply to: say hi") and first["dim"] == 256
    assert models.meter.snapshot()["test-model"]["requests"] == 2
    reopened = IsolatedDesign(COUNTER, "counter", scratch, models, timeout_s=30)
    try:
        assert asyncio.run(reopened.retrieve(TASK))["text"] == "count=2"
    finally:
        reopened.close()


def test_timeout_crash_and_errors_are_contained(tmp_path, models):
    slow = COUNTER.replace('n = int(self._path().read_text()) if self._path().exists() else 0\n        note',
                           'import time\n        time.sleep(60)\n        note')
    design = IsolatedDesign(slow, "slow", tmp_path / "a", models, timeout_s=1.5)
    with pytest.raises(DesignTimeout, match="deadline"):
        asyncio.run(design.retrieve(TASK))
    assert design.proc is None  # killed
    design.close()
    crash = COUNTER.replace("n = int(self._path().read_text()) if self._path().exists() else 0\n        note",
                            "import os\n        os._exit(7)\n        note")
    design = IsolatedDesign(crash, "crash", tmp_path / "b", models, timeout_s=10)
    with pytest.raises(DesignCallError, match="died"):
        asyncio.run(design.retrieve(TASK))
    design.close()
    broken = COUNTER.replace("return {", "raise ValueError('bad memory')\n        return {")
    design = IsolatedDesign(broken, "broken", tmp_path / "c", models, timeout_s=10)
    with pytest.raises(DesignCallError, match="bad memory"):
        asyncio.run(design.retrieve(TASK))
    # the worker survives a design exception: the next call runs in the same process
    pid = design.proc.pid
    asyncio.run(design.update(Episode(task=TASK)))
    assert design.proc.pid == pid
    design.close()
    assert not Path(tmp_path / "c" / "result.json").exists()


def test_allowed_libraries_that_load_native_code_still_import(tmp_path, models):
    source = ("import numpy as np\nfrom harness.design import MemoryDesign\n\nclass NP(MemoryDesign):\n"
              "    async def retrieve(self, task):\n        return {'text': str(float(np.mean([1.0, 3.0])))}\n\n"
              "    async def update(self, episode):\n        return None\n")
    design = IsolatedDesign(source, "np", tmp_path / "s", models, timeout_s=30)
    try:
        assert asyncio.run(design.retrieve(TASK)) == {"text": "2.0"}
    finally:
        design.close()
