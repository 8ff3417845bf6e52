"""Claim 3: a run's pick and its baselines, deployed without re-learning with other task agents.

Each evaluation is the run's own held-out job (``Evaluator.job_spec(..., "heldout")``: same suite, sizes,
models and design source) with the agent changed: the heuristic agent with another step budget
(``ProtocolSpec.step_limit``, as ``harness.api.evaluate(step_limit=...)`` sets it), or the LLM agent on a very
small suite. It runs in the run's sandbox backend (an evolved design is untrusted code) through the evaluation
cache, and its per-task successes are recorded in ``transfer/<cell>/<design>-<agent>.json`` as soon as it ends,
so an interrupted experiment redoes only the evaluations it had not recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from archive import Archive
from archive.novelty import task_successes
from engine.code.genome import Genome
from engine.config import load_config
from engine.experiments.layout import Experiment, ExperimentError
from engine.search.evalcache import EvalCache, cache_key
from engine.search.evaluator import HELDOUT, Evaluator
from sandbox.outcome import Outcome


def designs_to_transfer(record: dict) -> list[dict]:
    """The run's baselines and its pick (the held-out table's ``best_evolved``), as held-out rows."""
    best = (record.get("best_evolved") or {}).get("id")
    return [d for d in record["heldout_designs"] if d["kind"] == "seed" or d["id"] == best]


def known_jobs(exp: Experiment) -> dict[str, dict]:
    """Every recorded claim-3 evaluation by its job's key (:func:`engine.search.evalcache.cache_key`): a baseline
    on a seed's held-out suite is the same job in every run of that seed, evaluated once."""
    out = {}
    for path in sorted((exp.root / "transfer").glob("*/*.json")):
        record = exp.read_record(path)
        if record and record.get("job_key"):
            out.setdefault(record["job_key"], record)
    return out


def transfer_run(exp: Experiment, record: dict, agents: list[dict], log: Callable[[str], None],
                 known: dict[str, dict] | None = None) -> int:
    """Evaluate every design of ``record`` with every agent not recorded yet; returns how many were recorded.
    ``known``: :func:`known_jobs`, kept up to date here."""
    key, run_dir = record["key"], exp.run_dir(record["key"])
    known = known if known is not None else known_jobs(exp)
    todo = [(d, a) for d in designs_to_transfer(record) for a in agents
            if exp.transfer(key, d["id"], a["name"]) is None]
    if not todo:
        return 0
    with Archive.open(run_dir, lock=False) as archive:
        missing = sorted({d["id"] for d, _ in todo if d["id"] not in archive})
        if missing:
            raise ExperimentError(f"designs {', '.join(missing)} are not in {archive.path}")
        sources = {d["id"]: archive.get(d["id"]).source for d, _ in todo}
    config = load_config(run_dir / "config.toml")
    in_process = config.sandbox.backend == "none"  # no sandbox asked for: play it here, as harness.api does
    evaluator = None
    try:
        for design, agent in todo:
            if evaluator is None:
                evaluator = Evaluator(config, run_dir)
            genome = Genome.from_text(sources[design["id"]], name=design["name"])
            spec = evaluator.job_spec(genome, HELDOUT)
            spec = spec.model_copy(update={
                "job_id": f"{genome.id}-transfer-{agent['name']}",
                "agent": spec.agent.model_copy(update={"kind": agent["agent"]}),
                "protocol": spec.protocol.model_copy(update=agent["protocol"])})
            job_key = cache_key(spec)
            started = time.monotonic()
            if job_key in known:
                same = known[job_key]
                outcome, score, successes, detail = same["outcome"], same["score"], same["successes"], same["detail"]
                where = f"the same job in {same['run']}"
            else:
                outcome, result, detail, where = _play(spec, evaluator, in_process,
                                                       EvalCache.open() if config.eval_cache else None)
                score = None if result is None else result.score
                successes = None if result is None else task_successes(result.episodes)
            entry = {"run": key, "design_id": design["id"], "name": design["name"], "kind": design["kind"],
                     "agent": agent["name"], "label": agent["label"], "agent_kind": agent["agent"],
                     "protocol": spec.protocol.model_dump(mode="json"), "job_key": job_key, "outcome": outcome,
                     "detail": detail[:300], "score": score, "successes": successes, "where": where,
                     "wall_s": round(time.monotonic() - started, 2)}
            exp.write_transfer(key, design["id"], agent["name"], entry)
            known.setdefault(job_key, entry)
            text = f"{score:.3f}" if score is not None else f"outcome {outcome}"
            log(f"  {key}: transfer {design['name']} with {agent['label']}: {text} ({where})")
    finally:
        if evaluator is not None:
            evaluator.close()
    return len(todo)


def _play(spec, evaluator: Evaluator, in_process: bool, cache: EvalCache | None):
    """``(outcome, result or None, detail, where)`` of one job: in this process (the design in its worker, as
    ``harness.api.evaluate`` plays it) or in the run's sandbox through the evaluation cache."""
    if in_process:
        from harness.api import run_job
        from harness.errors import DesignError
        from harness.isolation.proxy import DesignCallError, DesignTimeout

        try:
            return "ok", run_job(spec), "", "in process"
        except DesignTimeout as exc:
            return "timeout", None, str(exc), "in process"
        except (DesignError, DesignCallError) as exc:
            return "design_error", None, str(exc), "in process"
    report = cache.get(spec) if cache else None
    where = "evaluation cache" if report is not None else evaluator.backend_name
    if report is None:
        report = evaluator.runner.run(spec)
        if cache:
            cache.put(spec, report)
    if report.outcome is Outcome.INFRA_ERROR:  # not the design's doing: not recorded, redone on resume
        raise ExperimentError(f"infrastructure failure while evaluating {spec.design.name}: {report.detail}; fix "
                              "it, then resume the experiment")
    ok = report.outcome is Outcome.OK and report.result is not None
    return report.outcome.value, report.result if ok else None, report.detail, where
