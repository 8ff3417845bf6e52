"""engine.replay.cli end to end on a real small run (BabaIsAI, bubblewrap): exact offline reproduction from the
cassette with no upstream reachable, --live differences, hostile designs, tampering, the run lock.

One run is built per module, in process, the way engine.evolve builds it: two seeds plus a design whose
retrieve calls the toolkit LLM (recorded from the local OpenAI-compatible test server), one structural step,
then four hostile designs evaluated by the same loop. The server is shut down before any replay.
"""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
from pathlib import Path

import pytest

from archive import Archive
from engine.code.genome import Genome
from engine.config import load_config, to_toml
from engine.replay import cli as replay
from engine.search.evaluator import HELDOUT, Evaluator
from engine.search.loop import Evolution, load_seeds
from tests.conftest import REPO
from tests.openai_server import OpenAITestServer

LLM_NOTES = '''"""Asks the toolkit LLM for a hint before every episode; keeps solved action lists in scratch."""
from harness.design import MemoryDesign


class LLMNotes(MemoryDesign):
    async def retrieve(self, task):
        hint = await self.toolkit.llm.complete("hint for: " + task.goal[:60], max_tokens=24)
        path = self.toolkit.scratch_dir / "solved.txt"
        known = path.read_text()[-1500:] if path.exists() else ""
        return {"text": hint + "\\n" + known}

    async def update(self, episode):
        with open(self.toolkit.scratch_dir / "solved.txt", "a") as fh:
            fh.write(("solved: " if episode.won else "tried: ") + " -> ".join(episode.actions[:8]) + "\\n")
'''

HOSTILE_BODY = '''from harness.design import MemoryDesign
{imports}


class {name}(MemoryDesign):
    async def retrieve(self, task):
{body}
        return {{}}

    async def update(self, episode):
        return None
'''
HOSTILE = {
    "network": ("import socket", "try:\n    socket.create_connection(('127.0.0.1', 9), timeout=1)\n"
                "except OSError:\n    pass", ["network"]),
    "file_read": ("", "try:\n    open('/etc/hostname').read()\nexcept OSError:\n    pass",
                  ["file_read", "/etc/hostname"]),
    "subprocess": ("import subprocess", "try:\n    subprocess.run(['id'], check=False)\nexcept OSError:\n    pass",
                   ["subprocess"]),
    "fork_bomb": ("import os",
                  "for _ in range(64):\n    if os.fork() == 0:\n        while True:\n            os.fork()",
                  ["fork", "os.fork"]),
}


def hostile_source(kind: str) -> str:
    imports, body, _ = HOSTILE[kind]
    body = "\n".join("        " + line for line in body.splitlines())
    return HOSTILE_BODY.format(imports=imports, name=kind.title().replace("_", ""), body=body)


def backend_name() -> str:
    from sandbox.backend import select_backend
    from sandbox.errors import SandboxUnavailable

    try:
        select_backend("bubblewrap").close()
        return "bubblewrap"
    except SandboxUnavailable:
        return "none"


def closed_port_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/v1"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished small run: {"dir", "ids" (name -> id), "backend"}."""
    root = tmp_path_factory.mktemp("replay-run")
    seeds = root / "seeds"
    seeds.mkdir()
    for name in ("no_memory", "trajectory_retrieval"):
        shutil.copy(REPO / "seeds" / f"{name}.py", seeds / f"{name}.py")
    (seeds / "llm_notes.py").write_text(LLM_NOTES)
    backend = backend_name()
    run_dir = root / "runs" / "r"
    run_dir.mkdir(parents=True)
    with OpenAITestServer() as server:
        config = load_config(None, {
            "steps": 1, "meta_share": 0.0, "smoke_test": False, "seed": 1, "seeds_dir": str(seeds),
            "eval.benchmark": "babaisai", "eval.n_train": 2, "eval.n_test": 2, "eval.repeats": 1,
            "sandbox.backend": backend, "sandbox.timeout_s": 120, "task.base_url": server.base_url,
            "task.model": "test-model", "task.max_attempts": 1})
        (run_dir / "config.toml").write_text(to_toml(config))
        archive = Archive.open(run_dir, lock=True)
        evaluator = Evaluator(config, run_dir)
        try:
            evo = Evolution(config, run_dir, archive, evaluator, meta_models=None, log=lambda _m: None)
            evo.seed(load_seeds(seeds))
            child = evo.run_step(1)
            ids = {d.name: d.id for d in archive.designs()}
            evo.evaluate(ids["no_memory"], HELDOUT)  # the final table's evaluation on a fresh suite seed
            for kind in HOSTILE:
                g = Genome.from_text(hostile_source(kind), name=kind)
                archive.add_design(g.id, g.source, proposer="test-hostile", name=kind)
                evo.evaluate(g.id, "id")
                ids[kind] = g.id
        finally:
            evaluator.close()
            archive.close()
    assert child is not None and len(ids) == 8
    # from here on no upstream exists: the task model's endpoint is a closed port
    config = load_config(run_dir / "config.toml", {"task.base_url": closed_port_url()})
    (run_dir / "config.toml").write_text(to_toml(config))
    return {"dir": run_dir, "ids": ids, "backend": backend, "child": child}


