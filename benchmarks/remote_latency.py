"""Evaluations against a remote-like model: how close one comes to the latency bound, and how many fit an hour.

    python benchmarks/remote_latency.py [--backend bubblewrap] [--latency-ms 300] [--server-concurrency 16]
        [--benchmark textworld] [--train 2] [--test 4] [--episode-concurrency 1 4] [--repeats 2]
        [--inflight 1 2 4 8] [--steady] [--broker-concurrency N] [--ray] [--error-rate 0.1] [--timeout-rate 0.05]
        [--skip-faults] [--json OUT]

The default run takes about 4-5 minutes on 2 idle cores (``--ray`` adds 3-4); ``--train 6 --test 8`` is the engine's
default protocol, ``--repeats 0`` skips a, ``--inflight`` with no value skips b and c.

It starts :class:`benchmarks.latency_server.LatencyServer` (an OpenAI-compatible server with a fixed latency
per call, a cap on requests served at once, seeded 429s and timeouts, exact token counts) and evaluates with the
LLM task agent through the engine's own path: an :class:`~engine.search.evaluator.Evaluator` (sandbox backend +
host broker whose ``chat_base_url`` is the server) and a :class:`~engine.search.executors.JobExecutor`, i.e. what
``python -m engine.evolve --agent llm --task-base-url URL`` runs. The design is no memory, instrumented: its
memory text tags each episode (``alma-episode TAG``) and each collection ``update`` embeds that tag once (the
embedding call a real design makes), so the server counts calls per episode. The server answers the first
admissible action, so every episode plays to its step limit and each evaluation makes the same calls.

Printed, measured in one run:

a. one evaluation's wall time against the latency bound: (model calls on the critical path) x latency.
   Collection is sequential (each episode's update must land before the next retrieve), so its calls add up;
   batched deployment plays ``episode_concurrency`` episodes at once, so its part is the makespan of the
   per-episode call counts the server recorded, scheduled first come first served on that many slots (at
   least ceil(calls / concurrency)). Medians and [min, max] over ``--repeats``; the rest of the wall time is
   split into start-up (sandbox, harness imports, suite) and the protocol's own overhead. Target <= 1.2x.
b. evaluations per hour with 1, 2, 4, 8 evaluations in flight (the executor's workers), as a ratio to linear:
   throughput_k / (k x throughput_1); target >= 0.8x while requests in flight stay under the server's cap.
   Each row is one batch of k evaluations submitted at once, so their start-ups coincide (the evolve loop's
   steady state staggers them: these rows are the pessimistic case). ``--steady`` measures the loop's pattern
   instead: k in flight, one submitted as each finishes (3 k in all); a row's time is the window from the k-th
   to the 2k-th completion, in which k evaluations finished with k in flight throughout.
   The host broker caps concurrent upstream requests across all its sessions (``BrokerConfig.max_concurrency``:
   ``task.max_concurrency``, 16 by default for a remote task model); ``--broker-concurrency N`` measures another cap.
c. with ``--ray``: the same on a local Ray started here (``RayExecutor``: ``ray.init(num_cpus=max in flight)``);
   each Ray worker process builds its own Evaluator, hence its own broker. A warm-up round is not timed.
d. one evaluation against a server that answers ``--error-rate`` of the attempts with 429 and lets
   ``--timeout-rate`` time out: every failed attempt is retried (server attempts vs successes) and every token
   is counted once: the broker session's chat and embedding tokens equal the server's sums over successful
   replies (PASS/FAIL). The same equality is checked for every evaluation of a-c.

On a 2-core machine the sandbox's start-up (harness imports, the design's worker) is CPU work that several
evaluations in flight share; the b rows print the sandbox CPU seconds per evaluation to show where time goes.
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import json
import logging
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.latency_server import LatencyServer  # noqa: E402
from engine.code.genome import Genome  # noqa: E402
from engine.config import EvolveConfig  # noqa: E402
from engine.models import task_broker_config  # noqa: E402
from engine.search.evaluator import Evaluator  # noqa: E402
from engine.search.executors import EvaluationJob, JobExecutor, job_executor  # noqa: E402

MODEL = "latency-model"

#: no memory, instrumented (see the module docstring). The first instance of an evaluation (collection) draws
#: the evaluation's nonce into its scratch directory; deployment instances, built over a copy of it, read it.
DESIGN = '''"""No memory, instrumented for benchmarks/remote_latency.py: tags every episode in its memory text."""

import uuid

from harness.design import MemoryDesign


class EpisodeTags(MemoryDesign):
    def __init__(self, toolkit):
        super().__init__(toolkit)
        path = toolkit.scratch_dir / "nonce"
        self.collecting = not path.exists()
        if self.collecting:
            path.write_text(uuid.uuid4().hex[:12])
        self.nonce = path.read_text()
        self.count = 0
        self.tag = ""

    async def retrieve(self, task):
        self.tag = f"{self.nonce}:{'c' if self.collecting else 'd'}{self.count}:{task.task_id}"
        self.count += 1
        return {"text": f"alma-episode {self.tag}"}

    async def update(self, episode):
        await self.toolkit.embed([f"alma-episode {self.tag} {episode.task.goal}"])
'''


def make_config(args: argparse.Namespace, base_url: str, episode_concurrency: int, *,
                max_attempts: int | None = None) -> EvolveConfig:
    return EvolveConfig.model_validate({
        "eval": {"benchmark": args.benchmark, "agent": "llm", "embedder": "remote", "n_train": args.train,
                 "n_test": args.test, "repeats": 1, "mode": "batched", "seed": args.seed,
                 "episode_concurrency": episode_concurrency},
        "task": {"base_url": base_url, "model": MODEL, "temperature": 0.0, "max_tokens": 48,
                 "timeout": args.client_timeout, "max_attempts": max_attempts or args.max_attempts},
        "sandbox": {"backend": args.backend, "timeout_s": 900}})


def make_evaluator(args: argparse.Namespace, config: EvolveConfig, run_dir: Path) -> Evaluator:
    """The engine's Evaluator; ``--broker-concurrency`` replaces only the broker's cap on concurrent upstream
    requests (everything else as ``engine.models.task_broker_config`` builds it)."""
    broker = task_broker_config(config, cassette_dir=run_dir / "cassette")
    if args.broker_concurrency:
        broker = dataclasses.replace(broker, max_concurrency=args.broker_concurrency)
    return Evaluator(config, run_dir, broker_config=broker)


# -------------------------------------------------------------------------------------------- one batch of jobs
@dataclasses.dataclass
class Done:
    key: str
    report: Any
    wall_s: float  # submit -> done, as the driver sees it
    nonce: str | None


def nonce_of(report) -> str | None:
    for e in report.result.episodes if report.result else []:
        text = e.retrieved.get("text", "")
        if text.startswith("alma-episode "):
            return text.split()[1].split(":")[0]
    return None


def check_done(d) -> None:
    """Fail loudly (SystemExit with the detail) unless the evaluation ``d`` is ok with no failed episode."""
    if d.report is None or d.report.outcome.value != "ok":
        detail = d.error or f"{d.report.outcome.value}: {d.report.detail}\n{d.report.stderr_tail[-3000:]}"
        raise SystemExit(f"evaluation {d.job.key} failed on {d.where}: {detail}")
    errors = [e.error for e in d.report.result.episodes if e.error]
    if errors:
        raise SystemExit(f"evaluation {d.job.key}: an episode failed: {errors[0][-1500:]}")


def run_batch(jobs: JobExecutor, evaluator: Evaluator, genome: Genome, n: int, label: str,
              out: Path) -> tuple[float, list[Done]]:
    """Submit ``n`` evaluations at once and wait for all; returns (wall seconds, results). Fails loudly."""
    started = time.monotonic()
    submitted = {}
    for i in range(n):
        spec = evaluator.job_spec(genome, "id", tag=f"-{label}{i}")
        key = f"{label}{i}"
        jobs.submit(EvaluationJob(key, genome.id, spec, out / key))
        submitted[key] = time.monotonic()
    done = []
    for d in jobs.as_completed(timeout=1800):
        check_done(d)
        done.append(Done(d.job.key, d.report, time.monotonic() - submitted[d.job.key], nonce_of(d.report)))
    return time.monotonic() - started, done


def run_steady(jobs: JobExecutor, evaluator: Evaluator, genome: Genome, k: int, label: str,
               out: Path) -> tuple[float, list[Done]]:
    """Keep ``k`` evaluations in flight, as the evolve loop's steady state does: submit ``k``, then one more each
    time one finishes, ``3 k`` in all. Returns (the steady window's seconds per ``k`` evaluations, results): the
    window runs from the ``k``-th completion (the coincident first start-ups are behind it) to the ``2 k``-th
    (the last one finished with ``k`` still in flight); ``k`` evaluations finished in it."""
    total, submitted, finished, done = 3 * k, {}, [], []

    def submit(i: int) -> None:
        key = f"{label}{i}"
        jobs.submit(EvaluationJob(key, genome.id, evaluator.job_spec(genome, "id", tag=f"-{key}"), out / key))
        submitted[key] = time.monotonic()

    for i in range(k):
        submit(i)
    for d in jobs.as_completed(timeout=1800):
        check_done(d)
        finished.append(time.monotonic())
        done.append(Done(d.job.key, d.report, finished[-1] - submitted[d.job.key], nonce_of(d.report)))
        if len(submitted) < total:
            submit(len(submitted))
    return finished[2 * k - 1] - finished[k - 1], done


# -------------------------------------------------------------------------------------------- critical path
def per_episode_calls(records, nonce: str) -> tuple[dict[str, int], dict[int, int]]:
    """Successful calls per collection episode (by tag) and per deployment episode (by start order)."""
    collect: dict[str, int] = {}
    deploy: dict[int, int] = {}
    for r in records:
        if r.outcome != "ok" or not r.tag or not r.tag.startswith(nonce + ":"):
            continue
        _, which, task_id = r.tag.split(":", 2)
        if which.startswith("c"):
            collect[which + ":" + task_id] = collect.get(which + ":" + task_id, 0) + 1
        else:
            deploy[int(which[1:])] = deploy.get(int(which[1:]), 0) + 1
    return collect, deploy


def makespan(counts: list[int], slots: int) -> int:
    """Episodes started in order on ``slots`` slots, each taking its call count: when the last one ends."""
    free = [0] * max(1, slots)
    end = 0
    for c in counts:
        start = heapq.heappop(free)
        heapq.heappush(free, start + c)
        end = max(end, start + c)
    return end


def critical_path(records, done: Done, episode_concurrency: int) -> dict[str, Any]:
    """The calls on the evaluation's critical path, and when its first call started and its last one ended."""
    collect, deploy = per_episode_calls(records, done.nonce)
    mine = [r for r in records if r.tag and r.tag.startswith(done.nonce + ":")]
    deploy_counts = [deploy[i] for i in sorted(deploy)]
    episodes = done.report.result.episodes
    steps = sum(e.steps for e in episodes)
    chat = sum(r.endpoint == "chat" for r in mine if r.outcome == "ok")
    path = sum(collect.values()) + makespan(deploy_counts, episode_concurrency)
    return {"collect_calls": sum(collect.values()), "deploy_calls": sum(deploy_counts),
            "deploy_episodes": len(deploy_counts), "path_calls": path,
            "path_lower_bound": sum(collect.values()) + max(math.ceil(sum(deploy_counts) / episode_concurrency),
                                                            max(deploy_counts, default=0)),
            "chat_calls_match_steps": chat == steps,
            "calls_span_s": max(r.finished for r in mine) - min(r.started for r in mine)}


# -------------------------------------------------------------------------------------------- token accounting
USAGE_KEYS = ("chat_requests", "chat_prompt_tokens", "chat_completion_tokens", "embed_requests", "embed_tokens")


def broker_totals(done: list[Done]) -> dict[str, int]:
    return {k: sum(int(d.report.broker_usage.get(k, 0)) for d in done) for k in USAGE_KEYS + ("cassette_hits",)}


def accounting(server: LatencyServer, mark: int, done: list[Done]) -> dict[str, Any]:
    """The broker sessions' tokens against the server's sums over successful replies since ``mark``."""
    s, b = server.summary(mark), broker_totals(done)
    pairs = {"chat requests": (b["chat_requests"], s["chat_ok"]),
             "chat prompt tokens": (b["chat_prompt_tokens"], s["chat_prompt_tokens"]),
             "chat completion tokens": (b["chat_completion_tokens"], s["chat_completion_tokens"]),
             "embedding requests": (b["embed_requests"], s["embed_ok"]),
             "embedding tokens": (b["embed_tokens"], s["embed_tokens"])}
    ok = all(x == y for x, y in pairs.values()) and b["cassette_hits"] == 0
    return {"ok": ok, "pairs": pairs, "server": s, "broker": b}


def med(values: list[float], fmt: str = ".1f") -> str:
    """The median, and [min, max] when there are several values."""
    if len(values) == 1:
        return f"{values[0]:{fmt}}"
    return f"{statistics.median(values):{fmt}} [{min(values):{fmt}}, {max(values):{fmt}}]"


# -------------------------------------------------------------------------------------------- the phases
def phase_a(args, server, genome, root) -> list[dict]:
    rows = []
    for k in args.episode_concurrency:
        config = make_config(args, server.base_url, k)
        evaluator = make_evaluator(args, config, root / f"a{k}")
        measured = []
        try:
            with job_executor("local", config, root / f"a{k}", evaluator=evaluator, workers=1) as jobs:
                for rep in range(args.repeats):
                    mark = server.mark()
                    _, [done] = run_batch(jobs, evaluator, genome, 1, f"a{k}-{rep}-", root / "out")
                    records = server.since(mark)
                    cp = critical_path(records, done, k)
                    result = done.report.result
                    ideal = cp["path_calls"] * args.latency_ms / 1000
                    measured.append({"wall_s": done.wall_s, "ideal_s": ideal,
                                     "startup_s": done.report.wall_s - result.wall_s, "protocol_s": result.wall_s,
                                     "outside_calls_s": result.wall_s - cp["calls_span_s"],
                                     "gap_ms_per_call": (cp["calls_span_s"] - ideal) / cp["path_calls"] * 1000,
                                     "cpu_s": done.report.cpu_s or 0.0, **cp,
                                     "tokens_ok": accounting(server, mark, [done])["ok"]})
        finally:
            evaluator.close()
        def col(name: str, measured=measured) -> list[float]:
            return [m[name] for m in measured]

        first = measured[0]
        row = {"episode_concurrency": k, "runs": measured, "walls_s": col("wall_s"), "ideals_s": col("ideal_s"),
               "ratios": [m["wall_s"] / m["ideal_s"] for m in measured],
               "path": f"{first['collect_calls']} collect + deploy {first['deploy_calls']} calls of "
                       f"{first['deploy_episodes']} episodes on {k} slot(s) = {first['path_calls']} calls",
               "tokens_ok": all(m["tokens_ok"] for m in measured),
               "calls_match_steps": all(m["chat_calls_match_steps"] for m in measured)}
        rows.append(row)
        print(f"a  {k} episode(s) at once: wall {med(col('wall_s'))} s, latency bound {med(col('ideal_s'))} s "
              f"({row['path']}) = {med(row['ratios'], '.2f')}x", flush=True)
        print(f"     time: start-up (sandbox + harness) {med(col('startup_s'))} s, protocol "
              f"{med(col('protocol_s'))} s, of which outside the model calls {med(col('outside_calls_s'))} s "
              f"(design workers, envs) and {med(col('gap_ms_per_call'), '.0f')} ms per critical-path call above "
              f"the latency (env step, agent, broker); CPU {med(col('cpu_s'))} s per evaluation", flush=True)
    return rows


def scaling(kind: str, args, server, genome, root, jobs_for) -> list[dict]:
    """Rows of evaluations/hour with k in flight, for k in ``--inflight``; ``jobs_for(k)`` gives an executor
    context and an Evaluator that builds the job specs."""
    rows: list[dict] = []
    base = None
    for k in args.inflight:
        walls, cpus, startups, peaks, token_ok = [], [], [], [], True
        with jobs_for(k) as (jobs, evaluator):
            for rep in range(args.batch_repeats):
                mark = server.mark()
                server.peak_active = 0
                run = run_steady if args.steady else run_batch
                wall, done = run(jobs, evaluator, genome, k, f"{kind[0]}{k}-{rep}-", root / "out")
                walls.append(wall)
                cpus.extend(d.report.cpu_s or 0.0 for d in done)
                startups.extend(d.report.wall_s - d.report.result.wall_s for d in done)
                peaks.append(server.peak_active)
                token_ok &= accounting(server, mark, done)["ok"]
        rate = k * 3600 / statistics.median(walls)
        base = base or (rate if k == 1 else None)
        ratio = rate / (k * base) if base else float("nan")
        rows.append({"executor": kind, "mode": "steady" if args.steady else "batch", "inflight": k,
                     "walls_s": walls, "evals_per_hour": rate,
                     "ratio_to_linear": ratio, "cpu_s_per_eval": statistics.median(cpus),
                     "startup_s": statistics.median(startups), "server_peak_active": max(peaks),
                     "tokens_ok": token_ok})
        window = "steady window" if args.steady else "batch"
        print(f"{'b' if kind == 'local' else 'c'}  {kind} x{k}: {med(walls)} s per {window} = {rate:.0f} evaluations/h "
              f"= {ratio:.2f}x linear; start-up {statistics.median(startups):.1f} s, CPU "
              f"{statistics.median(cpus):.1f} s per evaluation, server peak {max(peaks)} requests at once, "
              f"load {os.getloadavg()[0]:.1f}", flush=True)
    return rows


class _LocalJobs:
    def __init__(self, args, server, root, k):
        self.args, self.server, self.root, self.k = args, server, root, k

    def __enter__(self):
        config = make_config(self.args, self.server.base_url, self.args.scaling_episode_concurrency)
        self.evaluator = make_evaluator(self.args, config, self.root / f"b{self.k}")
        self.jobs = job_executor("local", config, self.root / f"b{self.k}", evaluator=self.evaluator,
                                 workers=self.k)
        return self.jobs, self.evaluator

    def __exit__(self, *exc):
        self.jobs.close()
        self.evaluator.close()


def phase_c(args, server, genome, root) -> list[dict]:
    import ray

    os.environ.setdefault("ALMA_WORKER_DIR", str(root / "workers"))
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    config = make_config(args, server.base_url, args.scaling_episode_concurrency)
    evaluator = make_evaluator(args, config, root / "c")  # only builds job specs here; the workers evaluate
    workers = max(args.inflight)
    jobs = job_executor("ray", config, root / "c", workers=workers)
    try:
        t0 = time.monotonic()
        run_batch(jobs, evaluator, genome, workers, "c-warm-", root / "out")
        print(f"c  ray warm-up ({workers} evaluations, workers build their Evaluators): "
              f"{time.monotonic() - t0:.1f} s, not timed", flush=True)

        class _Same:
            def __enter__(self):
                return jobs, evaluator

            def __exit__(self, *exc):
                return None

        return scaling("ray", args, server, genome, root, lambda k: _Same())
    finally:
        jobs.close()
        evaluator.close()
        if ray.is_initialized():
            ray.shutdown()


def phase_d(args, genome, root) -> dict:
    hang = args.client_timeout + 1.0
    with LatencyServer(latency_s=args.latency_ms / 1000, max_concurrency=args.server_concurrency,
                       error_rate=args.error_rate, timeout_rate=args.timeout_rate, hang_s=hang,
                       seed=args.seed + 1) as server:
        k = max(args.episode_concurrency)
        config = make_config(args, server.base_url, k, max_attempts=args.fault_max_attempts)
        evaluator = make_evaluator(args, config, root / "d")
        try:
            with job_executor("local", config, root / "d", evaluator=evaluator, workers=1) as jobs:
                mark = server.mark()
                _, done = run_batch(jobs, evaluator, genome, 1, "d-", root / "out")
        finally:
            evaluator.close()
        acc = accounting(server, mark, done)
    s = acc["server"]
    logical = acc["broker"]["chat_requests"] + acc["broker"]["embed_requests"]
    retried = s["attempts"] - s["ok"]
    every_retried = s["ok"] == logical and retried == s["429"] + s["timeout"]
    passed = acc["ok"] and every_retried
    print(f"d  {args.error_rate:.0%} 429s, {args.timeout_rate:.0%} timeouts (at {args.client_timeout:.1f} s), "
          f"{args.fault_max_attempts} attempts a request: server {s['attempts']} attempts = {s['ok']} ok + "
          f"{s['429']} 429 + {s['timeout']} timeouts; the broker's {logical} requests all answered after "
          f"{retried} retries; evaluation wall {done[0].wall_s:.1f} s", flush=True)
    for name, (broker, srv) in acc["pairs"].items():
        print(f"     {name:23} broker {broker:7}   server, successful replies {srv:7}   "
              f"{'same' if broker == srv else 'DIFFERENT'}", flush=True)
    print(f"d  {'PASS' if passed else 'FAIL'}: every 429/timeout retried, every token counted once", flush=True)
    return {"passed": passed, "server": s, "broker": acc["broker"], "retried": retried, "logical": logical,
            "pairs": acc["pairs"], "wall_s": done[0].wall_s}


def table(figures: dict[str, Any]) -> None:
    """The compact summary: one row per figure, with its target."""
    rows = [("figure", "measured", "target")]
    for r in figures.get("a", []):
        rows.append((f"a  eval wall / latency bound, {r['episode_concurrency']} episode(s) at once",
                     f"{med(r['walls_s'])} s / {statistics.median(r['ideals_s']):.1f} s = "
                     f"{med(r['ratios'], '.2f')}x", "<= 1.2x"))
    for part in ("b", "c"):
        for r in figures.get(part, []):
            rows.append((f"{part}  {r['executor']} x{r['inflight']} evaluations in flight"
                         f"{' (steady)' if r.get('mode') == 'steady' else ''}",
                         f"{r['evals_per_hour']:.0f}/h = {r['ratio_to_linear']:.2f}x linear", ">= 0.8x"))
    checks = [r["tokens_ok"] for part in ("a", "b", "c") for r in figures.get(part, [])]
    if checks:
        rows.append(("a-c  broker tokens == server tokens, every evaluation", "PASS" if all(checks) else "FAIL",
                     "PASS"))
    if figures.get("a"):
        same = all(r["calls_match_steps"] for r in figures["a"])
        rows.append(("a  server's chat calls == the episodes' steps", "PASS" if same else "FAIL", "PASS"))
    if "d" in figures:
        d = figures["d"]
        tokens = sum(d["broker"][k] for k in ("chat_prompt_tokens", "chat_completion_tokens", "embed_tokens"))
        rows.append(("d  429s + timeouts retried, tokens counted once",
                     f"{d['retried']} retried, {d['logical']}/{d['logical']} answered, {tokens} tokens: "
                     f"{'PASS' if d['passed'] else 'FAIL'}", "PASS"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    print()
    for n, r in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--backend", default="bubblewrap", choices=["auto", "docker", "bubblewrap", "none"])
    p.add_argument("--benchmark", default="textworld")
    p.add_argument("--train", type=int, default=2, help="collection episodes per evaluation")
    p.add_argument("--test", type=int, default=4, help="deployment episodes per evaluation (1 repeat)")
    p.add_argument("--seed", type=int, default=0, help="suite seed (and the fault draws)")
    p.add_argument("--latency-ms", type=float, default=300.0, help="the server's latency per call")
    p.add_argument("--server-concurrency", type=int, default=16, help="requests the server serves at once")
    p.add_argument("--broker-concurrency", type=int, default=None,
                   help="the host broker's cap on concurrent upstream requests (default: the engine's, 4)")
    p.add_argument("--client-timeout", type=float, default=2.0, help="the task role's timeout per attempt (s)")
    p.add_argument("--max-attempts", type=int, default=3, help="the task role's attempts per request (a-c)")
    p.add_argument("--episode-concurrency", type=int, nargs="+", default=[1, 4], help="a: values measured")
    p.add_argument("--repeats", type=int, default=2, help="a: evaluations per episode concurrency (0 skips a)")
    p.add_argument("--inflight", type=int, nargs="*", default=[1, 2, 4, 8],
                   help="b/c: evaluations in flight (the first must be 1); none skips b and c")
    p.add_argument("--scaling-episode-concurrency", type=int, default=1, help="b/c: episode concurrency")
    p.add_argument("--batch-repeats", type=int, default=1, help="b/c: batches per row")
    p.add_argument("--steady", action="store_true",
                   help="b/c: keep k in flight (one submitted as each finishes, 3 k in all, as the evolve loop does) "
                        "and time k completions after the first k, instead of batches of k started together")
    p.add_argument("--ray", action="store_true", help="c: also measure a local Ray (ray.init here)")
    p.add_argument("--error-rate", type=float, default=0.1, help="d: share of attempts answered 429")
    p.add_argument("--timeout-rate", type=float, default=0.05, help="d: share of attempts left to time out")
    p.add_argument("--fault-max-attempts", type=int, default=8,
                   help="d: attempts per request (at 15%% faults, 3 would fail ~1 request in 300)")
    p.add_argument("--skip-faults", action="store_true", help="skip d")
    p.add_argument("--json", dest="json_out", help="write every figure here")
    args = p.parse_args(argv)
    if args.inflight and args.inflight[0] != 1:
        p.error("--inflight must start with 1 (the base of the ratio to linear)")

    logging.getLogger("harness.models.chat").setLevel(logging.ERROR)  # the retries of d, counted below
    genome = Genome.from_text(DESIGN)
    root = Path(tempfile.mkdtemp(prefix="alma-latency-", dir="/tmp"))
    figures: dict[str, Any] = {"args": vars(args), "cpus": os.cpu_count()}
    started = time.monotonic()
    try:
        with LatencyServer(latency_s=args.latency_ms / 1000, max_concurrency=args.server_concurrency,
                           hang_s=args.client_timeout + 1.0, seed=args.seed) as server:
            t0 = time.monotonic()
            evaluator = make_evaluator(args, make_config(args, server.base_url, 1), root / "suite")
            try:  # the suite is built (or found) on the host before anything is timed
                evaluator.runner.prepare_cache(evaluator.job_spec(genome, "id"))
            finally:
                evaluator.close()
            print(f"{args.benchmark} suite ready in {time.monotonic() - t0:.1f} s; server {server.base_url}, "
                  f"latency {args.latency_ms:.0f} ms, serves {args.server_concurrency} at once; backend "
                  f"{args.backend}; {args.train} train + {args.test} test episodes per evaluation; "
                  f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}", flush=True)
            if args.repeats:
                figures["a"] = phase_a(args, server, genome, root)
            if args.inflight:
                figures["b"] = scaling("local", args, server, genome, root,
                                       lambda k: _LocalJobs(args, server, root, k))
                if args.ray:
                    figures["c"] = phase_c(args, server, genome, root)
        if not args.skip_faults:
            figures["d"] = phase_d(args, genome, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    figures["wall_s"] = time.monotonic() - started
    table(figures)
    print(f"total {figures['wall_s']:.0f} s, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
          flush=True)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(figures, indent=2, default=str))
    return 0 if figures.get("d", {"passed": True})["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
