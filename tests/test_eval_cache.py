"""The evaluation cache: an identical evaluation (same job spec, same harness) is answered from a report computed
before, in another run; anything else is evaluated afresh."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from archive import Archive
from engine.search.evalcache import EvalCache, cache_key
from harness.jobspec import AgentSpec, DesignSpec, JobSpec, ModelSpec, ProtocolSpec
from sandbox.job import JobReport
from sandbox.limits import Limits
from sandbox.outcome import Outcome
from tests.conftest import REPO

CONFIG = """
steps = 2
seed = 5
meta_share = 0.0
smoke_test = false
budget_minutes = 600
runs_dir = "{runs}"

[eval]
benchmark = "babaisai"
n_train = 2
n_test = 2

[sandbox]
backend = "none"

[task]
base_url = "{task_url}"
model = "test-model"
"""


def spec(source: str = "class M: pass\n", job_id: str = "a", seed: int = 0) -> JobSpec:
    return JobSpec(job_id=job_id, design=DesignSpec(name="m", source=source), benchmark="babaisai",
                   agent=AgentSpec(kind="heuristic"), models=ModelSpec(embedder="hashing"),
                   protocol=ProtocolSpec(n_train=1, n_test=1, seed=seed))


def failed_report(outcome: Outcome) -> JobReport:
    return JobReport(job_id="a", backend="none", outcome=outcome, scored=False, attempts=1, limits=Limits())


def test_the_key_is_the_evaluation_not_the_job_id():
    assert cache_key(spec(job_id="a")) == cache_key(spec(job_id="b"))
    assert cache_key(spec()) != cache_key(spec(source="class M:\n    X = 1\n"))
    assert cache_key(spec()) != cache_key(spec(seed=1))


def test_only_ok_reports_are_kept_and_a_damaged_entry_is_a_miss(tmp_path):
    cache = EvalCache(tmp_path)
    assert not cache.put(spec(), failed_report(Outcome.TIMEOUT))
    assert cache.get(spec()) is None
    path = tmp_path / cache_key(spec())[:2] / f"{cache_key(spec())}.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert cache.get(spec()) is None
    assert cache.hits == 0


def evolve(cfg: Path, name: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.evolve", "--config", str(cfg), "--name", name], cwd=REPO,
                          capture_output=True, text=True, timeout=900, env=env)


def evaluations(run_dir: Path) -> dict:
    """(design source hash, split) -> (score, wall_s, report detail) of every finished evaluation."""
    with Archive.open(run_dir, lock=False) as archive:
        out = {}
        for e in archive.evaluations():
            design = archive.get(e.design_id)
            detail = json.loads((run_dir / "evals" / e.design_id / e.split / "report.json").read_text())["detail"]
            out[(design.id, e.split)] = (e.status, e.score, detail)
        return out


def test_a_second_run_reuses_every_identical_evaluation(tmp_path, openai_server):
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG.format(runs=tmp_path / "runs", task_url=openai_server.base_url))
    env = dict(os.environ, ALMA_EVAL_CACHE=str(tmp_path / "evalcache"))
    first = evolve(cfg, "first", env)
    assert first.returncode == 0, first.stderr[-3000:]
    second = evolve(cfg, "second", env)
    assert second.returncode == 0, second.stderr[-3000:]
    a, b = evaluations(tmp_path / "runs" / "first"), evaluations(tmp_path / "runs" / "second")
    assert a.keys() == b.keys() and len(a) >= 7  # five seeds, two children, the held-out table
    for key, (status, score, detail) in b.items():
        assert (status, score) == a[key][:2]
        if status == "done":  # every finished evaluation of the second run came from the first run's
            assert detail.startswith("from the evaluation cache"), (key, detail)
            assert not a[key][2].startswith("from the evaluation cache")
    off = evolve(cfg, "off", dict(env, ALMA_EVAL_CACHE="off"))
    assert off.returncode == 0, off.stderr[-3000:]
    assert not any(d.startswith("from the evaluation cache") for _, _, d in evaluations(tmp_path / "runs" / "off")
                   .values())


def test_editing_a_plugin_is_a_new_cache(tmp_path, monkeypatch):
    pkg = tmp_path / "cacheplug"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "envs.py").write_text("from harness.envs.babaisai.benchmark import BabaIsAIBenchmark as Desk\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    plugged = spec().model_copy(update={"benchmark": "cacheplug.envs:Desk"})
    before = cache_key(plugged)
    assert before != cache_key(spec())
    (pkg / "envs.py").write_text("from harness.envs.babaisai.benchmark import BabaIsAIBenchmark as Desk  # edited\n")
    assert cache_key(plugged) != before
