"""``python -m engine.replay RUN_DIR DESIGN_ID``: re-run an archived design exactly, offline, and audit it.

The replay plays the archived evaluation's ``job.json`` again (same tasks, seeds, agent and protocol) in the
sandbox. By default every LLM and embedding call is served from the run's cassette (broker cassette mode
``replay``, no upstream at all: no key, no network), so on a deterministic benchmark it must reproduce the
archived score and every episode's actions exactly; a mismatch is reported with the first diverging episode
and step. ``--live`` uses the run's configured task model instead (cassette off) and reports the difference;
``--strict`` halves the memory, pids, scratch and output limits and shortens the timeout.

Before anything runs, :mod:`engine.replay.checks` verifies the design (its source hashes to its id),
``job.json`` / ``result.json`` against the archive and ``config.toml``, and every cassette entry; anything
tampered with is reported and nothing is replayed. Every replay is audited, statically
(:func:`engine.audit.static.static_audit`) and at run time (:func:`engine.audit.verdict.runtime_summary`), with a
verdict (:func:`engine.audit.verdict.full_verdict`). The report goes to ``--out`` (default
``RUN_DIR/evals/<id>/replay-<timestamp>/``): ``replay.json``, ``replay.txt``, ``job.json``,
``sandbox-report.json`` and ``replay-result.json`` (not ``result.json``: the evolve loop reads those).

The archive is read with ``lock=False``. Writing back needs the run lock: when it can be taken (no engine is
running on the run) the verdict is stored with ``set_audit``, the replay is recorded as an evaluation with
``purpose="replay"`` (never pooled into scores; only for a design that already has a finished score
evaluation there, so the evolve loop's resume logic never mistakes it for its own) and a ``replay`` event is
logged. When an engine holds the lock, only the report files are written, and the report says so.

Exit codes: 0 reproduced (or ``--live`` finished), 1 the replay does not reproduce the archived evaluation,
2 bad input (run directory, design, no archived evaluation), 3 the sandbox or the job's infrastructure
failed, 5 integrity failure (nothing was replayed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from archive import Archive, ArchiveError, ArchiveLocked, Design, Evaluation, UnknownDesign, task_successes
from engine.audit.static import static_audit
from engine.audit.verdict import full_verdict, runtime_summary
from engine.config import ConfigError, EvolveConfig, load_config
from engine.replay.checks import job_problems, verify_cassette
from engine.replay.text import compare, render_text
from engine.search.evaluator import artefact_dir
from harness.files import write_text_atomic
from harness.jobspec import EvalResult, JobSpec
from sandbox.limits import Limits
from sandbox.outcome import Outcome

EXIT_OK, EXIT_MISMATCH, EXIT_INPUT, EXIT_INFRA, EXIT_INTEGRITY = 0, 1, 2, 3, 5


class ReplayError(Exception):
    """The replay cannot start; ``code`` is the exit code."""

    def __init__(self, message: str, code: int = EXIT_INPUT):
        super().__init__(message)
        self.code = code


@dataclass
class Plan:
    """Everything a replay starts from, read from the run directory."""

    run_dir: Path
    config: EvolveConfig
    design: Design
    evaluation: Evaluation
    eval_dir: Path
    job: JobSpec
    archived: EvalResult | None
    archived_report: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine.replay", description=__doc__.split("\n")[0],
                                epilog="exit codes: 0 reproduced (or --live done), 1 mismatch, 2 bad input, "
                                       "3 sandbox/infrastructure failure, 5 integrity failure (not replayed)")
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run directory (runs/<id>)")
    p.add_argument("design", metavar="DESIGN_ID", help="design id or a unique prefix of one")
    p.add_argument("--benchmark", help="which archived evaluation to replay (default: the run's benchmark)")
    p.add_argument("--split", choices=["id", "ood", "heldout"],
                   help="which split's evaluation (default: the run's split; heldout: the final table's)")
    p.add_argument("--live", action="store_true", help="use the configured task model instead of the cassette")
    p.add_argument("--task-base-url", help="with --live: OpenAI-compatible endpoint of the task model")
    p.add_argument("--task-model", help="with --live: task model name")
    p.add_argument("--strict", action="store_true", help="half memory/pids/scratch/output, shorter timeout")
    p.add_argument("--backend", choices=["auto", "docker", "bubblewrap", "none"],
                   help="sandbox backend (default: the run's)")
    p.add_argument("--out", help="report directory (default: RUN_DIR/evals/<id>/replay-<timestamp>/)")
    return p


def _pick_evaluation(archive: Archive, design: Design, benchmark: str, split: str) -> list[Evaluation]:
    evals = [e for e in archive.evaluations(design.id, benchmark=benchmark, split=split)
             if e.purpose == "score" and e.status in ("done", "failed")]
    return sorted(evals, key=lambda e: (e.status == "done", e.id), reverse=True)


def locate(run_dir: Path, design_ref: str, benchmark: str | None, split: str | None) -> Plan:
    """Read the design, its archived evaluation and that evaluation's files (the archive with ``lock=False``)."""
    if not (run_dir / "archive.sqlite").is_file():
        raise ReplayError(f"{run_dir} is not a run directory (no archive.sqlite); pass runs/<run-id>")
    try:
        config = load_config(run_dir / "config.toml") if (run_dir / "config.toml").is_file() else None
    except ConfigError as exc:
        raise ReplayError(f"cannot read the run's configuration: {exc}") from exc
    with Archive.open(run_dir, lock=False) as archive:
        try:
            design = archive.get(design_ref)
        except UnknownDesign as exc:
            raise ReplayError(str(exc)) from exc
        b = benchmark or (config.eval.benchmark if config else None)
        s = split or (config.eval.split if config else "id")
        evals = _pick_evaluation(archive, design, b, s) if b else []
        if not evals:
            have = sorted({f"{e.benchmark}/{e.split}" for e in archive.evaluations(design.id)})
            raise ReplayError(f"design {design.name} ({design.id}) has no finished evaluation on {b}/{s} to replay"
                              + (f"; it has {', '.join(have)} (use --benchmark/--split)" if have else
                                 "; evaluate it first (python -m engine.evolve --resume RUN_DIR)"))
    for ev in evals:  # the run directory's own layout first; artefact paths only where they lie inside it
        inside = [p for p in (Path(a) if Path(a).is_absolute() else run_dir / a for a in ev.artefacts)
                  if p.resolve().is_relative_to(run_dir.resolve())]
        for where in [artefact_dir(run_dir, design.id, s), *inside]:
            if (where / "job.json").is_file():
                return _read_files(run_dir, config or EvolveConfig(), design, ev, where, config is None)
    raise ReplayError(f"the archived evaluation of {design.id} on {b}/{s} has no job.json (looked in "
                      f"{artefact_dir(run_dir, design.id, s)}); it cannot be replayed exactly")


