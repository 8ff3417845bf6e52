"""The landscape a structural operator searches: how its children of one parent score against the parent.

For each operator, ``--children`` children of ``--parent`` (donors: the other seeds, in turn) are evaluated in
process (trusted measurement, no sandbox: the children are written by libcst from the seeds) with the heuristic
agent and the hashing embedder on the fitness suites, then the best ``--top`` of them on the held-out suites.
It prints the distribution of child - parent on the fitness suites (share better / equal / worse, the best gain)
and the held-out gain of the top children over the parent and over no memory. That tells whether an operator can
reach a real gain at all, and how often, before any search is run.

    python benchmarks/edit_landscape.py [--benchmark textworld] [--parent trajectory_retrieval]
        [--operators compound mutate:constants] [--children 40] [--suites 0 1] [--heldout 1000 1001]
        [--train 6] [--test 16] [--top 3] [--step-limit N]

Model calls of a child (a donor statement from an LLM-using seed) fail at once: no chat model is served, so
those children score what the design does without its model.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

from engine.code.genome import Genome
from engine.code.mutate import OPERATORS
from harness.jobspec import AgentSpec, DesignSpec, JobSpec, ModelSpec, ProtocolSpec
from harness.models.factory import ModelSettings, open_models
from harness.protocol import ProtocolRun

REPO = Path(__file__).resolve().parents[1]
#: no chat model: a child's model call fails at once instead of starting the embedded model
NO_CHAT = ModelSettings(embedder="hashing", chat_base_url="http://127.0.0.1:9/v1", max_attempts=1, timeout=1.0)


def seeds() -> dict[str, Genome]:
    return {p.stem: Genome.from_text(p.read_text(encoding="utf-8"), name=p.stem)
            for p in sorted((REPO / "seeds").glob("*.py")) if p.name != "__init__.py"}


def score(models, genome: Genome, args, suite: int) -> float:
    job = JobSpec(job_id=f"landscape-{genome.id[:12]}-{suite}", design=DesignSpec(name=genome.name or "child",
                                                                                   source=genome.source),
                  benchmark=args.benchmark, agent=AgentSpec(kind="heuristic"), models=ModelSpec(embedder="hashing"),
                  protocol=ProtocolSpec(n_train=args.train, n_test=args.test, repeats=1, seed=suite,
                                        step_limit=args.step_limit))
    job.isolate_design = False
    try:
        return ProtocolRun(job, models).run_sync().score
    except Exception:  # a child that breaks the protocol scores nothing
        return 0.0


def children(op_name: str, parent: Genome, donors: list[Genome], n: int) -> list[Genome]:
    op, out, seen = OPERATORS[op_name], [], {parent.id}
    for i in range(n * 4):
        if len(out) >= n:
            break
        pair = [parent, donors[i % len(donors)]][: op.arity]
        child = op(pair, random.Random(i))
        if child is not None and child.id not in seen:
            seen.add(child.id)
            out.append(child)
    return out


def mean(models, genome: Genome, args, suites: list[int]) -> float:
    return statistics.mean(score(models, genome, args, s) for s in suites)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--benchmark", default="textworld")
    parser.add_argument("--parent", default="trajectory_retrieval")
    parser.add_argument("--operators", nargs="+", default=["compound", "mutate:constants"])
    parser.add_argument("--children", type=int, default=40)
    parser.add_argument("--suites", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--heldout", type=int, nargs="+", default=[1000, 1001])
    parser.add_argument("--train", type=int, default=6)
    parser.add_argument("--test", type=int, default=16)
    parser.add_argument("--top", type=int, default=3)
    parser.add_argument("--step-limit", type=int, help="override the benchmark's step limit")
    args = parser.parse_args()
    pool = seeds()
    if args.parent not in pool:
        raise SystemExit(f"error: no seed named {args.parent!r} (seeds: {', '.join(pool)})")
    unknown = [o for o in args.operators if o not in OPERATORS]
    if unknown:
        raise SystemExit(f"error: unknown operator(s) {unknown} (known: {', '.join(sorted(OPERATORS))})")
    parent = pool[args.parent]
    donors = [g for name, g in pool.items() if name != args.parent]
    started = time.monotonic()
    with open_models(NO_CHAT) as models:
        base = mean(models, parent, args, args.suites)
        nomem = mean(models, pool["no_memory"], args, args.heldout)
        parent_held = mean(models, parent, args, args.heldout)
        print(f"{args.benchmark}: parent {args.parent} fitness {base:.3f} (suites {args.suites}, {args.train} train /"
              f" {args.test} test); held-out {parent_held:.3f}, no memory {nomem:.3f} (suites {args.heldout})",
              flush=True)
        for op_name in args.operators:
            kids = children(op_name, parent, donors, args.children)
            diffs = [(mean(models, k, args, args.suites) - base, k) for k in kids]
            d = [x for x, _ in diffs]
            print(f"\n{op_name}: {len(kids)} children; child - parent on the fitness suites: "
                  f"better {sum(x > 1e-9 for x in d)}, equal {sum(abs(x) <= 1e-9 for x in d)}, "
                  f"worse {sum(x < -1e-9 for x in d)}; mean {statistics.mean(d):+.3f}, best {max(d):+.3f}"
                  if kids else f"\n{op_name}: no children", flush=True)
            for gain, kid in sorted(diffs, key=lambda t: -t[0])[: args.top]:
                held = mean(models, kid, args, args.heldout)
                print(f"  top child {kid.id[:10]}: fitness {gain:+.3f}; held-out {held:.3f} "
                      f"(vs parent {held - parent_held:+.3f}, vs no memory {held - nomem:+.3f})", flush=True)
    print(f"\n{time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
