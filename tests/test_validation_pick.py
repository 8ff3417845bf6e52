"""The final pick: the best evolved designs by fitness are re-evaluated on a fresh validation suite and the
held-out table takes the best of fitness and validation pooled (engine.search.loop.Evolution.heldout_phase)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from engine.api import evolve
from engine.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[1]


def run(tmp_path: Path, name: str, validation_top: int):
    seeds = tmp_path / "seeds"
    seeds.mkdir(exist_ok=True)
    for seed in ("no_memory", "trajectory_retrieval"):
        shutil.copy(REPO / "seeds" / f"{seed}.py", seeds / f"{seed}.py")
    config = {"steps": 4, "seed": 1, "meta_share": 0.0, "smoke_test": False, "eval_cache": False,
              "budget_minutes": 30, "selection": "greedy", "runs_dir": str(tmp_path / "runs"),
              "seeds_dir": str(seeds),
              "eval": {"benchmark": "babaisai", "n_train": 1, "n_test": 2, "heldout_n_test": 2,
                       "validation_top": validation_top},
              "sandbox": {"backend": "none", "timeout_s": 300}}
    return evolve(config, name=name, log=lambda _line: None)


def evaluations(archive_path: Path, split: str) -> list[tuple[str, str]]:
    with sqlite3.connect(archive_path) as db:
        return db.execute("SELECT design_id, status FROM evaluations WHERE split = ?", (split,)).fetchall()


def test_the_final_pick_is_validated_on_a_fresh_suite(tmp_path):
    result = run(tmp_path, "validated", validation_top=2)
    doc = result.heldout
    validated = evaluations(result.archive_path, "validation")
    evolved = [r for r in doc["designs"] if r["kind"] == "evolved"]
    assert evolved, "the run must have evolved designs on the held-out table"
    assert 1 <= len(validated) <= 3 and all(status == "done" for _, status in validated)
    assert {d for d, _ in validated} >= {r["id"] for r in evolved}
    # the validation suite is a third suite: the fitness suite's split, seed 500
    for design_id, _ in validated:
        job = json.loads((result.run_dir / "evals" / design_id / "validation" / "job.json").read_text())
        assert job["protocol"]["seed"] == 500 and job["protocol"]["split"] == "id"
        assert job["protocol"]["n_test"] == 2
    best = doc["best_evolved"]
    assert best["picked_by"] == "fitness+validation"
    assert all("selection_score" in r for r in evolved)
    assert best["id"] == max(evolved, key=lambda r: r["selection_score"])["id"]
    assert result.best.id == best["id"]


def test_validation_off_picks_by_fitness_and_runs_no_validation(tmp_path):
    result = run(tmp_path, "fitness", validation_top=0)
    assert evaluations(result.archive_path, "validation") == []
    assert result.heldout["best_evolved"]["picked_by"] == "fitness"


def test_the_validation_suite_must_be_fresh():
    with pytest.raises(ConfigError, match="validation_seed"):
        load_config(None, {"eval.validation_seed": 1000})
    with pytest.raises(ConfigError, match="validation_seed"):
        load_config(None, {"eval.seed": 500})
    assert load_config(None, {"eval.seed": 500, "eval.validation_top": 0}).eval.validation_top == 0
