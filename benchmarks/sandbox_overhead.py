"""Per-job overhead of each sandbox backend, and that overhead as a share of a typical TextWorld evaluation.

    python benchmarks/sandbox_overhead.py [--repeats 10] [--skip-eval] [--out overhead.json]

Rows (median and p90 of ``--repeats`` runs of a trivial job, ``python -c "import harness.run"``); in-process
the same work costs nothing extra (no new interpreter), so each median is the per-job cost of leaving the
host process, and "over none" is what the isolation itself adds to a plain subprocess:

- none: a plain subprocess (the interpreter start every sandbox also pays);
- bubblewrap: cgroup + bubblewrap + setpriv, :class:`sandbox.bwrap_backend.BubblewrapBackend`;
- docker cold: a fresh container per job, :class:`sandbox.docker_backend.DockerBackend`;
- docker warm: ``exec`` into an already running container with the same limits (measured with the docker SDK
  directly; not offered as a backend, see the conclusion it prints).

Then a typical evaluation (``harness.evaluate`` defaults: 6 train tasks, 4 test tasks x 3 repeats, heuristic
agent, trajectory_retrieval design, hashing embedder; games cached) is timed ``--eval-repeats`` times each:
``harness.run`` in a host subprocess and through each available backend (the whole job layer: job directory,
broker session, result validation); each backend's per-job cost is printed as a share of it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.files import write_json_atomic  # noqa: E402
from harness.jobspec import DesignSpec, JobSpec, ModelSpec, ProtocolSpec  # noqa: E402
from harness.suites import prepare_suite  # noqa: E402
from sandbox.backend import NoneBackend, docker_available  # noqa: E402
from sandbox.broker import Broker, BrokerConfig  # noqa: E402
from sandbox.errors import SandboxUnavailable  # noqa: E402
from sandbox.job import JobRunner  # noqa: E402
from sandbox.limits import JobRun, Limits  # noqa: E402
from sandbox.outcome import Outcome  # noqa: E402

TRIVIAL = ["python", "-c", "import harness.run"]


def stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_s": statistics.median(ordered), "p90_s": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
            "min_s": ordered[0], "n": len(ordered)}


def time_backend(backend, repeats: int) -> dict[str, float]:
    samples = []
    for _ in range(repeats + 1):
        job = JobRun(f"bench-{uuid.uuid4().hex[:6]}", TRIVIAL, limits=Limits(wall_s=60))
        t = time.perf_counter()
        r = backend.run(job)
        samples.append(time.perf_counter() - t)
        if r.outcome is not Outcome.OK:
            raise RuntimeError(f"{backend.name}: trivial job ended {r.outcome}: {r.stderr[-500:]}")
    return stats(samples[1:])  # the first run warms caches


def time_docker_warm(image: str, repeats: int) -> dict[str, float]:
    import docker

    from sandbox.docker_backend import DockerBackend

    kwargs = DockerBackend(image)._create_kwargs(JobRun("warm-bench", ["sleep", "600"], limits=Limits(wall_s=600)))
    client = docker.from_env()
    container = client.containers.run(**{**kwargs, "command": ["sleep", "600"]}, detach=True)
    try:
        samples = []
        for _ in range(repeats + 1):
            t = time.perf_counter()
            code, _ = container.exec_run(TRIVIAL, user=kwargs["user"], environment=kwargs["environment"])
            samples.append(time.perf_counter() - t)
            assert code == 0
        return stats(samples[1:])
    finally:
        container.remove(force=True)


def typical_spec() -> JobSpec:
    design = REPO / "seeds" / "trajectory_retrieval.py"
    return JobSpec(job_id=f"bench-{uuid.uuid4().hex[:8]}", design=DesignSpec(name=design.stem,
                   source=design.read_text()), models=ModelSpec(embedder="hashing"), protocol=ProtocolSpec())


def time_eval_in_process(spec: JobSpec) -> float:
    """harness.run in a subprocess on the host: the evaluation itself, no sandbox."""
    job = Path(f"/tmp/{spec.job_id}.json")
    job.write_text(spec.model_dump_json())
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "harness.run", str(job), "--out", f"/tmp/{spec.job_id}-result.json"],
                   check=True, capture_output=True)
    return time.perf_counter() - t


def time_eval_sandboxed(backend, spec: JobSpec) -> float:
    with Broker(BrokerConfig(local_embedder="hashing", local_chat_model=None)) as broker:
        runner = JobRunner(backend, broker, retries=0, prepare=prepare_suite)
        runner.prepare_cache(spec)
        t = time.perf_counter()
        report = runner.run(spec)
        elapsed = time.perf_counter() - t
    if report.outcome is not Outcome.OK:
        raise RuntimeError(f"{backend.name}: typical evaluation ended {report.outcome}: {report.detail}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--eval-repeats", type=int, default=3, help="runs of the typical evaluation per way")
    parser.add_argument("--skip-eval", action="store_true", help="only the per-job overhead")
    parser.add_argument("--out", help="write the figures as JSON")
    args = parser.parse_args(argv)

    backends = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        backends["none"] = NoneBackend()
    try:
        from sandbox.bwrap_backend import BubblewrapBackend

        backends["bubblewrap"] = BubblewrapBackend()
    except SandboxUnavailable as exc:
        print(f"bubblewrap: unavailable ({exc})")
    image = None
    if docker_available():
        from sandbox.docker_backend import DockerBackend
        from sandbox.image import build_image

        image = build_image()
        backends["docker"] = DockerBackend(image)
    else:
        print("docker: no daemon answers")

    rows = {}
    for name, backend in backends.items():
        rows[name if name != "docker" else "docker cold"] = time_backend(backend, args.repeats)
    if image:
        rows["docker warm (exec)"] = time_docker_warm(image, args.repeats)
    floor = rows["none"]["median_s"]
    print(f"\nper-job cost (trivial job `{' '.join(TRIVIAL)}`, {args.repeats} runs; {os.cpu_count()} cores)")
    print(f"{'backend':22} {'median s':>9} {'p90 s':>9} {'over none':>10}")
    for name, s in rows.items():
        print(f"{name:22} {s['median_s']:9.3f} {s['p90_s']:9.3f} {s['median_s'] - floor:+10.3f}")

    figures: dict = {"per_job": rows}
    if not args.skip_eval:
        spec = typical_spec()
        if "bubblewrap" in backends:  # warms the game cache on the host, outside the timing
            with Broker(BrokerConfig(local_chat_model=None)) as broker:
                prepare_suite(spec, JobRunner(backends["bubblewrap"], broker).cache_root)
        runs: dict[str, list[float]] = {"host subprocess": []}
        for _ in range(args.eval_repeats):  # interleaved, so drift on a busy machine hits every way alike
            runs["host subprocess"].append(time_eval_in_process(typical_spec()))
            for name in ("bubblewrap", "docker"):
                if name in backends:
                    runs.setdefault(name, []).append(time_eval_sandboxed(backends[name], typical_spec()))
        evals = {name: stats(samples) for name, samples in runs.items()}
        figures["typical_eval"] = evals
        ref = evals["host subprocess"]["median_s"]
        print(f"\ntypical TextWorld evaluation (6 train, 4 test x 3 repeats, heuristic agent), median of "
              f"{args.eval_repeats}:")
        for name, st in evals.items():
            print(f"  {name:16} {st['median_s']:6.2f} s  (min {st['min_s']:.2f}, {st['median_s'] - ref:+.2f} s)")
        print("per-job cost as a share of that evaluation (total / isolation only):")
        for name, st in rows.items():
            print(f"  {name:22} {100 * st['median_s'] / ref:6.2f} % / {100 * (st['median_s'] - floor) / ref:6.2f} %")
    for backend in backends.values():
        backend.close()
    if args.out:
        write_json_atomic(args.out, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
