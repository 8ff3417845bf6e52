"""Episodes per second per task agent on TextWorld (no memory design, so this measures env + agent).

    python benchmarks/harness_throughput.py [--episodes 8] [--llm-episodes 2] [--seed 0]

The LLM agent uses the embedded local model (llama.cpp, Qwen2.5-Coder-0.5B, 1 thread) unless
--chat-base-url is given. Figures are noisy on a shared machine: compare ratios taken in one run.
"""

from __future__ import annotations

import argparse
import time

from harness.agents.heuristic import HeuristicAgent
from harness.agents.llm_agent import LLMAgent
from harness.envs import get_benchmark
from harness.models.factory import ModelSettings, open_models
from harness.protocol import play_episode


def measure(bench, specs, make_agent, step_limit):
    env = bench.make_env()
    steps = 0
    started = time.perf_counter()
    try:
        for i, spec in enumerate(specs):
            first = env.reset(spec)
            episode = play_episode(env, make_agent(i), spec, first, "", step_limit)
            steps += len(episode.steps)
    finally:
        env.close()
    wall = time.perf_counter() - started
    return len(specs) / wall, steps / wall, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--llm-episodes", type=int, default=2)
    parser.add_argument("--llm-step-limit", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chat-base-url", default=None)
    parser.add_argument("--chat-model", default="qwen2.5-coder-0.5b")
    args = parser.parse_args()
    bench = get_benchmark("textworld")
    t0 = time.perf_counter()
    suite = bench.build_suite(args.seed, args.episodes, 1)
    print(f"suite ready in {time.perf_counter() - t0:.1f} s (cached games are reused)")
    specs = suite.train[: args.episodes]
    eps, sps, wall = measure(bench, specs, lambda i: HeuristicAgent(seed=i), bench.step_limit)
    print(f"heuristic: {eps:8.3f} episodes/s  {sps:8.1f} steps/s  ({len(specs)} episodes, {wall:.1f} s, "
          f"step limit {bench.step_limit})")
    if args.llm_episodes:
        settings = ModelSettings(chat_base_url=args.chat_base_url, chat_model=args.chat_model, embedder="hashing")
        with open_models(settings) as models:
            _ = models.chat  # start the local server outside the timing
            eps, sps, wall = measure(bench, specs[: args.llm_episodes], lambda i: LLMAgent(models.chat),
                                     args.llm_step_limit)
            usage = models.meter.snapshot()
        print(f"llm:       {eps:8.3f} episodes/s  {sps:8.1f} steps/s  ({args.llm_episodes} episodes, {wall:.1f} s, "
              f"step limit {args.llm_step_limit}); usage {usage}")


if __name__ == "__main__":
    main()
