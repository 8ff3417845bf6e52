"""The run archive (archive.store, archive.evaluations, archive.queries, archive.novelty, archive.lock)."""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from archive import (
    AmbiguousDesign,
    Archive,
    ArchiveError,
    ArchiveLocked,
    Descriptor,
    DuplicateDesign,
    DuplicateEvaluation,
    InvalidTransition,
    NoveltyConfig,
    UnknownDesign,
    compute_novelty,
    task_successes,
)
from harness.jobspec import EpisodeRecord, EvalResult

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def archive(tmp_path):
    with Archive.open(tmp_path / "run") as a:
        yield a


def evaluated(a, design_id, score, *, successes=None, parents=(), step=0, proposer="seed"):
    """Add a design and give it one finished evaluation on textworld/train."""
    a.add_design(design_id, f"# source of {design_id}", proposer=proposer, parents=parents, step=step)
    a.set_status(design_id, "evaluating")
    ev = a.begin_evaluation(design_id, "textworld", "train")
    a.finish_evaluation(ev.id, outcome="ok", score=score, stderr=0.1, successes=successes)
    a.set_status(design_id, "evaluated")
    return a.get(design_id)


def start_child(code: str) -> subprocess.Popen:
    """A second Python process (importing the repo) that prints 'ready' once it has done its part."""
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    assert line == "ready", f"child failed: {line} {proc.stderr.read() if proc.poll() is not None else ''}"
    return proc


def test_wal_mode_schema_and_reopen(tmp_path):
    with Archive.open(tmp_path / "run") as a:
        assert a.path == tmp_path / "run" / "archive.sqlite"
        a.add_design("d1", "src", proposer="seed", analysis="why", plan="how")
    raw = sqlite3.connect(tmp_path / "run" / "archive.sqlite")
    assert [raw.execute(f"PRAGMA {p}").fetchone()[0] for p in ("journal_mode", "user_version")] == ["wal", 1]
    raw.close()
    with Archive.open(tmp_path / "run" / "archive.sqlite") as a:
        d = a.get("d1")
        assert (d.source, d.proposer, d.status, d.generation, d.analysis, d.plan) == \
            ("src", "seed", "proposed", 0, "why", "how")
        assert a._connection().execute("PRAGMA busy_timeout").fetchone()[0] == 30000


def test_add_design_parents_generation_and_duplicates(archive):
    archive.add_design("p1", "a", proposer="seed")
    archive.add_design("p2", "b", proposer="seed", generation=3)
    child = archive.add_design("c1", "c", proposer="crossover", parents=["p1", "p2"], step=4)
    assert child.parents == ("p1", "p2") and child.generation == 4 and child.step == 4
    with pytest.raises(DuplicateDesign, match="already in the archive"):
        archive.add_design("c1", "c", proposer="crossover")
    assert archive.add_design("c1", "c", proposer="crossover", exist_ok=True).generation == 4
    with pytest.raises(UnknownDesign, match="'nope'"):
        archive.add_design("c2", "x", proposer="meta_agent", parents=["nope"])
    assert "c2" not in archive and archive.count() == 3


def test_status_transitions_are_enforced(archive):
    archive.add_design("d", "src", proposer="seed")
    with pytest.raises(InvalidTransition) as info:
        archive.set_status("d", "evaluated")
    assert "'proposed' to 'evaluated'" in str(info.value) and "evaluating, invalid" in str(info.value)
    archive.set_status("d", "evaluating")
    archive.set_status("d", "failed", reason="sandbox died")
    assert archive.get("d").status_reason == "sandbox died"
    for status in ("evaluating", "evaluated", "evaluating"):  # the last: a further benchmark/split
        archive.set_status("d", status)
    archive.add_design("bad", "x", proposer="meta_agent")
    archive.set_status("bad", "invalid", reason="ruff: F821")
    for target in ("proposed", "evaluating", "evaluated"):
        with pytest.raises(InvalidTransition, match="final state"):
            archive.set_status("bad", target)
    with pytest.raises(ArchiveError, match="cannot be evaluated"):
        archive.begin_evaluation("bad", "textworld", "train")


