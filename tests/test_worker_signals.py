"""What the scorer learns about a design besides its result: output floods and control sequences, rebound
shared objects, a thread left working between calls, a process that died, SQLite files attached outside
scratch, renames and listings outside it, planted code, undecodable messages. Each is a real worker (or a
real audit hook / pipe) doing the thing; an honest design raises none of them."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
import threading
import time

import pytest

from harness.isolation import audit
from harness.isolation.channel import Channel, ChannelGarbled
from harness.isolation.fingerprint import Fingerprint
from harness.isolation.output import LOG_LIMIT, OutputSink
from harness.isolation.proxy import DesignCallError, IsolatedDesign
from harness.models.factory import ModelSettings, open_models
from harness.types import Episode, Task

TASK = Task(task_id="t1", benchmark="unit", goal="find the key", observation="a room")

TEMPLATE = '''
from harness.design import MemoryDesign
{prelude}

class Probe(MemoryDesign):
    async def retrieve(self, task):
{retrieve}
        return {{"text": "ok"}}

    async def update(self, episode):
        return None
'''


def _design(prelude: str = "", retrieve: str = "        pass") -> str:
    return TEMPLATE.format(prelude=prelude, retrieve=retrieve)


@pytest.fixture
def models(openai_server):
    with open_models(ModelSettings(chat_base_url=openai_server.base_url, chat_model="test-model",
                                   embedder="hashing")) as m:
        yield m


def _run(source: str, tmp_path, models, calls: int = 2) -> list[dict]:
    events: list[dict] = []
    design = IsolatedDesign(source, "probe", tmp_path / "scratch", models, timeout_s=30, events=events,
                            log_path=tmp_path / "probe.log")
    try:
        for _ in range(calls):
            try:
                asyncio.run(design.retrieve(TASK))
            except DesignCallError:
                pass
            asyncio.run(design.update(Episode(task=TASK)))
    finally:
        design.close()
    return events


def _names(events: list[dict]) -> set[str]:
    return {f"{e['kind']}:{e['event']}" for e in events}


def test_an_honest_design_raises_no_signal(tmp_path, models):
    source = _design("import json\nimport sqlite3",
                     "        conn = sqlite3.connect(self.toolkit.db_path)\n"
                     "        conn.execute('CREATE TABLE IF NOT EXISTS t (x)')\n"
                     "        conn.close()\n"
                     "        print(json.dumps({'note': 'hello'}))\n"
                     "        (self.toolkit.scratch_dir / 'notes.txt').write_text('x')")
    assert _run(source, tmp_path, models) == []


def test_flooded_and_escaped_output_is_reported_and_the_log_stays_bounded(tmp_path, models):
    source = _design('CHUNK = "x" * 2**20',
                     "        for _ in range(3):\n            print(CHUNK, flush=True)\n"
                     "        print('\\x1b[2J fake outcome=ok', flush=True)")
    events = _run(source, tmp_path, models, calls=1)
    assert {"limit:output", "output:control_sequences"} <= _names(events)
    assert (tmp_path / "probe.log").stat().st_size <= LOG_LIMIT


def test_rebinding_shared_objects_is_tamper(tmp_path, models):
    source = _design("import json\nimport builtins\nfrom harness.types import Episode",
                     "        json.dumps = lambda *a, **k: '{}'\n        builtins.sum = len\n"
                     "        Episode.won = True")
    events = _run(source, tmp_path, models, calls=1)
    tamper = [e for e in events if (e["kind"], e["event"]) == ("tamper", "interpreter")]
    assert tamper and tamper[0]["refused"]
    for name in ("json.dumps", "builtins.sum", "harness.types.Episode.won"):
        assert name in tamper[0]["detail"], tamper[0]["detail"]


def test_a_thread_left_spinning_between_calls_is_reported(tmp_path, models):
    source = _design("import asyncio\n\ndef _spin():\n    while True:\n        pass",
                     "        asyncio.get_running_loop().run_in_executor(None, _spin)")
    assert "limit:background_cpu" in _names(_run(source, tmp_path, models, calls=1))


def test_a_worker_that_dies_mid_call_is_reported(tmp_path, models):
    source = _design("import os", "        os._exit(0)")
    assert "worker:died" in _names(_run(source, tmp_path, models, calls=1))


def test_sqlite_attach_rename_listing_and_planted_code_in_the_hook(tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    log = audit.AuditLog(str(scratch), [sys.prefix])
    conn = sqlite3.connect(scratch / "db.sqlite")
    conn.set_authorizer(log.sqlite_authorizer)
    log.armed = True
    for sql in (f"ATTACH DATABASE '{tmp_path / 'out.db'}' AS o", f"VACUUM INTO '{tmp_path / 'result.json'}'"):
        with pytest.raises(sqlite3.DatabaseError):
            conn.execute(sql)
    conn.execute(f"ATTACH DATABASE '{scratch / 'other.db'}' AS ok")  # inside scratch: allowed
    assert not (tmp_path / "out.db").exists() and not (tmp_path / "result.json").exists()
    with pytest.raises(PermissionError):
        log.hook("os.rename", (str(scratch / "a"), str(tmp_path / "result.json"), None, None))
    with pytest.raises(PermissionError):
        log.hook("os.symlink", ("/etc/passwd", str(tmp_path / "link"), None))
    log.hook("os.listdir", ("/etc",))
    log.hook("open", (str(scratch / "json.py"), "w", 0))
    log.hook("open", (str(scratch / "notes.txt"), "w", 0))
    found = {(e["event"], e["detail"]) for e in log.drain()}
    assert ("sqlite3.attach", str(tmp_path / "out.db")) in found
    assert ("sqlite3.attach", str(tmp_path / "result.json")) in found
    assert ("os.rename", str(tmp_path / "result.json")) in found
    assert ("os.symlink", str(tmp_path / "link")) in found
    assert ("os.listdir", "/etc") in found
    assert ("planted_code", str(scratch / "json.py")) in found
    assert not any(d.endswith("notes.txt") or d.endswith("other.db") for _, d in found)


def test_fingerprint_names_what_changed_and_nothing_else():
    print_before = Fingerprint()
    assert print_before.changes() == []
    real = json.dumps
    try:
        json.dumps = lambda *a, **k: "{}"
        assert print_before.changes() == ["json.dumps"]
    finally:
        json.dumps = real
    assert print_before.changes() == []


def test_an_undecodable_or_too_deep_message_is_garbled_not_a_crash():
    read_fd, write_fd = os.pipe()
    channel = Channel(read_fd, write_fd)
    deep = b"[" * 200_000 + b"]" * 200_000 + b"\n"  # larger than a pipe's buffer: written from a thread
    writer = threading.Thread(target=lambda: os.write(write_fd, deep) and None)
    try:
        writer.start()
        with pytest.raises(ChannelGarbled):
            channel.recv(deadline=time.monotonic() + 30)
        writer.join(30)
        os.write(write_fd, b"not json\n")
        with pytest.raises(ChannelGarbled):
            channel.recv()
    finally:
        channel.close()


def test_output_sink_counts_without_storing_past_its_limit(tmp_path):
    sink = OutputSink(tmp_path / "log")
    fd = sink.attach()
    for _ in range(3):
        os.write(fd, b"y" * LOG_LIMIT)
    os.close(fd)
    sink.settle(5)
    assert sink.total == 3 * LOG_LIMIT
    assert (tmp_path / "log").stat().st_size == LOG_LIMIT
    assert [e["event"] for e in sink.events()] == ["output"]
    assert sink.events() == []  # reported once