def do_replay(run_dir: Path, design: str, *extra: str, out: Path) -> tuple[int, dict]:
    code = replay.main([str(run_dir), design, "--out", str(out), *extra])
    return code, json.loads((out / "replay.json").read_text())


def test_every_clean_design_replays_exactly_offline_and_is_recorded(run, tmp_path):
    ids = run["ids"]
    names = ["no_memory", "trajectory_retrieval", "llm_notes", run["child"]]
    for name in names:
        design = ids.get(name, name)[:8]  # a unique prefix is enough
        code, doc = do_replay(run["dir"], design, out=tmp_path / name)
        c = doc["comparison"]
        assert code == 0 and c["exact"], (name, c, doc["integrity"])
        assert c["identical_episodes"] == c["episodes"] == 4 and c["score"] == c["archived_score"]
        assert doc["audit"]["verdict"] == "clean", doc["audit"]["reasons"]
        assert doc["archive"]["recorded"] and doc["archive"]["evaluation_id"]
        assert doc["integrity"]["cassette"]["indexed"]
    report = json.loads((tmp_path / "llm_notes" / "sandbox-report.json").read_text())
    usage = report["broker_usage"]
    assert usage["requests"] == usage["cassette_hits"] == 4  # every LLM call came from the cassette
    runtime = json.loads((tmp_path / "llm_notes" / "replay.json").read_text())["audit"]["runtime"]
    assert runtime["tokens"]["test-model"]["requests"] == 4 and runtime["design_time"]["retrieve"]["calls"] == 4
    assert runtime["memory_peak_mb"] is None or runtime["memory_peak_mb"] > 0
    text = (tmp_path / "llm_notes" / "replay.txt").read_text()
    assert "REPRODUCED EXACTLY" in text and "LLM: 1 call site(s) in retrieve" in text
    with Archive.open(run["dir"], lock=False) as archive:
        replays = [e for e in archive.evaluations(ids["llm_notes"]) if e.purpose == "replay"]
        assert replays and replays[-1].status == "done" and archive.get(ids["llm_notes"]).audit == "clean"
        assert archive.get(ids["llm_notes"]).score_on("babaisai", "id").n == 1  # a replay is never pooled
        assert any(e.payload["design"] == ids["llm_notes"] for e in archive.events("replay"))
    # the export names the replay: verdict and reproduction, next to a module that loads
    from engine import export
    from harness.loader import load_design_file

    assert export.main([str(run["dir"]), ids["llm_notes"], "--out", str(tmp_path / "export")]) == 0
    readme = (tmp_path / "export" / "README.md").read_text()
    assert "verdict clean, reproduced exactly" in readme and "LLM: 1 call site(s) in retrieve" in readme
    assert load_design_file(tmp_path / "export" / "llm_notes.py").__name__ == "LLMNotes"


def test_the_heldout_evaluation_replays_too(run, tmp_path):
    code, doc = do_replay(run["dir"], run["ids"]["no_memory"], "--split", "heldout", out=tmp_path / "h")
    assert code == 0 and doc["comparison"]["exact"] and doc["evaluation"]["split"] == "heldout"
    job = json.loads((tmp_path / "h" / "job.json").read_text())
    assert job["protocol"]["seed"] == 1000  # heldout_seed, not the evolve suite's seed


def test_live_replay_reports_the_difference(run, tmp_path):
    with OpenAITestServer() as server:
        server.script_chat(lambda request: "a completely different hint")
        code, doc = do_replay(run["dir"], run["ids"]["llm_notes"], "--live", "--strict", "--task-base-url",
                              server.base_url, out=tmp_path / "live")
        assert len(server.chat_requests()) == 4
    c = doc["comparison"]
    assert code == 0 and doc["mode"] == "live" and not c["exact"]
    assert c["retrieved_divergence"]["episode"] == 0 and "different hint" in c["retrieved_divergence"]["replayed"]
    limits = doc["audit"]["runtime"]["limits"]
    assert limits["memory_mb"] == 1024 and limits["pids"] == 128 and limits["wall_s"] <= 60
    assert "DIFFERS (live)" in (tmp_path / "live" / "replay.txt").read_text()


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_hostile_designs_come_out_hostile_with_the_reason(run, tmp_path, kind):
    if run["backend"] != "bubblewrap":
        pytest.skip("hostile designs are only run inside bubblewrap")
    code, doc = do_replay(run["dir"], run["ids"][kind], out=tmp_path / kind)
    assert code == 0, doc["comparison"]  # hostile, yet reproduced exactly: the sandbox refused every attempt
    audit = doc["audit"]
    assert audit["verdict"] == "hostile"
    reasons = " ".join(audit["reasons"])
    assert all(word in reasons for word in HOSTILE[kind][2]), reasons
    assert any(r.startswith("static ") for r in audit["reasons"]) or kind == "file_read"
    with Archive.open(run["dir"], lock=False) as archive:
        assert archive.get(run["ids"][kind]).audit == "hostile"
    assert "AUDIT VERDICT: HOSTILE" in (tmp_path / kind / "replay.txt").read_text()