def test_notes_findings_audit_artefacts_costs(archive):
    archive.add_design("d", "src", proposer="meta_agent", tokens={"gpt": {"prompt_tokens": 5}}, wall_s=1.5)
    archive.set_notes("d", plan="new plan")
    archive.set_findings("d", [{"rule": "S102", "line": 3}, "uses exec"])
    archive.set_audit("d", "suspicious", note="reads score file")
    archive.add_artefacts("d", ["evals/d/episodes.jsonl", "evals/d/episodes.jsonl", "evals/d/audit.json"])
    archive.add_costs("d", {"gpt": {"prompt_tokens": 7, "completion_tokens": 2}}, wall_s=2.0)
    d = archive.get("d")
    assert d.plan == "new plan" and d.analysis is None
    assert d.findings == [{"rule": "S102", "line": 3}, "uses exec"]
    assert (d.audit, d.audit_note) == ("suspicious", "reads score file")
    assert d.artefacts == ("evals/d/episodes.jsonl", "evals/d/audit.json")
    assert d.tokens == {"gpt": {"prompt_tokens": 12, "completion_tokens": 2}} and d.wall_s == 3.5
    with pytest.raises(ArchiveError, match="clean, suspicious, hostile"):
        archive.set_audit("d", "evil")
    with pytest.raises(UnknownDesign):
        archive.set_notes("zzz", plan="x")


def test_a_write_that_raises_mid_transaction_leaves_nothing(archive):
    archive.add_design("a", "src", proposer="seed", code_vector=[1.0, 2.0])
    # The design row and its parent link are written, then the novelty refresh (same transaction) fails on
    # a code vector of another length: nothing of the change may remain.
    with pytest.raises(ArchiveError, match="different shapes"):
        archive.add_design("b", "src b", proposer="mutate:constants", parents=["a"], code_vector=[1, 2, 3])
    assert "b" not in archive
    assert archive._rows("SELECT count(*) FROM design_parents")[0][0] == 0
    # A caller's compound change: all or nothing.
    with pytest.raises(RuntimeError):
        with archive.transaction():
            archive.add_design("c", "src c", proposer="seed")
            archive.record_event("step_done", {"step": 1}, step=1)
            raise RuntimeError("engine crashed half way")
    assert "c" not in archive and archive.events() == []
    # A nested change that fails is undone on its own; the outer one still commits.
    with archive.transaction():
        archive.record_event("kept", step=2)
        with pytest.raises(TypeError):
            archive.record_event("bad", {"x": object()}, step=2)
    assert [e.kind for e in archive.events()] == ["kept"]


def test_killed_process_mid_transaction_leaves_nothing(tmp_path):
    run = tmp_path / "run"
    Archive.open(run).close()
    proc = start_child(f"""
        import time
        from archive import Archive
        a = Archive.open({str(run)!r})
        with a.transaction():
            a.add_design("half", "src", proposer="seed")
            a.record_event("step", step=1)
            print("ready", flush=True)
            time.sleep(60)
    """)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    with Archive.open(run) as a:
        assert "half" not in a and a.events() == [] and a.last_step() is None


def test_second_process_is_refused_and_stale_lock_is_taken_over(tmp_path):
    run = tmp_path / "run"
    proc = start_child(f"""
        import time
        from archive import Archive
        a = Archive.open({str(run)!r})
        print("ready", flush=True)
        time.sleep(60)
    """)
    try:
        with pytest.raises(ArchiveLocked) as info:
            Archive.open(run)
        message = str(info.value)
        assert info.value.pid == proc.pid and f"process {proc.pid}" in message and "lock=False" in message
        assert str(run / "archive.sqlite.lock") in message
        with Archive.open(run, lock=False) as reader:  # read-only inspection is still possible
            assert reader.count() == 0
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    with Archive.open(run) as a:  # the dead holder's lock is stale: taken over
        assert a.run_lock.previous_holder["pid"] == proc.pid
        with pytest.raises(ArchiveLocked, match="this process"):
            Archive.open(run)
    # a lock file naming a dead pid but not locked (e.g. copied run dir) is taken over too
    (run / "archive.sqlite.lock").write_text(json.dumps({"pid": 999999999, "host": "x", "since": 0}))
    with Archive.open(run) as a:
        assert a.run_lock.previous_holder["pid"] == 999999999
        assert json.loads((run / "archive.sqlite.lock").read_text())["pid"] == os.getpid()


