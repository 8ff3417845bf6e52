"""heldout.json: the paired bootstrap over tasks and the document built from a real archive."""

from __future__ import annotations

import hashlib

from archive import Archive
from engine.config import EvolveConfig
from engine.search.heldout import heldout_document, paired_bootstrap, read_heldout, write_heldout

BENCH = "textworld"


def test_paired_bootstrap_is_paired_and_deterministic():
    a = {f"t{i}": 1.0 for i in range(20)}
    b = {f"t{i}": 0.0 if i < 10 else 1.0 for i in range(20)}
    diff, ci = paired_bootstrap(a, b, seed=3)
    assert diff == 0.5 and 0.25 < ci[0] < 0.5 < ci[1] <= 0.75
    assert paired_bootstrap(a, b, seed=3) == (diff, ci)
    same = paired_bootstrap(a, a)
    assert same == (0.0, [0.0, 0.0])
    assert paired_bootstrap(a, {"other": 1.0}) == (0.0, [0.0, 0.0])  # no common task
    # only common tasks count
    assert paired_bootstrap({"x": 1.0, "y": 1.0}, {"x": 0.0})[0] == 1.0


def _design(a: Archive, name: str, proposer: str, scores: dict[str, dict[str, float]]) -> str:
    source = f"# {name}\n"
    design_id = hashlib.sha256(source.encode()).hexdigest()[:16]
    a.add_design(design_id, source, proposer=proposer, name=name)
    a.set_status(design_id, "evaluating")
    for split, successes in scores.items():
        ev = a.begin_evaluation(design_id, BENCH, split)
        score = sum(successes.values()) / len(successes)
        a.finish_evaluation(ev.id, outcome="ok", score=score, stderr=0.1, successes=successes, wall_s=1.0)
    a.set_status(design_id, "evaluated")
    return design_id


def test_document_picks_the_best_evolved_by_fitness_and_compares_it_on_heldout(tmp_path):
    tasks = [f"h{i}" for i in range(8)]
    with Archive.open(tmp_path) as a:
        nm = _design(a, "no_memory", "seed", {"id": {"f": 0.0}, "heldout": dict.fromkeys(tasks, 0.0)})
        a.set_baseline(nm)
        _design(a, "trajectory_retrieval", "seed", {"id": {"f": 0.5},
                                                    "heldout": {t: float(i < 2) for i, t in enumerate(tasks)}})
        # the fitness leader is held-out-worse than the runner-up: the document must not pick by held-out
        lead = _design(a, "leader", "mutate:constants", {"id": {"f": 1.0},
                                                          "heldout": {t: float(i < 1) for i, t in enumerate(tasks)}})
        _design(a, "runner_up", "crossover", {"id": {"f": 0.75}, "heldout": dict.fromkeys(tasks, 1.0)})
        designs = sorted(a.designs(), key=lambda d: (d.proposer != "seed", d.name))
        successes = {d.id: a.evaluations(d.id, benchmark=BENCH, split="heldout")[-1].successes for d in designs}
        doc = heldout_document(EvolveConfig(), designs, successes, "heldout")
    assert doc["n_tasks"] == 8 and doc["benchmark"] == BENCH
    assert {d["name"]: d["kind"] for d in doc["designs"]}["runner_up"] == "evolved"
    best = doc["best_evolved"]
    assert best["id"] == lead and best["score"] == 0.125
    assert best["vs_best_baseline"]["baseline"] == "trajectory_retrieval"
    assert best["vs_best_baseline"]["diff"] == -0.125
    assert best["vs_no_memory"]["diff"] == 0.125
    assert best["vs_no_memory"]["ci95"][0] >= 0.0
    assert doc["verdict"].startswith("no evolved design beats the best baseline")
    write_heldout(tmp_path, doc)
    assert read_heldout(tmp_path) == doc
    from engine.report.page import _heldout_section

    html = _heldout_section(tmp_path)
    assert "no evolved design beats the best baseline" in html and "runner_up" in html
