"""``python -m harness.check_plugin NAME``: check a benchmark plug-in against the text-environment contract.

Example::

    python -m harness.check_plugin support_desk                  # an installed plug-in's entry point
    python -m harness.check_plugin my_pkg.envs:SupportDesk --agent my_pkg.agents:MyAgent

It builds small suites (twice, to check determinism), plays the first tasks of every split with a random and
the heuristic agent (and ``--agent``, when given), and prints every contract violation with what to fix
(:mod:`harness.conformance`). Exit codes: 0 conforms, 1 violations found, 2 the name does not load.
"""

from __future__ import annotations

import argparse
import sys

from harness.conformance import KINDS, check_benchmark
from harness.errors import PluginError
from harness.plugins import get_benchmark, resolve


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m harness.check_plugin", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("benchmark", help="benchmark name: an installed plug-in's name or module:Class")
    p.add_argument("--agent", help="also play with this agent (a plug-in's name or module:Class)")
    p.add_argument("--seed", type=int, default=0, help="suite seed")
    p.add_argument("--train", type=int, default=4, help="train tasks of the checked suite")
    p.add_argument("--test", type=int, default=2, help="id and ood tasks of the checked suite")
    p.add_argument("--episodes", type=int, default=2, help="tasks played per split (by each agent)")
    p.add_argument("--max-chars", type=int, default=8000, help="size limit of an observation or goal")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        origin = resolve("benchmark", args.benchmark)
        bench = get_benchmark(args.benchmark)
        agents = None
        if args.agent:
            from harness.agents.factory import make_agent
            from harness.agents.heuristic import HeuristicAgent
            from harness.agents.random_agent import RandomAgent
            from harness.jobspec import AgentSpec

            spec = AgentSpec(kind=args.agent)
            make_agent(spec, seed=0)  # a load error here, not in the middle of the report
            agents = {"random": lambda s: RandomAgent(seed=s), "heuristic": lambda s: HeuristicAgent(seed=s),
                      args.agent: lambda s: make_agent(spec, seed=s)}
    except (PluginError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"checking benchmark {args.benchmark!r} ({origin.via}: {origin.target}"
          f"{', from ' + origin.distribution if origin.distribution else ''})")
    report = check_benchmark(bench, seed=args.seed, n_train=args.train, n_test=args.test,
                             tasks_per_split=args.episodes, max_chars=args.max_chars, agents=agents,
                             name=args.benchmark)
    for agent, (episodes, won, done) in report.played.items():
        print(f"  played {episodes} episode(s) with the {agent} agent: {won} won, {done} ended (done)")
    if report.ok:
        print(f"OK: no contract violation ({len(KINDS)} kinds checked)")
        return 0
    print(f"{len(report.violations)} contract violation(s):")
    shown: set[str] = set()
    for v in sorted(report.violations, key=lambda v: list(KINDS).index(v.kind)):
        print(f"  VIOLATION {v.text(fix=v.kind not in shown)}")
        shown.add(v.kind)
    return 1


if __name__ == "__main__":
    sys.exit(main())