def copy_run(run, tmp_path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(run["dir"], target, ignore=shutil.ignore_patterns("replay-*", "*.lock"))
    return target


def test_tampered_cassette_is_detected_and_not_replayed(run, tmp_path):
    run_dir = copy_run(run, tmp_path)
    entry = sorted((run_dir / "cassette").glob("*/*.json"))[0]
    data = json.loads(entry.read_text())
    data["response"]["choices"][0]["message"]["content"] = "go left forever"
    entry.write_text(json.dumps(data))
    with Archive.open(run_dir, lock=False) as archive:
        before = len(archive.evaluations())
    code, doc = do_replay(run_dir, run["ids"]["llm_notes"], out=tmp_path / "out")
    assert code == replay.EXIT_INTEGRITY and not doc["replayed"]
    assert any("changed since it was recorded" in p for p in doc["integrity"]["problems"])
    assert not (tmp_path / "out" / "sandbox-report.json").exists()
    assert "INTEGRITY: FAILED" in (tmp_path / "out" / "replay.txt").read_text()
    with Archive.open(run_dir, lock=False) as archive:
        assert len(archive.evaluations()) == before


def test_changed_design_source_or_job_is_detected(run, tmp_path):
    run_dir = copy_run(run, tmp_path)
    design = run["ids"]["trajectory_retrieval"]
    job_file = run_dir / "evals" / design / "id" / "job.json"
    job = json.loads(job_file.read_text())
    job["protocol"]["seed"] = 7
    job_file.write_text(json.dumps(job))
    code, doc = do_replay(run_dir, design, out=tmp_path / "job")
    assert code == replay.EXIT_INTEGRITY
    assert any("job.json has seed 7" in p or "seed 7" in p for p in doc["integrity"]["problems"]), doc["integrity"]
    con = sqlite3.connect(run_dir / "archive.sqlite")
    con.execute("UPDATE designs SET source = source || '# edited\n' WHERE id = ?", (run["ids"]["no_memory"],))
    con.commit()
    con.close()
    code, doc = do_replay(run_dir, run["ids"]["no_memory"], out=tmp_path / "src")
    assert code == replay.EXIT_INTEGRITY
    assert any("no longer hashes to its id" in p for p in doc["integrity"]["problems"])


def test_edited_actions_are_a_loud_mismatch_with_the_first_divergence(run, tmp_path):
    run_dir = copy_run(run, tmp_path)
    result_file = run_dir / "evals" / run["ids"]["no_memory"] / "id" / "result.json"
    result = json.loads(result_file.read_text())
    actions = result["episodes"][2]["actions"]
    actions[3] = "idle" if actions[3] != "idle" else "up"
    result_file.write_text(json.dumps(result))
    code, doc = do_replay(run_dir, run["ids"]["no_memory"], out=tmp_path / "out")
    assert code == replay.EXIT_MISMATCH
    v = doc["comparison"]["divergence"]
    assert (v["episode"], v["step"]) == (2, 3) and "step 3" in v["what"]
    assert "MISMATCH" in (tmp_path / "out" / "replay.txt").read_text()


def test_while_an_engine_holds_the_lock_only_report_files_are_written(run, tmp_path):
    design = run["ids"]["no_memory"]
    with Archive.open(run["dir"], lock=True) as engine:
        before = len(engine.evaluations(design))
        code, doc = do_replay(run["dir"], design[:10], out=tmp_path / "out")
        assert code == 0 and not doc["archive"]["recorded"] and "locked" in doc["archive"]["note"]
        assert len(engine.evaluations(design)) == before
    assert (tmp_path / "out" / "replay-result.json").is_file()


def test_bad_input_is_exit_2(run, tmp_path, capsys):
    def err() -> str:
        return " ".join(capsys.readouterr().err.split())  # rich wraps long lines

    assert replay.main([str(tmp_path), "abc"]) == replay.EXIT_INPUT
    assert "not a run directory" in err()
    assert replay.main([str(run["dir"]), "ffffffffff"]) == replay.EXIT_INPUT
    assert "ffffffffff" in err()
    assert replay.main([str(run["dir"]), run["ids"]["no_memory"], "--task-model", "x"]) == replay.EXIT_INPUT
    assert "only apply with --live" in err()
