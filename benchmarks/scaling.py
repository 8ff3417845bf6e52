"""Evaluations per hour with 1 and 2 local workers and 1 and 2 Ray workers, on a tiny BabaIsAI evaluation.

    python benchmarks/scaling.py [--jobs 8] [--backend bubblewrap] [--ray-address HOST:PORT] [--out scaling.json]

Each evaluation is a real sandbox job (the evolve loop's path): the trajectory_retrieval seed on babaisai,
2 train + 2 test tasks x 1 repeat, heuristic agent, hashing embedder. Rows:

- local xN: :class:`engine.search.executors.LocalExecutor` with N threads over one Evaluator (one backend, one broker);
- ray xN: :class:`engine.search.executors.RayExecutor` on a local Ray cluster started here (a head with no CPUs and
  N worker nodes of 1 CPU each, ``ray start --block`` subprocesses), or on ``--ray-address`` (then N is the
  cluster's CPU count and only that row is measured). Each Ray worker builds its own Evaluator on its first
  task; a warm-up round (one job per worker) is not timed.

Printed: seconds per batch, evaluations/hour, speed-up of 2 workers over 1, and Ray's rate over local's at
the same worker count. On a machine with C cores, more than C workers cannot scale.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.code.genome import Genome  # noqa: E402
from engine.config import EvolveConfig  # noqa: E402
from engine.search.evaluator import Evaluator  # noqa: E402
from engine.search.executors import EvaluationJob, JobExecutor, job_executor  # noqa: E402


def tiny_config(backend: str) -> EvolveConfig:
    return EvolveConfig.model_validate({
        "eval": {"benchmark": "babaisai", "n_train": 2, "n_test": 2, "repeats": 1, "agent": "heuristic",
                 "embedder": "hashing"},
        "sandbox": {"backend": backend, "timeout_s": 300}})


def batch(jobs: JobExecutor, evaluator: Evaluator, genome: Genome, n: int, tag: str, out: Path) -> float:
    """Submit ``n`` jobs at once, wait for all; returns the wall seconds. Fails loudly on a failed job."""
    started = time.monotonic()
    for i in range(n):
        spec = evaluator.job_spec(genome, "id", tag=f"-{tag}{i}")
        jobs.submit(EvaluationJob(f"{tag}{i}", genome.id, spec, out / f"{tag}{i}"))
    for done in jobs.as_completed(timeout=900):
        if done.report is None or done.report.outcome.value != "ok":
            raise SystemExit(f"job {done.job.key} failed on {done.where}: {done.error or done.report.detail}")
    return time.monotonic() - started


class Cluster:
    """A local Ray cluster: a head with no CPUs, worker nodes added one at a time (each 1 CPU)."""

    def __init__(self, root: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.address = f"127.0.0.1:{s.getsockname()[1]}"
        self.root, self.procs = root, []
        self.env = dict(os.environ, PYTHONPATH=str(REPO), RAY_USAGE_STATS_ENABLED="0",
                        ALMA_WORKER_DIR=str(root / "workers"), RAY_memory_monitor_refresh_ms="0")
        self._start(["--head", f"--port={self.address.rsplit(':', 1)[1]}", "--num-cpus=0",
                     "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={root / 'ray'}"])

    def _start(self, args: list[str]) -> None:
        ray_cli = str(Path(sys.executable).with_name("ray"))
        self.procs.append(subprocess.Popen(
            [ray_cli, "start", "--block", "--node-ip-address=127.0.0.1", "--object-store-memory=80000000", *args],
            env=self.env, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL,
            stderr=open(self.root / f"node{len(self.procs)}.log", "w")))

    def add_worker(self) -> None:
        self._start([f"--address={self.address}", "--num-cpus=1"])

    def stop(self) -> None:
        for proc in reversed(self.procs):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(30)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def wait_cpus(ray, n: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while ray.cluster_resources().get("CPU", 0) < n:
        if time.monotonic() > deadline:
            raise SystemExit(f"the Ray cluster did not reach {n} CPUs in {timeout} s")
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--jobs", type=int, default=8, help="evaluations per measured batch")
    p.add_argument("--backend", default="bubblewrap", choices=["auto", "docker", "bubblewrap", "none"])
    p.add_argument("--ray-address", help="measure an existing Ray cluster instead of starting one here")
    p.add_argument("--out", help="write the figures as JSON here")
    args = p.parse_args(argv)
    import ray

    config = tiny_config(args.backend)
    genome = Genome.from_file(REPO / "seeds" / "trajectory_retrieval.py")
    root = Path(tempfile.mkdtemp(prefix="alma-scale-", dir="/tmp"))
    rows: dict[str, dict] = {}

    def record(name: str, workers: int, seconds: float) -> None:
        rows[name] = {"workers": workers, "jobs": args.jobs, "seconds": round(seconds, 2),
                      "evals_per_hour": round(args.jobs * 3600 / seconds, 1)}
        print(f"{name:9} {seconds:7.1f} s for {args.jobs} evaluations = {rows[name]['evals_per_hour']:8.1f} / hour",
              flush=True)

    evaluator = Evaluator(config, root / "run")
    cluster = None
    try:
        for workers in (1, 2):
            with job_executor("local", config, root / "run", evaluator=evaluator, workers=workers) as jobs:
                batch(jobs, evaluator, genome, workers, f"warm-l{workers}-", root / "out")
                record(f"local x{workers}", workers, batch(jobs, evaluator, genome, args.jobs, f"l{workers}-",
                                                           root / "out"))
        if args.ray_address:
            ray.init(address=args.ray_address, log_to_driver=False)
            counts = [int(ray.cluster_resources().get("CPU", 1))]
        else:
            cluster = Cluster(root)
            ray.init(address=cluster.address, log_to_driver=False)
            counts = [1, 2]
        for workers in counts:
            if cluster is not None:
                cluster.add_worker()
                wait_cpus(ray, workers)
            with job_executor("ray", config, root / "run", ray_address=args.ray_address) as jobs:
                batch(jobs, evaluator, genome, workers, f"warm-r{workers}-", root / "out")
                record(f"ray x{workers}", workers, batch(jobs, evaluator, genome, args.jobs, f"r{workers}-",
                                                         root / "out"))
    finally:
        evaluator.close()
        if ray.is_initialized():
            ray.shutdown()
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    rate = {k: v["evals_per_hour"] for k, v in rows.items()}
    ratios = {}
    for kind in ("local", "ray"):
        if f"{kind} x1" in rate and f"{kind} x2" in rate:
            ratios[f"{kind} x2 / {kind} x1"] = round(rate[f"{kind} x2"] / rate[f"{kind} x1"], 2)
    for n in (1, 2):
        if f"ray x{n}" in rate and f"local x{n}" in rate:
            ratios[f"ray x{n} / local x{n}"] = round(rate[f"ray x{n}"] / rate[f"local x{n}"], 2)
    for name, value in ratios.items():
        print(f"{name:20} {value:.2f}")
    if args.out:
        Path(args.out).write_text(json.dumps({"rows": rows, "ratios": ratios, "cpus": os.cpu_count(),
                                              "load_avg": os.getloadavg(), "ray": ray.__version__}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