def test_evaluation_uniqueness_and_pooling(archive):
    archive.add_design("d", "src", proposer="seed")
    archive.set_status("d", "evaluating")
    first = archive.begin_evaluation("d", "textworld", "train", mode="sequential")
    assert (first.status, first.attempt, first.mode) == ("running", 1, "sequential")
    with pytest.raises(DuplicateEvaluation, match="attempt 1, already exists"):
        archive.begin_evaluation("d", "textworld", "train", attempt=1)
    archive.finish_evaluation(first.id, outcome="ok", score=0.4, stderr=0.3, successes={"a": 1, "b": 0})
    with pytest.raises(InvalidTransition, match="'done' to 'done'"):
        archive.finish_evaluation(first.id, outcome="ok", score=0.4, stderr=0.3)
    assert (second := archive.begin_evaluation("d", "textworld", "train")).attempt == 2
    archive.finish_evaluation(second.id, outcome="ok", score=0.8, stderr=0.4, successes={"b": 1, "c": 0.5})
    failed = archive.begin_evaluation("d", "textworld", "train")
    archive.finish_evaluation(failed.id, outcome="timeout", error="took 900 s")
    replay = archive.begin_evaluation("d", "textworld", "train", purpose="replay")
    archive.finish_evaluation(replay.id, outcome="ok", score=0.0, stderr=0.0)
    s = archive.get("d").scores[("textworld", "train")]
    assert (s.n, s.score, s.stderr) == (2, pytest.approx(0.6), pytest.approx(math.sqrt(0.09 + 0.16) / 2))
    assert s.successes == {"a": 1.0, "b": 0.5, "c": 0.5}
    assert [e.status for e in archive.evaluations("d")] == ["done", "done", "failed", "done"]
    assert archive.evaluation(failed.id).outcome == "timeout"
    with pytest.raises(ArchiveError, match="needs a finite score"):
        archive.finish_evaluation(archive.begin_evaluation("d", "textworld", "train").id, outcome="ok")


def test_running_evaluations_survive_a_crash_and_count_once(tmp_path):
    run = tmp_path / "run"
    with Archive.open(run) as a:
        a.add_design("d", "src", proposer="seed")
        a.set_status("d", "evaluating")
    proc = start_child(f"""
        import time
        from archive import Archive
        a = Archive.open({str(run)!r})
        a.begin_evaluation("d", "textworld", "train")
        a.begin_evaluation("d", "textworld", "test")
        print("ready", flush=True)
        time.sleep(60)
    """)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    with Archive.open(run) as a:
        left = a.running_evaluations()
        assert [(e.split, e.attempt) for e in left] == [("train", 1), ("test", 1)]
        assert (a.restart_evaluation(left[0].id).runs, a.evaluation(left[0].id).attempt) == (2, 1)
        a.finish_evaluation(left[0].id, outcome="ok", score=0.5, stderr=0.1)
        a.finish_evaluation(left[1].id, outcome="oom")
        assert a.running_evaluations() == []
        with pytest.raises(InvalidTransition):
            a.finish_evaluation(left[0].id, outcome="ok", score=0.9)
        pytest.raises(InvalidTransition, a.restart_evaluation, left[0].id)
        assert a.get("d").scores[("textworld", "train")].n == 1
        assert ("textworld", "test") not in a.get("d").scores


def test_record_result_from_a_harness_result(archive):
    archive.add_design("d", "src", proposer="seed")
    episodes = [EpisodeRecord(task_id=t, phase=phase, split="id", repeat=r, won=won, steps=3)
                for t, phase, r, won in [("t1", "collect", 0, False), ("t1", "deploy", 0, True),
                                         ("t1", "deploy", 1, False), ("t2", "deploy", 0, True)]]
    result = EvalResult(design="d", design_hash="d", benchmark="textworld", agent="heuristic", mode="batched",
                        split="id", seed=0, score=0.75, stderr=0.2, progress=0.8, n_train=1, n_test=2,
                        repeats=2, episodes=episodes, usage={"qwen": {"prompt_tokens": 100, "requests": 4}},
                        wall_s=12.0)
    assert task_successes(result.episodes) == {"t1": 0.5, "t2": 1.0}
    ev = archive.begin_evaluation("d", "textworld", "id")
    done = archive.record_result(ev.id, result.model_dump(), artefacts=["evals/d/1/result.json"])
    assert (done.status, done.outcome, done.successes) == ("done", "ok", {"t1": 0.5, "t2": 1.0})
    d = archive.get("d")
    assert d.tokens == {"qwen": {"prompt_tokens": 100, "requests": 4}} and d.wall_s == 12.0
    assert d.artefacts == ("evals/d/1/result.json",) and d.score == 0.75


