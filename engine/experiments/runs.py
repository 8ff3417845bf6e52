"""One cell = one ``engine.api.evolve`` run, resumable: started under its key, continued with
``evolve(resume=...)`` after an interruption, skipped once its ``finished/<key>.json`` record exists.

The record holds what the claims read from the run: its held-out table (``heldout.json``), every held-out
design's per-task successes (from the archive's held-out evaluations), the best fitness score so far after each
step (``Archive.best_history``) and what the run spent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from archive import Archive
from engine.api import evolve
from engine.config import load_config
from engine.experiments.layout import Experiment, ExperimentError
from engine.search.evaluator import HELDOUT
from engine.search.heldout import read_heldout

#: evolve log lines worth showing on the experiment's stdout (the rest: estimates and notes)
_SHOWN = ("seed ", "step ", "validation", "re-running", "time budget", "token budget", "warning")


def run_cell(exp: Experiment, cell: dict, log: Callable[[str], None]) -> dict:
    """Run (or finish) ``cell``'s evolve run and return its record; a finished run is not touched."""
    key = cell["key"]
    record = exp.finished(key)
    if record is not None:
        return record
    run_dir = exp.run_dir(key)

    def forward(line: str) -> None:
        if line.startswith(_SHOWN):
            log(f"  {key}: {line.splitlines()[0]}")

    started = time.monotonic()
    if (run_dir / "config.toml").is_file():
        log(f"  {key}: resuming the interrupted run {run_dir}")
        evolve(resume=run_dir, log=forward)
    else:
        if run_dir.exists():  # created, then killed before its config was written: nothing ran
            try:
                run_dir.rmdir()
            except OSError as exc:
                raise ExperimentError(f"{run_dir} exists without a config.toml and is not empty; move it away "
                                      "and resume again") from exc
        evolve(cell["config"], name=key, log=forward)
    record = summarise(cell, run_dir, wall_s=time.monotonic() - started)
    exp.write_finished(key, record)
    return record


def summarise(cell: dict, run_dir: Path, *, wall_s: float) -> dict:
    """The record of a finished run (read-only on its archive)."""
    config = load_config(run_dir / "config.toml")
    heldout = read_heldout(run_dir)
    if heldout is None:
        raise ExperimentError(f"{run_dir} ended without a heldout.json; resume the experiment to redo its "
                              "held-out table")
    bench, split = config.eval.benchmark, config.eval.split
    with Archive.open(run_dir, lock=False) as archive:
        designs = []
        for row in heldout["designs"]:
            done = [e for e in archive.evaluations(row["id"], benchmark=bench, split=HELDOUT)
                    if e.status == "done" and e.successes is not None]
            designs.append({**{k: row.get(k) for k in ("id", "name", "kind", "score")},
                            "successes": done[-1].successes if done else None})
        steps_done = len(archive.events("step_done"))
        history = archive.best_history(benchmark=bench, split=split)
        curve = []
        for step in range(0, steps_done + 1):
            best = [h for h in history if h[0] <= step]
            curve.append(round(best[-1][1], 6) if best else None)
        evaluations = archive.evaluations(benchmark=bench)
        spent = {}
        for e in evaluations:
            if e.status in ("done", "failed"):
                spent[e.split] = spent.get(e.split, 0) + 1
        search_minutes = float(archive.get_meta("search_seconds", 0.0)) / 60
    return {"key": cell["key"], "benchmark": cell["benchmark"], "variant": cell["variant"], "seed": cell["seed"],
            "run_id": run_dir.name, "run_dir": str(run_dir), "config_file": str(run_dir / "config.toml"),
            "selection": config.selection, "steps": config.steps, "steps_done": steps_done,
            "heldout_seed": heldout.get("suite_seed"), "n_tasks": heldout.get("n_tasks"),
            "best_evolved": heldout.get("best_evolved"), "verdict": heldout.get("verdict"),
            "heldout_designs": designs, "fitness_curve": curve, "evaluations": spent,
            "search_minutes": round(search_minutes, 3), "wall_s": round(wall_s, 1), "finished_at": time.time()}
