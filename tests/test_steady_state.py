"""Steady state: with ``concurrency = 3`` the evolve loop keeps three evaluations in flight, records the same
counts as a serial run with the same budget, and resumes exactly after ``kill -9`` with several in flight.
Real engine processes, the sandbox backend the evolve tests use, BabaIsAI (fast)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

from archive import Archive
from tests.conftest import REPO
from tests.openai_server import OpenAITestServer

STEPS = 6

CONFIG = """
steps = {steps}
seed = 3
meta_share = 0.0
smoke_test = false
budget_minutes = 600
concurrency = {concurrency}
runs_dir = "{runs}"

[eval]
benchmark = "babaisai"
n_train = 2
n_test = 2
repeats = 1

[sandbox]
backend = "none"
timeout_s = 300

[task]
base_url = "{task_url}"
model = "test-model"
"""


def write_config(root: Path, server: OpenAITestServer, concurrency: int, steps: int = STEPS) -> Path:
    cfg = root / f"c{concurrency}-s{steps}.toml"
    cfg.write_text(CONFIG.format(steps=steps, concurrency=concurrency, runs=root / "runs", task_url=server.base_url))
    return cfg


def evolve(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.evolve", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=900, env=env)


def start(cfg: Path, name: str) -> subprocess.Popen:
    """An engine run in its own process group; its output goes to ``<name>.log`` next to the config."""
    with open(cfg.parent / f"{name}.log", "w") as log:
        return subprocess.Popen([sys.executable, "-m", "engine.evolve", "--config", str(cfg), "--name", name],
                                cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def running(run_dir: Path) -> tuple[list[int], int]:
    """The ids of the evaluations now ``running`` and the number of steps done (0 before the archive exists)."""
    if not (run_dir / "archive.sqlite").exists():
        return [], 0
    with Archive.open(run_dir, lock=False) as archive:
        return [e.id for e in archive.running_evaluations()], len(archive.events("step_done"))


def watch(proc: subprocess.Popen, run_dir: Path, until=lambda ids, steps: False) -> int:
    """Poll the archive while ``proc`` runs, until ``until(running ids, steps done)``; returns the most
    evaluations seen running at once."""
    most, deadline = 0, time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        ids, steps = running(run_dir)
        most = max(most, len(ids))
        if until(ids, steps):
            break
        time.sleep(0.1)
    return most


def counts(run_dir: Path) -> dict:
    """What a run recorded, as numbers that do not depend on which designs it found."""
    with Archive.open(run_dir, lock=False) as archive:
        designs, evals = archive.designs(), archive.evaluations()
        return {"steps": sorted(e.step for e in archive.events("step_done")),
                "designs": Counter("seed" if d.proposer == "seed" else d.status for d in designs),
                "evaluations": Counter((e.split, e.status) for e in evals)}


def max_overlap(run_dir: Path) -> int:
    """The most evaluations whose [started, finished] intervals overlap at one moment."""
    with Archive.open(run_dir, lock=False) as archive:
        evals = archive.evaluations()
    points = sorted([(e.started_at, 1) for e in evals] + [(e.finished_at, -1) for e in evals])
    most = now = 0
    for _, change in points:
        now += change
        most = max(most, now)
    return most


def assert_exact(run_dir: Path) -> None:
    """Every step done once, no evaluation left running or recorded twice, no design left mid-evaluation."""
    with Archive.open(run_dir, lock=False) as archive:
        evals, designs = archive.evaluations(), archive.designs()
        steps = [e.step for e in archive.events("step_done")]
    assert sorted(steps) == list(range(1, STEPS + 1))
    assert not [e for e in evals if e.status == "running"]
    pairs = Counter((e.design_id, e.split) for e in evals)
    assert max(pairs.values()) == 1, [p for p, n in pairs.items() if n > 1]  # no design evaluated twice on a split
    assert all(d.status in ("evaluated", "failed", "invalid") for d in designs)
    children = [d for d in designs if d.proposer != "seed"]
    assert sorted(d.step for d in children) == list(range(1, STEPS + 1))  # one design per step, none twice


@pytest.fixture(scope="module")
def runs():
    """A serial run, an uninterrupted run with three in flight, and one killed with several in flight."""
    root = Path(tempfile.mkdtemp(prefix="alma-steady-"))
    with OpenAITestServer() as server:
        serial = evolve("--config", str(write_config(root, server, 1)), "--name", "serial")
        assert serial.returncode == 0, serial.stderr[-3000:]
        proc = start(write_config(root, server, 3), "steady")
        seen = watch(proc, root / "runs" / "steady")
        assert proc.wait(timeout=600) == 0, (root / "steady.log").read_text()[-3000:]
        crash = start(write_config(root, server, 3), "crash")
        watch(crash, root / "runs" / "crash", lambda ids, steps: len(ids) >= 2 and 1 <= steps < STEPS - 1)
        assert crash.poll() is None, "the run ended before several evaluations were in flight mid-run"
        os.killpg(crash.pid, signal.SIGKILL)
        crash.wait()
        killed = running(root / "runs" / "crash")
        resumed = evolve("--resume", str(root / "runs" / "crash"))
        assert resumed.returncode == 0, resumed.stderr[-3000:]
    yield {"root": root, "serial": root / "runs" / "serial", "steady": root / "runs" / "steady", "seen": seen,
           "crash": root / "runs" / "crash", "killed": killed, "resumed": resumed}
    shutil.rmtree(root, ignore_errors=True)


def test_three_evaluations_are_in_flight_at_once(runs):
    assert runs["seen"] == 3  # seen in the live archive: never more than the limit, and the limit reached
    assert max_overlap(runs["steady"]) == 3
    assert max_overlap(runs["serial"]) == 1


def test_steady_state_records_the_counts_of_a_serial_run(runs):
    assert counts(runs["steady"]) == counts(runs["serial"])
    assert_exact(runs["steady"])
    assert_exact(runs["serial"])


def test_kill_9_with_evaluations_in_flight_then_resume_is_exact(runs):
    ids, steps = runs["killed"]
    assert len(ids) >= 2 and 1 <= steps < STEPS, runs["killed"]  # killed mid-run, several in flight
    assert "re-running the interrupted evaluation" in runs["resumed"].stderr
    assert counts(runs["crash"]) == counts(runs["serial"])
    assert_exact(runs["crash"])
    with Archive.open(runs["crash"], lock=False) as archive:
        reruns = {e.id: e.runs for e in archive.evaluations()}
    # the evaluations in flight at the kill ran again exactly once, on their own rows; no other one did
    assert {i: reruns[i] for i in ids} == {i: 2 for i in ids}
    assert all(n == 1 for i, n in reruns.items() if i not in ids)


def test_steady_state_on_ray_keeps_evaluations_in_flight(tmp_path):
    pytest.importorskip("ray") if os.environ.get("CI") != "true" else None
    ray_tmp = Path(tempfile.mkdtemp(prefix="alma-ray-steady-", dir="/tmp"))
    env = dict(os.environ, RAY_memory_monitor_refresh_ms="0", RAY_TMPDIR=str(ray_tmp), RAY_AUTH_MODE="disabled")
    try:
        with OpenAITestServer() as server:
            cfg = write_config(tmp_path, server, 3, steps=3)
            proc = evolve("--config", str(cfg), "--name", "ray", "--executor", "ray", env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "executor: ray" in proc.stderr
        run_dir = tmp_path / "runs" / "ray"
        assert max_overlap(run_dir) >= 2
        with Archive.open(run_dir, lock=False) as archive:
            assert sorted(e.step for e in archive.events("step_done")) == [1, 2, 3]
            evals = archive.evaluations()
        assert not [e for e in evals if e.status == "running"]
        assert max(Counter((e.design_id, e.split) for e in evals).values()) == 1
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