def test_rewards_are_normalised_against_the_no_memory_baseline(archive):
    evaluated(archive, "nomem", 0.2)
    evaluated(archive, "m1", 0.5)
    assert archive.get("m1").reward is None and archive.baseline is None
    archive.set_baseline("nomem")
    assert archive.baseline == "nomem"
    assert [archive.get(i).reward for i in ("nomem", "m1")] == [0.0, pytest.approx(0.3)]
    # per benchmark/split: only where the baseline has a score
    ev = archive.begin_evaluation("m1", "babaisai", "train")
    archive.finish_evaluation(ev.id, outcome="ok", score=0.9, stderr=0.0)
    m1 = archive.get("m1")
    assert m1.scores[("babaisai", "train")].reward is None and m1.reward == pytest.approx(0.3)
    assert m1.score == pytest.approx(0.7)
    ev = archive.begin_evaluation("nomem", "babaisai", "train")
    archive.finish_evaluation(ev.id, outcome="ok", score=0.5, stderr=0.0)  # baseline changes: all recomputed
    m1 = archive.get("m1")
    assert m1.scores[("babaisai", "train")].reward == pytest.approx(0.4)
    assert m1.reward == pytest.approx((0.3 + 0.4) / 2)
    with pytest.raises(UnknownDesign):
        archive.set_baseline("ghost")


def test_queries_best_lineage_history_costs_prefix(archive):
    evaluated(archive, "aa11", 0.3, step=0)
    evaluated(archive, "aa22", 0.6, parents=["aa11"], step=1, proposer="meta_agent")
    evaluated(archive, "bb33", 0.6, parents=["aa22", "aa11"], step=2, proposer="crossover")
    evaluated(archive, "cc44", 0.9, parents=["bb33"], step=3, proposer="meta_agent")
    archive.add_design("dd55", "x", proposer="meta_agent", parents=["cc44"], step=4)
    archive.set_audit("cc44", "hostile")
    archive.record_selection(["aa22"], step=3, strategy="test")
    assert [d.id for d in archive.best(3)] == ["bb33", "aa22", "aa11"]  # tie: fewer visits first
    assert [d.id for d in archive.best(1, include_hostile=True)] == ["cc44"]
    assert [d.id for d in archive.best(2, benchmark="textworld", split="train")] == ["bb33", "aa22"]
    assert archive.best(benchmark="textworld", split="test") == []
    assert [(n, d.id) for n, d in archive.ancestors("cc44")] == [(1, "bb33"), (2, "aa22"), (2, "aa11")]
    assert [d.id for d in archive.children("aa11")] == ["aa22", "bb33"]
    assert [(n, d.id) for n, d in archive.descendants("aa22")] == [(1, "bb33"), (2, "cc44"), (3, "dd55")]
    assert archive.best_history() == [(0, 0.3, "aa11"), (1, 0.6, "aa22"), (2, 0.6, "aa22"), (3, 0.6, "aa22"),
                                      (4, 0.6, "aa22")]
    totals = archive.cost_totals()
    assert totals["designs"] == {"evaluated": 4, "proposed": 1} and totals["evaluations"] == {"done": 4}
    assert archive.resolve("cc") == "cc44" and archive.get("bb").id == "bb33"
    with pytest.raises(AmbiguousDesign, match="matches 2 designs"):
        archive.get("aa")
    with pytest.raises(UnknownDesign, match="'zz'"):
        archive.get("zz")


def test_events_log_and_meta(archive):
    assert archive.last_step() is None
    archive.record_event("propose", {"child": "x"}, step=1)
    archive.record_event("step_done", step=1)
    archive.record_event("propose", {"child": "y"}, step=2)
    assert archive.last_step() == 2
    assert [e.payload for e in archive.events("propose")] == [{"child": "x"}, {"child": "y"}]
    assert [e.kind for e in archive.events(step=1)] == ["propose", "step_done"]
    assert [e.seq for e in archive.events(after_seq=2)] == [3]
    archive.set_meta("config", {"tau": 0.5})
    assert archive.get_meta("config") == {"tau": 0.5} and archive.get_meta("missing", 7) == 7

    def work(n):  # one Archive shared by threads: each transaction's two events stay adjacent
        for i in range(20):
            with archive.transaction():
                archive.record_event("tick", {"n": n, "i": i}, step=i)
                archive.record_event("tock", {"n": n, "i": i}, step=i)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = archive.events(after_seq=3)
    assert len(events) == 160 and all(events[j].kind == "tick" and events[j + 1].payload == events[j].payload
                                      for j in range(0, 160, 2))


