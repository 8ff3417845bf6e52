"""``python -m engine.experiments claims``: run the paper's three claims and write claims.json + claims.html.

::

    python -m engine.experiments claims [--benchmarks support_desk,textworld] [--seeds 3] [--steps N]
        [--budget-minutes M] [--claims 1,2,3] [--variants softmax,greedy,novelty] [--backend auto]
        [--id NAME [--extend]] [--resume ID] [--all-seeds] [--llm-transfer] [--meta-share F]
        [--train N] [--test N] [--heldout-test N] [--validation-top N] [--transfer-steps WEAK,STRONG]
        [--out-dir experiments]

Resumable: after ``kill -9``, ``--resume ID`` finishes what the experiment planned; finished runs and recorded
claim-3 evaluations are skipped, an interrupted run continues with ``engine.api.evolve(resume=...)``.
``--id NAME --extend`` adds runs to an experiment (another benchmark, claim or run seed); a run already planned
keeps its config. Exit codes: 0 done, 2 bad input, 1 a run failed (resume it), 130 interrupted.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from engine.experiments.layout import Experiment, ExperimentError, check_id
from engine.experiments.plan import (
    DEFAULT_VARIANTS,
    PAPER_RULE,
    VARIANTS,
    Options,
    copy_seeds,
    merge,
    plan_cells,
    transfer_agents,
    variants_for,
)
from engine.experiments.settings import benchmark_settings

DEFAULT_BENCHMARKS = ("support_desk", "textworld")
SEEDS_DIR = Path(__file__).resolve().parents[2] / "seeds"
#: flags that shape a plan (refused with --resume, which finishes the recorded plan)
PLAN_FLAGS = ("benchmarks", "seeds", "steps", "budget_minutes", "backend", "claims", "variants", "meta_share",
              "train", "test", "heldout_test", "validation_top", "transfer_steps", "all_seeds", "llm_transfer")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine.experiments",
                                description="Reproduce the ALMA paper's claims offline.")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("claims", help="run the three claims' experiments; write claims.json and claims.html",
                       description=__doc__.split("\n\n")[0])
    c.add_argument("--benchmarks", help=f"comma-separated (default: {','.join(DEFAULT_BENCHMARKS)})")
    c.add_argument("--seeds", type=int, help="run seeds per benchmark and search rule (default 3)")
    c.add_argument("--steps", type=int, help="steps per run: the budget, in evaluations (default 40)")
    c.add_argument("--budget-minutes", type=float, help="each run's time budget; keep it far above what the "
                                                         "steps need so every run gets its steps (default 600)")
    c.add_argument("--claims", help="which claims, comma-separated (default 1,2,3)")
    c.add_argument("--variants", help=f"claim 2's search rules (default {','.join(DEFAULT_VARIANTS)}; "
                                      f"known: {', '.join(VARIANTS)})")
    c.add_argument("--backend", choices=["auto", "bubblewrap", "docker", "none"], help="sandbox (default auto)")
    c.add_argument("--id", help="the experiment's name (default: a timestamp)")
    c.add_argument("--extend", action="store_true", help="add this invocation's runs to the existing --id")
    c.add_argument("--resume", metavar="ID", help="finish the experiment ID as planned")
    c.add_argument("--all-seeds", action="store_true", default=None,
                   help="every baseline in seeds/ (the LLM-calling ones take minutes per evaluation)")
    c.add_argument("--llm-transfer", action="store_true", default=None,
                   help="claim 3 also with the LLM task agent on the embedded model (slow on a CPU)")
    c.add_argument("--meta-share", type=float, help="share of meta-agent steps (default 0: structural only)")
    c.add_argument("--train", type=int, help="training tasks per evaluation (default: per benchmark)")
    c.add_argument("--test", type=int, help="test tasks of the fitness suite (default: per benchmark)")
    c.add_argument("--heldout-test", type=int, help="test tasks of each held-out suite (default: per benchmark)")
    c.add_argument("--validation-top", type=int, help="designs re-evaluated on the validation suite before the "
                                                      "pick (default: the engine's, 5)")
    c.add_argument("--transfer-steps", help="claim 3's step budgets WEAK,STRONG (default: per benchmark)")
    c.add_argument("--out-dir", default="experiments", help="where experiments live (default experiments/)")
    return p


def _ints(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ExperimentError(f"--{what} takes comma-separated integers, got {text!r}") from None
    if not values:
        raise ExperimentError(f"--{what} is empty")
    return values


def _names(text: str, what: str) -> tuple[str, ...]:
    values = tuple(dict.fromkeys(x.strip() for x in text.split(",") if x.strip()))
    if not values:
        raise ExperimentError(f"--{what} is empty")
    return values


def check_benchmark(name: str) -> str:
    """The benchmark's own name (its settings' table); raises ExperimentError, with how to install it where
    known, when ``name`` does not load here."""
    from harness.envs import get_benchmark
    from harness.errors import BenchmarkError

    try:
        return str(getattr(get_benchmark(name), "name", name) or name)
    except BenchmarkError as exc:
        hint = benchmark_settings(name).install
        raise ExperimentError(f"benchmark {name!r} does not load: {exc}"
                              + (f"\ninstall it with: {hint}" if hint else "")) from exc


def options(args: argparse.Namespace) -> Options:
    """The invocation's validated options (defaults filled in)."""
    benchmarks = _names(args.benchmarks or ",".join(DEFAULT_BENCHMARKS), "benchmarks")
    claims = _ints(args.claims or "1,2,3", "claims")
    if set(claims) - {1, 2, 3}:
        raise ExperimentError(f"--claims takes 1, 2 and/or 3, got {args.claims!r}")
    variants = _names(args.variants or ",".join(DEFAULT_VARIANTS), "variants")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise ExperimentError(f"unknown search rule(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    if 2 in claims and not {PAPER_RULE, "greedy"} <= set(variants):
        raise ExperimentError("claim 2 compares softmax with greedy: --variants must name both")
    checks = [("seeds", args.seeds, 1), ("steps", args.steps, 1), ("train", args.train, 0), ("test", args.test, 1),
              ("heldout-test", args.heldout_test, 1), ("validation-top", args.validation_top, 0)]
    for flag, value, low in checks:
        if value is not None and value < low:
            raise ExperimentError(f"--{flag} must be at least {low}, got {value}")
    if args.budget_minutes is not None and not args.budget_minutes > 0:
        raise ExperimentError(f"--budget-minutes must be positive, got {args.budget_minutes}")
    if args.meta_share is not None and not 0.0 <= args.meta_share <= 1.0:
        raise ExperimentError(f"--meta-share must lie in [0, 1], got {args.meta_share}")
    if args.transfer_steps is not None:
        steps = _ints(args.transfer_steps, "transfer-steps")
        if len(steps) != 2 or min(steps) < 1 or steps[0] >= steps[1]:
            raise ExperimentError(f"--transfer-steps takes WEAK,STRONG with 1 <= WEAK < STRONG, got "
                                  f"{args.transfer_steps!r}")
    return Options(benchmarks=benchmarks, seeds=args.seeds or 3, steps=args.steps or 40,
                   budget_minutes=args.budget_minutes or 600.0, backend=args.backend or "auto", claims=claims,
                   variants=variants, meta_share=0.0 if args.meta_share is None else args.meta_share,
                   validation_top=args.validation_top, all_seeds=bool(args.all_seeds),
                   llm_transfer=bool(args.llm_transfer))


def _check_backend(name: str) -> None:
    from sandbox.backend import select_backend
    from sandbox.errors import SandboxError

    try:
        select_backend(name).close()
    except SandboxError as exc:
        raise ExperimentError(f"sandbox backend {name!r} cannot run here: {exc}; choose another with "
                              "--backend") from exc


def prepare(args: argparse.Namespace, command: str) -> tuple[Experiment, dict]:
    """The experiment and its plan (written), from a new invocation or a --resume. Raises ExperimentError."""
    out_dir = Path(args.out_dir)
    entry = {"command": command, "at": time.time()}
    if args.resume:
        given = [f"--{f.replace('_', '-')}" for f in PLAN_FLAGS if getattr(args, f) not in (None, False)]
        if args.id or args.extend or given:
            raise ExperimentError("--resume finishes the experiment as planned; it takes no "
                                  f"{', '.join(given) or '--id/--extend'} (add runs with --id ID --extend)")
        exp = Experiment(out_dir / check_id(args.resume))
        if not exp.exists():
            raise ExperimentError(f"no experiment {args.resume!r} under {out_dir}/ (no experiment.json)")
        plan = exp.read_plan()
        plan["invocations"].append({**entry, "resume": True})
        exp.write_plan(plan)
        return exp, plan
    name = check_id(args.id) if args.id else time.strftime("%Y%m%d-%H%M%S")
    exp = Experiment(out_dir / name)
    if exp.exists() and not args.extend:
        raise ExperimentError(f"experiment {name!r} exists ({exp.root}): finish it with --resume {name}, or add "
                              f"runs with --id {name} --extend")
    if args.extend and not exp.exists():
        raise ExperimentError(f"--extend: there is no experiment {name!r} under {out_dir}/ to extend")
    opts = options(args)
    tables = {bench: check_benchmark(bench) for bench in opts.benchmarks}
    _check_backend(opts.backend)
    weak, strong = _ints(args.transfer_steps, "transfer-steps") if args.transfer_steps else (None, None)
    settings = {b: benchmark_settings(b, tables[b], n_train=args.train, n_test=args.test,
                                      heldout_n_test=args.heldout_test, transfer_weaker=weak,
                                      transfer_stronger=strong) for b in opts.benchmarks}
    plan = exp.read_plan() if exp.exists() else {"experiment": name, "created": time.time(), "invocations": [],
                                                 "cells": {}, "benchmarks": {}}
    seeds = copy_seeds(SEEDS_DIR, exp.seeds_dir, opts.all_seeds)
    if plan.get("seeds") not in (None, seeds) or (opts.all_seeds and seeds != plan.get("seeds", seeds)):
        raise ExperimentError(f"this experiment's runs start from the baselines {plan['seeds']}; use another --id")
    plan["seeds"] = seeds
    plan["invocations"].append({**entry, "options": {k: getattr(opts, k) for k in Options.__dataclass_fields__}})
    cells = plan_cells(opts, settings, runs_dir=exp.runs_dir, seeds_dir=exp.seeds_dir,
                       invocation=len(plan["invocations"]) - 1)
    merge(plan, cells)
    for bench in opts.benchmarks:
        info = plan["benchmarks"].setdefault(bench, {"claims": [], "variants": [], "settings": settings[bench].as_dict(),
                                                     "transfer_agents": []})
        if info["settings"] != settings[bench].as_dict():
            raise ExperimentError(f"{bench} is planned in this experiment with other settings; use another --id")
        info["claims"] = sorted(set(info["claims"]) | set(opts.claims))
        info["variants"] = [v for v in VARIANTS if v in set(info["variants"]) | set(variants_for(opts.claims,
                                                                                                 opts.variants))]
        if 3 in opts.claims:
            agents = transfer_agents(opts, settings[bench])
            known = {a["name"] for a in info["transfer_agents"]}
            info["transfer_agents"] += [a for a in agents if a["name"] not in known]
    exp.write_plan(plan)
    return exp, plan


def write_summary(exp: Experiment, plan: dict) -> dict:
    from engine.experiments.claims import build
    from engine.experiments.page import render
    from harness.files import write_json_atomic, write_text_atomic

    doc = build(exp, plan)
    write_json_atomic(exp.claims_json, doc)
    write_text_atomic(exp.claims_html, render(doc))
    return doc


def execute(exp: Experiment, plan: dict, log) -> dict:
    """Run every planned cell (skipping finished ones), then claim 3's evaluations, then the summary."""
    from engine.experiments.runs import run_cell
    from engine.experiments.transfer import known_jobs, transfer_run

    cells = list(plan["cells"].values())
    log(f"experiment {exp.id}: {len(cells)} runs planned in {exp.root}")
    for i, cell in enumerate(cells, 1):
        tag = f"[{i}/{len(cells)}] {cell['key']}"
        if exp.finished(cell["key"]) is not None:
            log(f"{tag}: finished before, skipped")
            continue
        log(f"{tag}: {cell['benchmark']}, selection {cell['variant']}, run seed {cell['seed']}, "
            f"{cell['config']['steps']} steps")
        started = time.monotonic()
        record = run_cell(exp, cell, log)
        best = record.get("best_evolved") or {}
        log(f"{tag}: done in {(time.monotonic() - started) / 60:.1f} min, {record['steps_done']} steps; pick "
            f"{best.get('name', '-')} held-out {best.get('score', float('nan')):.3f}; {record['verdict']}")
        write_summary(exp, plan)
    for bench, info in plan["benchmarks"].items():
        if 3 not in info["claims"] or not info["transfer_agents"]:
            continue
        known = known_jobs(exp)
        for cell in cells:
            if cell["benchmark"] == bench:
                ran = transfer_run(exp, exp.finished(cell["key"]), info["transfer_agents"], log, known)
                if ran:
                    log(f"claim 3 {cell['key']}: {ran} transfer evaluations recorded")
    return write_summary(exp, plan)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    command = "python -m engine.experiments " + shlex.join(argv)

    def log(line: str) -> None:
        print(line, flush=True)

    from archive.errors import ArchiveError
    from engine.config import ConfigError
    from engine.search.loop import EngineError
    from harness.errors import BenchmarkError
    from sandbox.errors import SandboxError

    try:
        exp, plan = prepare(args, command)
    except (ExperimentError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    resume = f"python -m engine.experiments claims --resume {exp.id}" + (
        f" --out-dir {shlex.quote(args.out_dir)}" if args.out_dir != "experiments" else "")
    try:
        doc = execute(exp, plan, log)
    except KeyboardInterrupt:
        print(f"interrupted; finish it with: {resume}", file=sys.stderr)
        return 130
    except (ExperimentError, ConfigError, BenchmarkError, SandboxError, EngineError, ArchiveError) as exc:
        print(f"error: {exc}\nfinish the experiment with: {resume}", file=sys.stderr)
        return 1
    from engine.experiments.text import render_text

    log(render_text(doc))
    log(f"\nclaims.json: {exp.claims_json}\nclaims.html: {exp.claims_html}")
    return 0