def _read_files(run_dir: Path, config: EvolveConfig, design: Design, ev: Evaluation, where: Path,
                no_config: bool) -> Plan:
    try:
        job = JobSpec.model_validate_json((where / "job.json").read_text(encoding="utf-8"))
    except (OSError, ValidationError) as exc:
        raise ReplayError(f"{where / 'job.json'} is not a valid job spec (edited?): {str(exc)[:300]}",
                          EXIT_INTEGRITY) from exc
    archived, report, problems = None, {}, []
    if (where / "result.json").is_file():
        try:
            archived = EvalResult.model_validate_json((where / "result.json").read_text(encoding="utf-8"))
        except (OSError, ValidationError) as exc:
            problems.append(f"{where / 'result.json'} is not a valid result document (edited?): {str(exc)[:200]}")
    elif ev.status == "done":
        problems.append(f"the evaluation finished ok but {where / 'result.json'} is missing")
    if (where / "report.json").is_file():
        try:
            report = json.loads((where / "report.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            report = {}
    more, warnings = job_problems(design, ev, job, archived, None if no_config else config)
    if no_config:
        warnings.append("the run has no config.toml: limits and models are the defaults")
    return Plan(run_dir, config, design, ev, where, job, archived, report, problems + more, warnings)


def replay_limits(config: EvolveConfig, strict: bool, archived_wall: float | None) -> Limits:
    s = config.sandbox
    limits = Limits(memory_mb=s.memory_mb, pids=s.pids, cpus=s.cpus, wall_s=s.timeout_s)
    if not strict:
        return limits
    wall = s.timeout_s / 2 if not archived_wall else min(s.timeout_s / 2, max(60.0, 3 * archived_wall + 30))
    return Limits(memory_mb=max(256, s.memory_mb // 2), pids=max(32, s.pids // 2), cpus=s.cpus, wall_s=wall,
                  scratch_mb=max(32, limits.scratch_mb // 2), output_mb=max(8, limits.output_mb // 2))


def live_url(args: argparse.Namespace, config: EvolveConfig) -> str | None:
    """The live task model's endpoint: ``--task-base-url``, else the run's (None: the embedded model)."""
    return args.task_base_url or config.task.base_url


def run_job(plan: Plan, args: argparse.Namespace, cassette: Path | None, limits: Limits, out_dir: Path):
    """Play the job once in the sandbox and return its :class:`sandbox.job.JobReport`: through the run's own
    evaluation path (an Evaluator and the local job executor), its broker replaying ``cassette`` (or live)."""
    from engine.models import task_broker_config
    from engine.search.evaluator import Evaluator
    from engine.search.executors import EvaluationJob, job_executor

    c = plan.config
    spec = plan.job.model_copy(deep=True)
    embedder = spec.models.embedder
    # the embedding model the recording broker sent upstream (and keyed its cassette with)
    embed_model = {"hashing": "hashing", "remote": spec.models.embed_model}.get(embedder)
    if cassette is None and args.task_model:
        spec.models.chat_model = args.task_model
    cfg = task_broker_config(c, cassette_dir=cassette, cassette_mode="replay" if cassette is not None else "off",
                             chat_model=spec.models.chat_model, base_url=None if cassette else live_url(args, c),
                             embedder=embedder, embed_model=embed_model)
    evaluator = Evaluator(c, plan.run_dir, backend=args.backend, broker_config=cfg, limits=limits)
    try:
        with job_executor("local", c, plan.run_dir, evaluator=evaluator) as jobs:
            done = jobs.run(EvaluationJob("replay", plan.design.id, spec, out_dir / "sandbox"))
    finally:
        evaluator.close()
    if done.report is None:
        raise ValueError(f"the replay job failed to run: {done.error}")
    return done.report


def record(plan: Plan, doc: dict[str, Any], report, out_dir: Path) -> dict[str, Any]:
    """Store the verdict and the replay in the archive when the run lock is free; else explain why not."""
    try:
        archive = Archive.open(plan.run_dir, lock=True)
    except ArchiveLocked as exc:
        return {"recorded": False, "note": f"not recorded in the archive: {exc} (an engine is running on this run); "
                                           "the report files are the only record"}
    except ArchiveError as exc:
        return {"recorded": False, "note": f"not recorded in the archive: {exc}"}
    d, ev, audit = plan.design, plan.evaluation, doc["audit"]
    result = report.result
    with archive:
        archive.set_audit(d.id, audit["verdict"], "; ".join(audit["reasons"])[:1000] or None)
        done = [e for e in archive.evaluations(d.id, benchmark=ev.benchmark, split=ev.split)
                if e.purpose == "score" and e.status == "done"]
        ev_id, note = None, "audit verdict stored; "
        if done and archive.get(d.id).status != "invalid" and report.outcome is not Outcome.INFRA_ERROR:
            rec = archive.begin_evaluation(d.id, ev.benchmark, ev.split, mode=ev.mode, purpose="replay")
            usage = result.usage if (result is not None and doc["mode"] == "live") else None
            if report.outcome is Outcome.OK and result is not None:
                archive.finish_evaluation(rec.id, outcome="ok", score=result.score, stderr=result.stderr,
                                          successes=task_successes(result.episodes), usage=usage,
                                          wall_s=report.wall_s, artefacts=[str(out_dir)])
            else:
                archive.finish_evaluation(rec.id, outcome=report.outcome.value, wall_s=report.wall_s,
                                          error=f"replay: {report.detail}"[:500], artefacts=[str(out_dir)])
            ev_id, note = rec.id, note + f"recorded as evaluation {rec.id} (purpose replay)"
        else:
            note += "no replay evaluation recorded (the design has no finished score evaluation there)"
        archive.record_event("replay", {"design": d.id, "evaluation": ev_id, "mode": doc["mode"],
                                        "strict": doc["strict"], "reproduced": doc["comparison"].get("exact"),
                                        "verdict": audit["verdict"], "out": str(out_dir)})
    return {"recorded": True, "evaluation_id": ev_id, "note": note}


def _default_out(plan: Plan) -> Path:
    base = artefact_dir(plan.run_dir, plan.design.id, f"replay-{time.strftime('%Y%m%d-%H%M%S')}")
    out, n = base, 1
    while out.exists():
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(stderr=True)
    if (args.task_base_url or args.task_model) and not args.live:
        console.print("[red]error:[/] --task-base-url and --task-model only apply with --live")
        return EXIT_INPUT
    try:
        plan = locate(Path(args.run_dir), args.design, args.benchmark, args.split)
    except (ReplayError, ArchiveError) as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}")
        return getattr(exc, "code", EXIT_INPUT)
    out_dir = Path(args.out) if args.out else _default_out(plan)
    out_dir.mkdir(parents=True, exist_ok=True)
    live, ev = args.live, plan.evaluation
    model = args.task_model or plan.job.models.chat_model
    doc: dict[str, Any] = {
        "schema_version": 1, "tool": "engine.replay", "created_at": time.time(), "run_dir": str(plan.run_dir),
        "out_dir": str(out_dir), "mode": "live" if live else "replay", "strict": args.strict,
        "mode_text": (f"live, task model {model} at {live_url(args, plan.config) or 'the embedded model'}"
                      if live else "offline replay from the run's cassette (no upstream, no key)"),
        "design": {"id": plan.design.id, "name": plan.design.name, "proposer": plan.design.proposer,
                   "status": plan.design.status, "audit_before": plan.design.audit},
        "evaluation": {"id": ev.id, "benchmark": ev.benchmark, "split": ev.split, "attempt": ev.attempt,
                       "status": ev.status, "score": ev.score, "job": str(plan.eval_dir / "job.json")},
        "integrity": {"problems": list(plan.problems), "warnings": list(plan.warnings)},
        "replayed": False, "comparison": {}, "archive": {"recorded": False, "note": "not recorded (not replayed)"},
    }
    static = static_audit(plan.design.source)
    snapshot = None if live else Path(tempfile.mkdtemp(prefix="alma-replay-cassette-"))
    try:
        if snapshot is not None:
            cas = verify_cassette(plan.run_dir / "cassette", snapshot)
            doc["integrity"]["cassette"] = {k: cas[k] for k in ("entries", "verified", "indexed")}
            doc["integrity"]["problems"] += cas["problems"]
            doc["integrity"]["warnings"] += cas["warnings"]
        if doc["integrity"]["problems"]:
            doc["audit"] = {"verdict": "not determined", "reasons": ["not replayed: integrity failure"],
                            "static": static}
            return _finish(doc, out_dir, console, EXIT_INTEGRITY)
        limits = replay_limits(plan.config, args.strict, plan.archived_report.get("wall_s"))
        from sandbox.errors import SandboxError

        try:
            report = run_job(plan, args, snapshot, limits, out_dir)
        except (SandboxError, ValueError) as exc:
            doc["audit"] = {"verdict": "not determined", "reasons": [f"not replayed: the sandbox could not run "
                                                                     f"it: {exc}"], "static": static}
            return _finish(doc, out_dir, console, EXIT_INFRA)
    finally:
        if snapshot is not None:
            shutil.rmtree(snapshot, ignore_errors=True)
    doc["replayed"] = True
    write_text_atomic(out_dir / "job.json", plan.job.model_dump_json(indent=2))
    write_text_atomic(out_dir / "sandbox-report.json", report.model_dump_json(indent=2, exclude={"result"}))
    if report.result is not None:
        write_text_atomic(out_dir / "replay-result.json", report.result.model_dump_json(indent=2))
    archived_outcome = str(plan.archived_report.get("outcome", "ok" if plan.archived else "?"))
    doc["comparison"] = compare(plan.archived, archived_outcome, report.result, report.outcome.value)
    runtime = runtime_summary(report.model_dump(mode="json"))
    level, reasons = full_verdict(report.events, report.outcome.value, static)
    doc["audit"] = {"verdict": level, "reasons": reasons, "static": static, "runtime": runtime}
    if report.outcome is Outcome.INFRA_ERROR:
        doc["archive"] = {"recorded": False, "note": "not recorded: the replay failed for infrastructure reasons"}
        return _finish(doc, out_dir, console, EXIT_INFRA)
    doc["archive"] = record(plan, doc, report, out_dir)
    code = EXIT_OK if (live or doc["comparison"]["exact"]) else EXIT_MISMATCH
    return _finish(doc, out_dir, console, code)


def _finish(doc: dict[str, Any], out_dir: Path, console: Console, code: int) -> int:
    doc["exit_code"] = code
    write_text_atomic(out_dir / "replay.json", json.dumps(doc, indent=2, default=str))
    text = render_text(doc)
    write_text_atomic(out_dir / "replay.txt", text)
    c, verdict = doc["comparison"], doc["audit"]["verdict"]
    colour = {"clean": "green", "suspicious": "yellow", "hostile": "red"}.get(verdict, "red")
    if code == EXIT_INTEGRITY:
        console.print("[red]INTEGRITY FAILURE: nothing was replayed[/]\n" +
                      "\n".join(f"  - {escape(p)}" for p in doc["integrity"]["problems"]))
    elif doc["replayed"]:
        state = ("[green]reproduced exactly" if c.get("exact") else
                 "[yellow]differs from the archived evaluation" if doc["mode"] == "live" else "[red]MISMATCH")
        console.print(f"{doc['design']['name']} ({doc['design']['id']}): {state}[/] -- score {c.get('score')} "
                      f"(archived {c.get('archived_score')})")
        if c.get("divergence"):
            v = c["divergence"]
            console.print(escape(f"  first divergence: episode {v['episode']} {v.get('task_id', '')}: {v['what']}"))
    console.print(f"audit: [{colour}]{verdict}[/]" + "".join(f"\n  - {escape(r)}" for r in doc["audit"]["reasons"][:8]))
    console.print(f"report: {out_dir / 'replay.txt'}")
    return code


if __name__ == "__main__":
    sys.exit(main())