def test_novelty_by_hand_behaviour_only():
    ids = ["A", "B", "C", "D"]
    descriptors = [Descriptor({"t1": 1, "t2": 0, "t3": 1}), Descriptor({"t1": 1, "t2": 1, "t3": 1}),
                   Descriptor({"t1": 0, "t2": 0}), Descriptor({"t9": 1})]
    # d(A,B) = (0+1+0)/3 = 1/3; d(A,C) = (1+0)/2 = 1/2 (t3 missing in C: ignored); d(B,C) = (1+1)/2 = 1;
    # D shares no task with anyone: no distance at all.
    one = compute_novelty(ids, descriptors, NoveltyConfig(k=1))
    assert one["A"].novelty == pytest.approx(1 / 3) and one["B"].novelty == pytest.approx(1 / 3)
    assert one["C"].novelty == pytest.approx(1 / 2) and one["D"].novelty is None
    two = compute_novelty(ids, descriptors, NoveltyConfig(k=2))
    assert two["A"].novelty == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert two["B"].novelty == pytest.approx((1 / 3 + 1) / 2)
    assert two["C"].novelty == pytest.approx((1 / 2 + 1) / 2)
    assert [n for n, _ in two["C"].neighbours] == ["A", "B"]
    five = compute_novelty(ids, descriptors)  # k = 5 but only 2 neighbours exist
    assert five["A"].k == 2 and five["A"].novelty == two["A"].novelty


def test_novelty_by_hand_behaviour_and_code():
    ids = ["A", "B", "C"]
    behaviour = [{"t1": 1, "t2": 0, "t3": 1}, {"t1": 1, "t2": 1, "t3": 1}, {"t1": 0, "t2": 0}]
    code = [[0, 10], [1, 10], [2, 30]]  # min-max per dimension -> A (0, 0), B (0.5, 0), C (1, 1)
    descriptors = [Descriptor(b, c) for b, c in zip(behaviour, code, strict=True)]
    code_ab, code_ac, code_bc = math.sqrt(0.25 / 2), math.sqrt(2 / 2), math.sqrt(1.25 / 2)
    res = compute_novelty(ids, descriptors, NoveltyConfig(k=1, behaviour_weight=1, code_weight=3))
    assert res["A"].novelty == pytest.approx((1 / 3 + 3 * code_ab) / 4)
    assert res["C"].novelty == pytest.approx(min((1 / 2 + 3 * code_ac) / 4, (1 + 3 * code_bc) / 4))
    assert res["B"].code_normalised == [0.5, 0.0]
    code_only = compute_novelty(ids, descriptors, NoveltyConfig(k=2, behaviour_weight=0))
    assert code_only["B"].novelty == pytest.approx((code_ab + code_bc) / 2)
    with pytest.raises(ArchiveError, match="not both 0"):
        NoveltyConfig(behaviour_weight=0, code_weight=0)


def test_archive_keeps_novelty_current(tmp_path):
    with Archive.open(tmp_path, novelty=NoveltyConfig(k=1, code_weight=0)) as a:
        evaluated(a, "A", 0.5, successes={"t1": 1, "t2": 0, "t3": 1})
        assert a.get("A").novelty is None  # alone: no neighbour
        evaluated(a, "B", 0.7, successes={"t1": 1, "t2": 1, "t3": 1})
        assert a.get("A").novelty == pytest.approx(1 / 3)
        evaluated(a, "C", 0.1, successes={"t1": 0, "t2": 0})
        a.add_design("P", "proposed only, no descriptor", proposer="meta_agent")
        assert [d.novelty for d in a.designs()] == [pytest.approx(1 / 3), pytest.approx(1 / 3), 0.5, None]
        c = a.get("C")
        assert c.descriptor["behaviour"] == {"textworld/train/t1": 0.0, "textworld/train/t2": 0.0}
        assert c.descriptor["neighbours"] == [{"id": "A", "distance": pytest.approx(0.5)}]
        # the same task id on another split is another task
        ev = a.begin_evaluation("C", "textworld", "test")
        a.finish_evaluation(ev.id, outcome="ok", score=1.0, successes={"t1": 1})
        assert a.get("C").novelty == pytest.approx(1 / 2)
        assert a.refresh_novelty()["B"] == pytest.approx(1 / 3)
