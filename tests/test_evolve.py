"""The evolve loop end to end: meta-agent fix loop against a scripted model server, structural steps,
crash-safe resume after SIGKILL, the run lock, and clear errors for bad input. Played on BabaIsAI (fast)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from archive import Archive
from tests.conftest import REPO

CONFIG = """
steps = {steps}
seed = 3
meta_share = {meta_share}
fix_rounds = 2
smoke_test = false
runs_dir = "{runs}"

[eval]
benchmark = "babaisai"
n_train = 2
n_test = 2
repeats = 1

[sandbox]
backend = "none"
timeout_s = 300

[meta]
{meta}

[task]
base_url = "{task_url}"
model = "test-model"
"""

FIXED = '''```python
from harness.design import MemoryDesign


class Notes(MemoryDesign):
    def _path(self):
        return self.toolkit.scratch_dir / "notes.txt"

    async def retrieve(self, task):
        if not self._path().exists():
            return {}
        return {"text": self._path().read_text()[-2000:]}

    async def update(self, episode):
        if episode.won:
            with open(self._path(), "a") as fh:
                fh.write("solved: " + " -> ".join(episode.actions) + "\\n")
```'''
BROKEN = FIXED.replace('"solved: "', 'eval("1") and "solved: "')


def write_config(tmp_path: Path, server, steps: int, meta_share: float) -> Path:
    """A small run on BabaIsAI; both models are the local test server (the edge we do not own)."""
    cfg = tmp_path / "evolve.toml"
    meta = f'base_url = "{server.base_url}"\nmodel = "test-model"'
    cfg.write_text(CONFIG.format(steps=steps, meta_share=meta_share, runs=tmp_path / "runs", meta=meta,
                                 task_url=server.base_url))
    return cfg


def evolve(*args, timeout=600, env=None):
    return subprocess.run([sys.executable, "-m", "engine.evolve", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_meta_agent_fix_loop_repairs_a_broken_design_and_archives_both(tmp_path, openai_server):
    analyse_prompts = []

    def script(request):
        prompt = request["messages"][-1]["content"]
        if "The design to improve" in prompt:
            analyse_prompts.append(prompt)
        if "Reply with a JSON object" in prompt:
            return json.dumps({"analysis": "the parent forgets solutions", "plan": "store solved action lists"})
        if "failed verification" in prompt:
            assert "eval" in prompt and "forbidden" in prompt  # the findings are fed back
            return FIXED
        return BROKEN

    openai_server.script_chat(script)
    cfg = write_config(tmp_path, openai_server, steps=1, meta_share=1.0)
    proc = evolve("--config", str(cfg), "--name", "meta")
    assert proc.returncode == 0, proc.stderr[-3000:]
    with Archive.open(tmp_path / "runs" / "meta", lock=False) as archive:
        made = [d for d in archive.designs() if d.proposer == "meta_agent"]
        assert len(made) == 2
        broken = next(d for d in made if d.status == "invalid")
        fixed = next(d for d in made if d.status == "evaluated")
        assert "eval" in broken.source and "forbidden-call" in json.dumps(broken.findings)
        assert "eval" not in fixed.source and fixed.plan == "store solved action lists"
        assert fixed.analysis == "the parent forgets solutions" and fixed.parents
        assert fixed.score_on("babaisai", "id") is not None and fixed.audit == "clean", \
            (fixed.audit, fixed.audit_note,
             [(e.status, e.outcome) for e in archive.evaluations(fixed.id)], proc.stderr[-2000:])
        took = [e.payload["seconds"] for e in archive.events("propose") if e.payload["operator"] == "meta_agent"]
        assert len(took) == 1 and took[0] > 0
        # as if meta steps took an hour here: with 30 minutes of budget left, the next step is structural
        archive.record_event("propose", {"design": None, "operator": "meta_agent", "seconds": 3600.0}, step=0)
    assert "best designs vs baselines" in proc.stderr
    # the meta agent is told how its reader, the heuristic task agent, uses memory text (maps from room headers)
    assert analyse_prompts and all("How the task agent reads" in p and "-= Kitchen =-" in p for p in analyse_prompts)
    resumed = evolve("--resume", str(tmp_path / "runs" / "meta"), "--steps", "2", "--budget-minutes", "30")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "more than the time budget has left" in resumed.stderr
    with Archive.open(tmp_path / "runs" / "meta", lock=False) as archive:
        assert [e.step for e in archive.events("meta_skipped")] == [2]
        assert [e.payload["operator"] for e in archive.events("propose", step=2)] != ["meta_agent"]


def _counts(run_dir: Path):
    with Archive.open(run_dir, lock=False) as archive:
        steps = [e.step for e in archive.events("step_done")]
        evals = archive.evaluations()
        return steps, evals, archive.designs()


def test_kill_9_then_resume_loses_and_duplicates_nothing(tmp_path, openai_server):
    cfg = write_config(tmp_path, openai_server, steps=4, meta_share=0.0)
    run_dir = tmp_path / "runs" / "crash"
    proc = subprocess.Popen([sys.executable, "-m", "engine.evolve", "--config", str(cfg), "--name", "crash"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        time.sleep(0.3)
        if (run_dir / "archive.sqlite").exists():
            with Archive.open(run_dir, lock=False) as archive:
                if archive.evaluations(status="running") and archive.events("step_done"):
                    break  # killed in the middle of an evaluation, after at least one step
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    steps, evals, _ = _counts(run_dir)
    assert 1 <= len(steps) < 4
    # a second engine on the same run directory is refused while one holds it
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from archive import Archive; "
                               f"a = Archive.open({str(run_dir)!r}); print('locked', flush=True); time.sleep(30)"],
                              cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    refused = evolve("--resume", str(run_dir), timeout=120)
    holder.kill()
    holder.wait()
    assert refused.returncode == 2 and "lock" in refused.stderr.lower()
    resumed = evolve("--resume", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    steps, evals, designs = _counts(run_dir)
    assert sorted(steps) == [1, 2, 3, 4]
    assert not [e for e in evals if e.status == "running"]
    keys = [(e.design_id, e.split, e.purpose) for e in evals if e.status == "done"]
    assert len(keys) == len(set(keys))  # no evaluation counted twice
    evaluated = {d.id for d in designs if d.status in ("evaluated", "failed")}
    assert {e.design_id for e in evals if e.status == "done"} <= evaluated
    assert all(d.status != "evaluating" for d in designs)
    assert len([d for d in designs if d.proposer == "seed"]) == 5


def test_time_budget_stops_cleanly_and_counts_across_resume(tmp_path, openai_server):
    cfg = write_config(tmp_path, openai_server, steps=2, meta_share=0.0)
    run_dir = tmp_path / "runs" / "clock"
    first = evolve("--config", str(cfg), "--name", "clock", "--budget-minutes", "0.0001")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "time budget reached" in first.stderr and "after 0 of 2 steps" in first.stderr
    assert "held-out" in first.stderr  # the final table still comes
    steps, _, _ = _counts(run_dir)
    with Archive.open(run_dir, lock=False) as archive:
        spent = float(archive.get_meta("search_seconds"))
    assert steps == [] and spent > 0
    resumed = evolve("--resume", str(run_dir), "--budget-minutes", "600")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    steps, _, _ = _counts(run_dir)
    with Archive.open(run_dir, lock=False) as archive:
        assert float(archive.get_meta("search_seconds")) > spent  # the clock went on from where it was
    assert sorted(steps) == [1, 2] and "time budget reached" not in resumed.stderr


def test_bad_input_gives_clear_errors_and_writes_nothing(tmp_path):
    runs = tmp_path / "runs"
    proc = evolve("--benchmark", "nethack9", "--runs-dir", str(runs), timeout=120)
    assert proc.returncode == 2 and "unknown benchmark 'nethack9'" in proc.stderr and not runs.exists()
    bad = tmp_path / "bad.toml"
    bad.write_text("steps = -3\n[eval]\nn_test = 0\n")
    proc = evolve("--config", str(bad), "--runs-dir", str(runs), timeout=120)
    assert proc.returncode == 2 and "steps" in proc.stderr and "n_test" in proc.stderr and not runs.exists()
    bad.write_text("steps = [\n")
    proc = evolve("--config", str(bad), timeout=120)
    assert proc.returncode == 2 and "not valid TOML" in proc.stderr
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "no_memory.py").write_text("import os\nos.system('true')\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'seeds_dir = "{seeds}"\nruns_dir = "{runs}"\n')
    proc = evolve("--config", str(cfg), timeout=120)
    assert proc.returncode == 2 and "fails validation" in proc.stderr and not runs.exists()
    proc = evolve("--resume", str(tmp_path / "nowhere"), timeout=120)
    assert proc.returncode == 2 and "not a run directory" in proc.stderr


@pytest.mark.skipif(not os.path.exists("/usr/bin/bwrap") and os.environ.get("CI") != "true",
                    reason="bubblewrap is not installed")
def test_evolve_runs_in_the_real_sandbox(tmp_path, openai_server):
    cfg = write_config(tmp_path, openai_server, steps=1, meta_share=0.0)
    text = cfg.read_text().replace('backend = "none"', 'backend = "bubblewrap"')
    cfg.write_text(text)
    proc = evolve("--config", str(cfg), "--name", "bw")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "sandbox backend: BubblewrapBackend" in proc.stderr or "bubblewrap" in proc.stderr.lower()
    steps, evals, designs = _counts(tmp_path / "runs" / "bw")
    assert steps == [1] and all(e.status == "done" for e in evals)


def test_evolve_on_ray_gives_the_results_of_a_local_run(tmp_path, openai_server):
    pytest.importorskip("ray") if os.environ.get("CI") != "true" else None
    cfg = write_config(tmp_path, openai_server, steps=1, meta_share=0.0)
    local = evolve("--config", str(cfg), "--name", "local")
    assert local.returncode == 0, local.stderr[-3000:]
    # a private Ray temp dir: the cluster this run starts must leave no session behind for other tests
    ray_tmp = Path(tempfile.mkdtemp(prefix="alma-ray-evo-", dir="/tmp"))
    env = dict(os.environ, RAY_memory_monitor_refresh_ms="0", RAY_TMPDIR=str(ray_tmp), RAY_AUTH_MODE="disabled")
    on_ray = evolve("--config", str(cfg), "--name", "ray", "--executor", "ray", env=env)
    assert on_ray.returncode == 0, on_ray.stderr[-3000:]
    assert "executor: ray" in on_ray.stderr

    def scores(name):
        with Archive.open(tmp_path / "runs" / name, lock=False) as archive:
            return {d.id: (d.status, d.score_on("babaisai", "id").score if d.score_on("babaisai", "id") else None)
                    for d in archive.designs()}

    assert scores("ray") == scores("local")
    shutil.rmtree(ray_tmp, ignore_errors=True)


def test_child_names_stay_bounded_along_a_lineage():
    from engine.search.propose import child_name

    name = "trajectory_retrieval"
    for step, op in enumerate(["mutate:constants", "crossover", "swap:update", "mutate:constants"], 1):
        name = child_name(name, op, step)
    assert name == "trajectory_retrieval~mutate:constants@4"
    assert child_name(name, "meta", 5, 0) == "trajectory_retrieval~meta@5.0"
    assert child_name("reasoning_bank+swap:update>meta3.1", "crossover", 9) == "reasoning_bank~crossover@9"  # old runs
