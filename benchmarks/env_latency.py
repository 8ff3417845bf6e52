"""Reset and step latency per benchmark (median and p95 over a small suite, random admissible actions).

    python benchmarks/env_latency.py [--benchmarks textworld,alfworld,minihack,babaisai] [--tasks 4] [--steps 20]

Games are built (or read from the cache) before timing. Figures are noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from harness.envs import get_benchmark
from harness.errors import BenchmarkError


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def measure(name: str, tasks: int, steps: int, seed: int) -> str:
    bench = get_benchmark(name)
    t0 = time.perf_counter()
    suite = bench.build_suite(seed, tasks, 1)
    build = time.perf_counter() - t0
    env = bench.make_env()
    rng = random.Random(seed)
    resets, stepping = [], []
    try:
        for spec in suite.train[:tasks]:
            t = time.perf_counter()
            first = env.reset(spec)
            resets.append(time.perf_counter() - t)
            actions = first.admissible_actions
            for _ in range(steps):
                t = time.perf_counter()
                result = env.step(rng.choice(actions))
                stepping.append(time.perf_counter() - t)
                actions = result.admissible_actions
                if result.done:
                    break
    finally:
        env.close()
    return (f"{name:10} suite {build:6.2f} s | reset median {statistics.median(resets) * 1e3:8.2f} ms "
            f"p95 {pct(resets, 0.95) * 1e3:8.2f} ms | step median {statistics.median(stepping) * 1e3:7.2f} ms "
            f"p95 {pct(stepping, 0.95) * 1e3:7.2f} ms ({len(stepping)} steps)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--benchmarks", default="textworld,alfworld,minihack,babaisai")
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name in args.benchmarks.split(","):
        try:
            print(measure(name, args.tasks, args.steps, args.seed), flush=True)
        except BenchmarkError as exc:
            print(f"{name:10} unavailable: {exc}")


if __name__ == "__main__":
    main()
