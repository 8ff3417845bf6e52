"""The uid boundary between the scorer and the design's worker, inside both sandbox backends: the worker runs
as a second uid with no capabilities, cannot touch what the harness owns or signal it, every process it leaves
behind is reported and killed after the call, and modules it plants in its scratch are never imported."""

from __future__ import annotations

import json

from tests.test_sandbox_backends import backend, snippet_job  # noqa: F401 - the fixture is used by name

PRELUDE = r'''
import asyncio, json, os, signal, sys
from pathlib import Path
from harness.isolation import procs
from harness.isolation.proxy import IsolatedDesign
from harness.models.factory import ModelSettings, open_models
from harness.types import Task

TASK = Task(task_id="t1", benchmark="textworld", goal="find the key", observation="a hall")
root = Path("/tmp/h")
(root / "designs").mkdir(parents=True)
(root / "designs").chmod(0o1733)
private = root / "private"
private.mkdir(mode=0o700)
(private / "result.json").write_text("{}")
root.chmod(0o711)

def run(source, calls=1, events=None):
    with open_models(ModelSettings(embedder="hashing", chat_base_url="http://127.0.0.1:9/v1")) as models:
        d = IsolatedDesign(source, "d", root / "designs" / f"s{len(os.listdir(root / 'designs'))}", models,
                           timeout_s=30, events=events if events is not None else [],
                           log_path=private / f"log{os.getpid()}")
        try:
            values = [asyncio.run(d.retrieve(TASK)) for _ in range(calls)]
        finally:
            d.close()
    return d, values
'''

HEAD = "from harness.design import MemoryDesign\nclass D(MemoryDesign):\n    async def retrieve(self, task):\n"


def run_inside(backend, code: str) -> dict:  # noqa: F811 - backend is the fixture's value
    outcome = backend.run(snippet_job(PRELUDE + code, pids=128, memory_mb=1024, wall_s=120))
    assert outcome.outcome.value == "ok", (outcome.outcome, outcome.stderr[-3000:])
    return json.loads(outcome.stdout.strip().splitlines()[-1])


def test_worker_has_its_own_uid_and_cannot_touch_the_harness(backend):  # noqa: F811
    body = HEAD + """        import os, signal
        out = {"uid": os.getuid(), "caps": open("/proc/self/status").read().split("CapEff:")[1].split()[0]}
        tries = {"write": lambda: open("/tmp/h/private/result.json", "w").write("forged"),
                 "list": lambda: os.listdir("/tmp/h/private"),
                 "setuid": lambda: os.setuid(0),
                 "signal": lambda: os.kill(os.getppid(), signal.SIGSTOP)}
        for name, fn in tries.items():
            try:
                fn()
                out[name] = "done"
            except Exception as exc:
                out[name] = type(exc).__name__
        return {"text": "", "out": out}
"""
    got = run_inside(backend, f"""
d, values = run({body!r})
print(json.dumps({{"harness_uid": os.getuid(), "worker": values[0]["out"], "design_uid": d.uid,
                  "result": (private / "result.json").read_text()}}))
""")
    worker = got["worker"]
    assert worker["uid"] == got["design_uid"] != got["harness_uid"]
    assert worker["caps"] == "0000000000000000"
    assert {worker[k] for k in ("write", "list", "setuid", "signal")} == {"PermissionError"}
    assert got["result"] == "{}"


def test_a_daemon_left_behind_is_reported_and_killed_after_the_call(backend):  # noqa: F811
    # the design switches its audit hook off (as an attacker would) so that it may fork at all
    body = HEAD + """        import builtins, os, time
        for cell in builtins.__import__.__closure__ or ():
            if hasattr(cell.cell_contents, "armed"):
                cell.cell_contents.armed = False
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(300)
            os._exit(0)
        os.wait()
        return {"text": "forked"}
"""
    got = run_inside(backend, f"""
events = []
d, values = run({body!r}, events=events)
print(json.dumps({{"events": events, "left": procs.processes_of(d.uid), "values": values}}))
""")
    assert got["values"] == [{"text": "forked"}]
    assert got["left"] == []
    kinds = {(e["kind"], e["event"]) for e in got["events"]}
    assert ("process", "stray_process") in kinds
    assert ("tamper", "audit_hook") in kinds


def test_modules_planted_in_scratch_are_never_imported(backend):  # noqa: F811
    body = HEAD + """        import json, sys
        scratch = self.toolkit.scratch_dir
        for name in ("json.py", "statistics.py", "sitecustomize.py", "usercustomize.py"):
            (scratch / name).write_text("PLANTED = True\\n")
        return {"text": str(getattr(json, "PLANTED", False)),
                "writable_on_path": [p for p in sys.path if os.access(p, os.W_OK)] if (os := __import__("os")) else 0}
"""
    got = run_inside(backend, f"""
src = {body!r}
d, first = run(src)
# a second worker over the same scratch directory (as a new phase would start)
with open_models(ModelSettings(embedder="hashing", chat_base_url="http://127.0.0.1:9/v1")) as models:
    again = IsolatedDesign(src, "d", d.scratch_dir, models, timeout_s=30, log_path=private / "again")
    try:
        second = asyncio.run(again.retrieve(TASK))
    finally:
        again.close()
print(json.dumps({{"first": first[0], "second": second}}))
""")
    assert got["second"] == {"text": "False", "writable_on_path": []}
