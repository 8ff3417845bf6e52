"""``python -m engine.experiments claims`` end to end, in miniature: the Support Desk example (by module path, from
examples/), two run seeds, two steps per run, the softmax and greedy rules, tiny suites, no sandbox. The
experiment is killed with SIGKILL in the middle of its second run and finished with ``--resume``; then
claims.json is checked against the runs' own heldout.json and archives, and claims.html is parsed and rendered
in headless Chromium (skipped exactly when tests/test_report.py's browser test skips).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from archive import Archive
from engine.experiments.cli import main
from engine.search.heldout import paired_bootstrap
from tests.test_report import chromium, decode_png, pixels_of, run_chromium

REPO = Path(__file__).resolve().parents[1]
BENCH = "support_desk.envs:SupportDesk"
KEY = "support_desk.envs_SupportDesk"
FLAGS = ["--benchmarks", BENCH, "--seeds", "2", "--steps", "2", "--backend", "none", "--variants", "softmax,greedy",
         "--train", "3", "--test", "2", "--heldout-test", "3", "--validation-top", "0", "--transfer-steps", "2,15"]
CELLS = [f"{KEY}-{v}-s{s}" for v in ("softmax", "greedy") for s in (0, 1)]
VERDICTS = {"reproduced", "partly", "not reproduced"}


def _env(tmp: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "examples" / "support_desk"), str(REPO),
                                                      env.get("PYTHONPATH")]))
    env["ALMA_EVAL_CACHE"] = str(tmp / "eval-cache")  # every evaluation of this test is computed here
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "engine.experiments", "claims", *args]


def _archive_state(run_dir: Path) -> list[tuple]:
    with Archive.open(run_dir, lock=False) as a:
        return [(e.id, e.design_id, e.split, e.status, e.score, e.runs) for e in a.evaluations()]


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """Run the miniature experiment, kill -9 it in its second run, resume it; return what the checks need."""
    tmp = tmp_path_factory.mktemp("claims")
    out, env = tmp / "experiments", _env(tmp)
    started = time.monotonic()
    first = subprocess.Popen(_command(*FLAGS, "--id", "mini", "--out-dir", str(out)), cwd=tmp, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    watchdog = threading.Timer(240, lambda: os.killpg(first.pid, signal.SIGKILL))
    watchdog.start()
    lines, killed_at = [], None
    try:
        for line in first.stdout:
            lines.append(line)
            if line.startswith(f"  {CELLS[1]}: step 1/2"):  # the second run is half way through its steps
                killed_at = line
                os.killpg(first.pid, signal.SIGKILL)  # the experiment, its evolve run and every evaluation
                break
    finally:
        watchdog.cancel()
        first.wait(timeout=60)
        first.stdout.close()
    assert killed_at, "the experiment never reached its second run:\n" + "".join(lines[-40:])
    exp = out / "mini"
    finished_before = {p.stem: p.read_bytes() for p in (exp / "finished").glob("*.json")}
    archives_before = {k: _archive_state(exp / "runs" / k) for k in finished_before}
    resumed = subprocess.run(_command("--resume", "mini", "--out-dir", str(out)), cwd=tmp, env=env,
                             capture_output=True, text=True, timeout=400)
    return {"dir": exp, "first": "".join(lines), "resumed": resumed, "finished_before": finished_before,
            "archives_before": archives_before, "seconds": time.monotonic() - started}


def test_kill_and_resume_finish_the_same_runs(experiment):
    exp, resumed = experiment["dir"], experiment["resumed"]
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert set(experiment["finished_before"]) == {CELLS[0]}  # killed in the second run: one had finished
    assert f"{CELLS[0]}: finished before, skipped" in resumed.stdout
    assert f"{CELLS[1]}: resuming the interrupted run" in resumed.stdout
    # every planned run finished, once, in its own run directory; nothing else was started
    plan = json.loads((exp / "experiment.json").read_text())
    assert sorted(plan["cells"]) == sorted(CELLS)
    assert sorted(p.stem for p in (exp / "finished").glob("*.json")) == sorted(CELLS)
    assert sorted(p.name for p in (exp / "runs").iterdir()) == sorted(CELLS)
    # the run that had finished was not run again: its record and its archive are as they were
    for key, data in experiment["finished_before"].items():
        assert (exp / "finished" / f"{key}.json").read_bytes() == data
        assert _archive_state(exp / "runs" / key) == experiment["archives_before"][key]
    # the interrupted run continued: every step once, no evaluation left running or counted twice
    for key in CELLS:
        record = json.loads((exp / "finished" / f"{key}.json").read_text())
        assert record["steps_done"] == 2 and len(record["fitness_curve"]) == 3
        state = _archive_state(exp / "runs" / key)
        assert all(status in ("done", "failed") for _, _, _, status, _, _ in state)
        pairs = [(d, split) for _, d, split, status, _, _ in state if status == "done"]
        assert len(pairs) == len(set(pairs))
    assert [i.get("resume", False) for i in plan["invocations"]] == [False, True]
    print(f"miniature experiment, kill -9 and resume: {experiment['seconds']:.0f} s")


def _heldout(exp: Path, key: str) -> dict:
    return json.loads((exp / "runs" / key / "heldout.json").read_text())


def _successes(exp: Path, key: str, design_id: str) -> dict:
    with Archive.open(exp / "runs" / key, lock=False) as a:
        done = [e for e in a.evaluations(design_id, split="heldout") if e.status == "done"]
    return done[-1].successes


def test_claims_json_agrees_with_the_runs(experiment):
    exp = experiment["dir"]
    doc = json.loads((exp / "claims.json").read_text())
    assert doc["complete"] and set(doc["runs"]) == set(CELLS) and set(doc["claims"]) == {"1", "2", "3"}
    assert doc["commands"][0].startswith("python -m engine.experiments claims --benchmarks " + BENCH)
    assert doc["resumed"] == [f"python -m engine.experiments claims --resume mini --out-dir {exp.parent}"]
    for claim in doc["claims"].values():
        assert claim["verdict"] in VERDICTS and claim["text"]
        for block in claim["benchmarks"].values():
            assert block["verdict"] in VERDICTS
            prov = block["provenance"]
            assert prov["commands"] == doc["commands"] and prov["finished"] == prov["planned"]

    # claim 1: the paper's rule's runs, per seed as in each heldout.json, pooled over (seed, task) pairs
    c1 = doc["claims"]["1"]["benchmarks"][BENCH]
    assert c1["provenance"]["run_ids"] == CELLS[:2]
    assert c1["baselines"] == ["no_memory", "trajectory_retrieval"]
    pooled: dict[str, dict] = {}
    for row, key in zip(c1["per_seed"], CELLS[:2], strict=True):
        held = _heldout(exp, key)
        assert row["run_id"] == key and row["heldout_seed"] == held["suite_seed"] == 1000 + row["seed"]
        for d in held["designs"]:
            if d["kind"] == "seed":
                assert row["scores"][d["name"]] == d["score"]
                pooled.setdefault(d["name"], {}).update(
                    {f"{row['seed']}/{t}": v for t, v in _successes(exp, key, d["id"]).items()})
        best = held["best_evolved"]
        assert best and row["best_evolved"] == {k: best[k] for k in ("id", "name", "score")}
        assert row["scores"]["best evolved"] == best["score"]
        vs = best["vs_best_baseline"]
        assert [row["vs"][vs["baseline"]][k] for k in ("diff", "ci95")] == [vs["diff"], vs["ci95"]]
        assert [row["vs"]["no_memory"][k] for k in ("diff", "ci95")] == [best["vs_no_memory"]["diff"],
                                                                          best["vs_no_memory"]["ci95"]]
        pooled.setdefault("best evolved", {}).update(
            {f"{row['seed']}/{t}": v for t, v in _successes(exp, key, best["id"]).items()})
    for name, table in pooled.items():
        assert len(table) == 6  # 2 seeds x 3 held-out tasks
        assert c1["pooled"]["scores"][name] == pytest.approx(sum(table.values()) / len(table), abs=1e-6)
    for name in c1["baselines"]:
        diff, ci = paired_bootstrap(pooled["best evolved"], pooled[name])
        assert c1["pooled"]["vs"][name] == {"diff": diff, "ci95": ci, "n": 6}
    assert list(c1["by_rule"]) == ["softmax", "greedy"]  # every rule's pick on the same held-out suites
    assert c1["by_rule"]["softmax"]["score"] == c1["pooled"]["scores"]["best evolved"]
    assert c1["by_rule"]["softmax"]["vs"] == {n: c1["pooled"]["vs"][n] for n in c1["baselines"]}
    gains = c1["pooled"]["gain_over_no_memory"]
    denom = gains["trajectory_retrieval"]["diff"]
    assert c1["best_baseline"] == "trajectory_retrieval"
    if denom > 0:
        assert c1["gain_ratio"] == pytest.approx(gains["best evolved"]["diff"] / denom, abs=1e-3)
    else:
        assert c1["gain_ratio"] == "undefined"

    # claim 2: both rules, the same step budget, curves from the archives, the paired difference at the end
    c2 = doc["claims"]["2"]["benchmarks"][BENCH]
    assert list(c2["variants"]) == ["softmax", "greedy"] and c2["same_budget"]
    for variant, keys in (("softmax", CELLS[:2]), ("greedy", CELLS[2:])):
        v = c2["variants"][variant]
        assert v["run_ids"] == keys and v["steps_done"] == [2, 2]
        assert all(len(c) == 3 for c in v["curves"].values()) and len(v["curve"]["mean"]) == 3
        for key, seed in zip(keys, ("0", "1"), strict=True):
            assert v["heldout"]["per_seed"][seed] == _heldout(exp, key)["best_evolved"]["score"]
            with Archive.open(exp / "runs" / key, lock=False) as a:
                history = a.best_history(benchmark=BENCH, split="id")
            assert v["curves"][seed][-1] == pytest.approx(history[-1][1])
    sm = {f"{s}/{t}": x for s, k in enumerate(CELLS[:2])
          for t, x in _successes(exp, k, _heldout(exp, k)["best_evolved"]["id"]).items()}
    gr = {f"{s}/{t}": x for s, k in enumerate(CELLS[2:])
          for t, x in _successes(exp, k, _heldout(exp, k)["best_evolved"]["id"]).items()}
    diff, ci = paired_bootstrap(sm, gr)
    assert c2["differences"]["softmax-greedy"] == {"diff": diff, "ci95": ci, "n": 6}

    # claim 3: every run's pick and the baselines, under the run's agent and two step budgets
    c3 = doc["claims"]["3"]["benchmarks"][BENCH]
    assert [a["name"] for a in c3["agents"]] == ["learned", "weaker", "stronger"]
    assert c3["missing_evaluations"] == 0
    rows = {r["design"]: r for r in c3["rows"]}
    assert set(rows) == {"no_memory", "trajectory_retrieval", "best evolved (softmax)", "best evolved (greedy)"}
    for key in CELLS:
        for agent, limit in (("weaker", 2), ("stronger", 15)):
            best = _heldout(exp, key)["best_evolved"]["id"]
            record = json.loads((exp / "transfer" / key / f"{best}-{agent}.json").read_text())
            assert record["protocol"]["step_limit"] == limit and record["outcome"] == "ok"
    for agent in ("learned", "weaker", "stronger"):
        assert rows["no_memory"]["cells"][agent]["n"] == 6 and rows["no_memory"]["cells"][agent]["gain"] is None
        gain = rows["trajectory_retrieval"]["cells"][agent]["gain"]
        score = rows["trajectory_retrieval"]["cells"][agent]["score"]
        assert gain["diff"] == pytest.approx(score - rows["no_memory"]["cells"][agent]["score"], abs=2e-6)
    assert rows["best evolved (softmax)"]["cells"]["learned"]["score"] == c1["pooled"]["scores"]["best evolved"]


class _Page(HTMLParser):
    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_claims_html_is_self_contained(experiment):
    exp = experiment["dir"]
    html = (exp / "claims.html").read_text()
    page = _Page(html)
    tags = [t for t, _ in page.tags]
    assert "script" not in tags and "link" not in tags and "img" not in tags and "iframe" not in tags
    assert not any("src" in attrs or (attrs.get("href") or "#").startswith(("http", "//", "file"))
                   for _, attrs in page.tags)
    assert "http://" not in html and "https://" not in html and "@import" not in html
    classes = {attrs.get("class") for _, attrs in page.tags}
    assert {"claim1", "claim2", "claim3", "curves", "provenance"} <= classes
    assert sum(1 for _, a in page.tags if a.get("class") == "curve-mean") == 2
    for key in CELLS:
        assert key in html
    assert "--resume mini" in html and "gain-ratio" in html


def test_claims_html_renders_in_chromium(experiment, tmp_path):
    browser = chromium()  # skips exactly where tests/test_report.py's browser test skips
    path = experiment["dir"] / "claims.html"
    shot = tmp_path / "claims.png"
    proc = run_chromium(browser, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1300,2400",
                        "--hide-scrollbars", path.resolve().as_uri())
    assert shot.is_file(), f"no screenshot: rc {proc.returncode}\n{proc.stderr[-3000:]}"
    img = decode_png(shot.read_bytes())
    assert img.shape == (2400, 1300, 3)
    assert pixels_of(img, "#24292f") > 20_000  # the header bar
    assert pixels_of(img, "#cf222e") + pixels_of(img, "#0969da") > 300  # the softmax and greedy curves
    proc = run_chromium(browser, tmp_path / "profile-dom", "--dump-dom", path.resolve().as_uri())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'class="curves"' in proc.stdout and 'class="claim1"' in proc.stdout


@pytest.mark.parametrize("args, message", [
    (["--claims", "4"], "--claims takes 1, 2 and/or 3"),
    (["--seeds", "0"], "--seeds must be at least 1"),
    (["--variants", "softmax,novelty"], "claim 2 compares softmax with greedy"),
    (["--variants", "softmax,greedy,random"], "unknown search rule"),
    (["--benchmarks", "no_such_pkg.envs:Nothing"], "benchmark 'no_such_pkg.envs:Nothing' does not load"),
    (["--transfer-steps", "9,3"], "--transfer-steps takes WEAK,STRONG"),
    (["--resume", "nothing-here"], "no experiment 'nothing-here'"),
    (["--resume", "x", "--seeds", "2"], "--resume finishes the experiment as planned"),
    (["--id", "bad id!"], "bad experiment id"),
    (["--id", "new", "--extend"], "there is no experiment 'new'"),
])
def test_bad_input_is_refused_before_anything_runs(tmp_path, capsys, args, message):
    rc = main(["claims", *args, "--out-dir", str(tmp_path)])
    assert rc == 2 and message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing was planned or written
