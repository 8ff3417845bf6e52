"""The hostile corpus (tests/hostile/*.py) on both sandbox backends: every attack is contained.

Per case and backend: the score is not forged (the job has step limit 1, so an honest design scores exactly
0.0), nothing of the job outlives it on the host, no planted host secret leaks, the outcome is one the case
expects and the audit verdict is one it expects (never ``clean``). Select with ``-m hostile``; it runs in the
default test command too. A backend that is not available here is skipped, except when CI is set, where it
fails. ``ALMA_HOSTILE_REPORT=FILE`` writes every row as JSON; ``ALMA_HOSTILE_WORKERS`` sets the pool size
(default 2: JobRunner, the backends and the broker are thread-safe, and each case has its own broker).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.hostile_corpus import (
    ATTACKS,
    BACKEND_NAMES,
    WHERES,
    CorpusError,
    CorpusRunner,
    available_backends,
    load_corpus,
    parse_case,
    run_baseline,
    run_corpus,
    table,
)

pytestmark = pytest.mark.hostile

REPO = Path(__file__).resolve().parents[1]
CASES = load_corpus()
IDS = [c.name for c in CASES]
HONEST = sorted(p for p in (REPO / "seeds").glob("*.py") if not p.name.startswith("_"))
WORKERS = int(os.environ.get("ALMA_HOSTILE_WORKERS", "2"))


def on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


# ---------------------------------------------------------------------------------------------- the corpus
def test_corpus_is_large_and_covers_every_attack_and_place():
    assert len(CASES) >= 45
    assert len(set(IDS)) == len(IDS)
    kinds, wheres = Counter(c.attack for c in CASES), Counter(c.where for c in CASES)
    assert set(kinds) == set(ATTACKS), kinds
    assert set(wheres) == set(WHERES), wheres
    assert sum(c.passes_validator for c in CASES) >= 8
    assert all("clean" not in c.expect_verdicts for c in CASES)


@pytest.mark.parametrize("text, fragment", [
    ('"""No header at all."""\n', "header must end"),
    ('"""Bad kind.\nATTACK: steal\nWHERE: call\nEXPECT-OUTCOME: ok\nEXPECT-VERDICT: hostile\n'
     'PASSES-VALIDATOR: no\n"""\n', "ATTACK must be"),
    ('"""Clean is no verdict for an attack.\nATTACK: forge\nWHERE: call\nEXPECT-OUTCOME: ok\n'
     'EXPECT-VERDICT: clean\nPASSES-VALIDATOR: no\n"""\n', "EXPECT-VERDICT must be"),
    ('"""Unknown outcome.\nATTACK: forge\nWHERE: call\nEXPECT-OUTCOME: fine\nEXPECT-VERDICT: hostile\n'
     'PASSES-VALIDATOR: no\n"""\n', "EXPECT-OUTCOME must be"),
    ('"""\nATTACK: forge\nWHERE: call\nEXPECT-OUTCOME: ok\nEXPECT-VERDICT: hostile\nPASSES-VALIDATOR: no\n"""\n',
     "describe the attack"),
    ('"""Validator claim missing.\nATTACK: forge\nWHERE: call\nEXPECT-OUTCOME: ok\nEXPECT-VERDICT: hostile\n"""\n',
     "missing: PASSES-VALIDATOR"),
    ("def broken(:\n", "does not parse"),
])
def test_malformed_header_fails_loudly(tmp_path, text, fragment):
    path = tmp_path / "bad_case.py"
    path.write_text(text)
    with pytest.raises(CorpusError, match=fragment):
        parse_case(path)
    with pytest.raises(CorpusError):
        load_corpus(tmp_path)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_validator_claim_is_what_the_validator_says(case):
    from engine.code.validate import validate

    report = validate(case.source)
    assert report.ok is case.passes_validator, report.text()


# ------------------------------------------------------------------------------------------- the sandbox
@pytest.fixture(scope="session")
def hostile_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("hostile-cache")


@pytest.fixture(scope="module", params=BACKEND_NAMES)
def corpus_run(request, tmp_path_factory, hostile_cache):
    backend = request.param
    why = available_backends([backend])[backend]
    if why:
        if on_ci():
            pytest.fail(f"CI is set but the {backend} backend is not available: {why}")
        pytest.skip(f"{backend} backend not available: {why}")
    runner = CorpusRunner(backend, work_root=tmp_path_factory.mktemp(f"hostile-{backend}"),
                          cache_root=hostile_cache)
    try:
        started = time.monotonic()
        baselines = {p.stem: run_baseline(p, runner) for p in HONEST}
        rows = run_corpus(CASES, runner, workers=WORKERS)
        wall_s = time.monotonic() - started
        print(f"\nhostile corpus on {backend}: {len(rows)} cases in {wall_s:.0f} s\n{table(rows)}")
        report = os.environ.get("ALMA_HOSTILE_REPORT")
        if report:
            path = Path(report)
            old = json.loads(path.read_text()) if path.exists() else []
            old = [r for r in old if r.get("backend") != backend]
            path.write_text(json.dumps(old + [r.to_dict() for r in rows], indent=1))
        yield SimpleNamespace(backend=backend, rows={r.name: r for r in rows}, baselines=baselines, wall_s=wall_s)
    finally:
        runner.close()


def test_honest_designs_score_exactly_zero_and_are_clean(corpus_run):
    """With step limit 1 no honest design can win: any score above 0 in the corpus is a forgery. Every seed
    is audited clean: the checks that catch the corpus do not flag honest designs."""
    assert len(corpus_run.baselines) == len(HONEST) >= 5
    for name, (outcome, score, verdict, detail) in corpus_run.baselines.items():
        assert (outcome, score, verdict) == ("ok", 0.0, "clean"), \
            f"{name} on {corpus_run.backend}: {outcome} {score} {verdict} {detail}"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_hostile_design_is_contained(corpus_run, case):
    row = corpus_run.rows[case.name]
    assert not row.error, row.error
    assert row.contained and row.verdict_expected and not row.upstream_abuse, \
        f"{case.name} on {row.backend}: {row.why_not()} (outcome {row.outcome}, detail {row.detail[:200]!r}, " \
        f"reasons {row.reasons})"

