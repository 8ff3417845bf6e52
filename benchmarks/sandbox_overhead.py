"""Per-job overhead of each sandbox backend, as a share of a typical TextWorld evaluation and of a 1.5 s
screening job.

    python benchmarks/sandbox_overhead.py [--repeats 10] [--skip-eval] [--out overhead.json]

Rows (``--repeats`` runs of a trivial job, ``python -c "import harness.run"``, with the mounts the job layer
gives a job: ``/job`` with a spec file, an empty writable ``/out``, ``/cache`` with the suite directory under
it, ``/broker`` with a Unix socket); in-process the same work costs nothing extra (no new interpreter), so each
median is the per-job cost of leaving the host process, and "over none" is what the isolation itself adds to a
plain subprocess (each run minus the median of ``none``; median and p90). The rows are measured round-robin,
one job of each per round, so that drift on a busy machine hits every row alike; then a block of jobs back to
back on the docker pool, with a block of ``none`` right after it as its own reference:

- none: a plain subprocess (the interpreter start every sandbox also pays);
- bubblewrap: cgroup + bubblewrap + setpriv with pre-started gates (the default),
  :class:`sandbox.bwrap_backend.BubblewrapBackend`; "bubblewrap, no prestart" without them (``prestart=0``);
- docker cold: a fresh container per job (``DockerBackend(pool=0)``);
- docker pooled: the default, ``exec`` into a container of the pool started beforehand (each used for one job,
  then removed and replaced in the background); in the round-robin the pool has refilled before each job
  ("refill done"); "back to back" runs the jobs one right after the other, so the pool's refills (container
  create + start, about 0.4 s of the daemon's time) compete with them for the CPU, and says how many jobs found
  a container ready (the others ran in a fresh one). Two jobs before the timed ones teach the pool the jobs'
  shape;
- docker warm (exec): ``exec`` into one long-running container with the same limits, reused (measured with the
  docker SDK directly; the floor an exec can reach, not offered as a backend).

Then a typical evaluation (``harness.evaluate`` defaults: 6 train tasks, 4 test tasks x 3 repeats, heuristic
agent, trajectory_retrieval design, hashing embedder; games cached) is timed ``--eval-repeats`` times each:
``harness.run`` in a host subprocess and through each available backend (the whole job layer: job directory,
broker session, result validation); each backend's per-job cost is printed as a share of it and of a 1.5 s
screening job.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
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
from sandbox.limits import JobRun, Limits, Mount  # noqa: E402
from sandbox.outcome import Outcome  # noqa: E402

TRIVIAL = ["python", "-c", "import harness.run"]
SCREENING_S = 1.5


def stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_s": statistics.median(ordered), "p90_s": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
            "min_s": ordered[0], "n": len(ordered), "samples": samples}


class JobDirs:
    """A job's host directories as the job layer makes them (see sandbox/job.py), for ``uid``."""

    def __init__(self, work: Path, suite: Path, uid: int):
        self.root = Path(tempfile.mkdtemp(prefix="alma-job-bench-", dir=work))
        self.root.chmod(0o755)
        dirs = [self.root / "job", self.root / "out", self.root / "cache"]
        for d in dirs:
            d.mkdir(mode=0o700)
        (self.root / "cache" / "suite").mkdir(mode=0o755)
        (self.root / "job" / "job.json").write_text("{}")
        (self.root / "job" / "job.json").chmod(0o644)
        self.broker = Path(tempfile.mkdtemp(prefix="alma-b-"))
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(str(self.broker / "broker.sock"))
        self.broker.chmod(0o711)
        if uid != os.getuid():
            for d in dirs:
                if os.geteuid() == 0:
                    os.chown(d, uid, uid)
                else:
                    d.chmod(0o777)
        self.mounts = [Mount(dirs[0], "/job"), Mount(dirs[1], "/out", read_only=False), Mount(dirs[2], "/cache"),
                       Mount(suite, "/cache/suite"), Mount(self.broker, "/broker")]
        self.out = dirs[1]

    def close(self) -> None:
        self.sock.close()
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.broker, ignore_errors=True)


def one_job(backend, work: Path, suite: Path) -> float:
    """Seconds to run one trivial job with the job layer's mounts."""
    dirs = JobDirs(work, suite, backend.uid)
    job = JobRun(f"bench-{uuid.uuid4().hex[:6]}", TRIVIAL, mounts=dirs.mounts, limits=Limits(wall_s=60),
                 out_dir=dirs.out)
    t = time.perf_counter()
    r = backend.run(job)
    elapsed = time.perf_counter() - t
    dirs.close()
    if r.outcome is not Outcome.OK:
        raise RuntimeError(f"{backend.name}: trivial job ended {r.outcome}: {r.stderr[-500:]}")
    return elapsed


class WarmExec:
    """``exec`` into one long-running container with the job's limits (the docker SDK directly)."""

    name = "docker warm (exec)"

    def __init__(self, image: str):
        import docker

        from sandbox.docker_backend import DockerBackend

        backend = DockerBackend(image, pool=0)
        self.kwargs = backend._create_kwargs(JobRun("warm-bench", ["sleep", "600"], limits=Limits(wall_s=600)))
        backend.close()
        self.container = docker.from_env().containers.run(**{**self.kwargs, "command": ["sleep", "3600"]},
                                                          detach=True)

    def time(self) -> float:
        t = time.perf_counter()
        code, _ = self.container.exec_run(TRIVIAL, user=self.kwargs["user"], environment=self.kwargs["environment"])
        elapsed = time.perf_counter() - t
        assert code == 0
        return elapsed

    def close(self) -> None:
        self.container.remove(force=True)


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


def warm_pool(backend, spec_factory) -> None:
    """Two short jobs through the job layer teach a docker pool the jobs' shape; wait until it is filled."""
    with Broker(BrokerConfig(local_embedder="hashing", local_chat_model=None)) as broker:
        runner = JobRunner(backend, broker, retries=0, prepare=prepare_suite)
        for _ in range(2):
            spec = spec_factory()
            spec.protocol = spec.protocol.model_copy(update={"n_train": 1, "n_test": 1, "repeats": 1})
            report = runner.run(spec)
            if report.outcome is not Outcome.OK:
                raise RuntimeError(f"{backend.name}: warm-up job ended {report.outcome}: {report.detail}")
    backend.pool.wait_ready(timeout=60)


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
        backends["bubblewrap, no prestart"] = BubblewrapBackend(prestart=0)
    except SandboxUnavailable as exc:
        print(f"bubblewrap: unavailable ({exc})")
    image = None
    if docker_available():
        from sandbox.docker_backend import DockerBackend
        from sandbox.image import build_image

        image = build_image()
        backends["docker cold"] = DockerBackend(image, pool=0)
        pooled = DockerBackend(image)
        if pooled.pool is not None:
            backends["docker pooled"] = pooled
        else:
            print("docker pooled: the pool is switched off (ALMA_DOCKER_POOL=0)")
            pooled.close()
    else:
        print("docker: no daemon answers")

    work = Path(tempfile.mkdtemp(prefix="alma-overhead-"))
    suite = work / "suite"
    suite.mkdir()
    suite.chmod(0o755)
    work.chmod(0o755)
    timers = {name: (lambda b=b: one_job(b, work, suite)) for name, b in backends.items()}
    warm = None
    if image:
        warm = WarmExec(image)
        timers["docker warm (exec)"] = warm.time
    pooled = backends.get("docker pooled")
    if pooled is not None:
        for _ in range(2):  # two jobs teach the pool their shape
            one_job(pooled, work, suite)
        pooled.pool.wait_ready(timeout=60)
    for t in timers.values():  # warms caches
        t()
    samples: dict[str, list[float]] = {name: [] for name in timers}
    names = list(timers)
    for i in range(args.repeats):
        for name in names[i % len(names):] + names[:i % len(names)]:
            if name == "docker pooled":
                pooled.pool.wait_ready(timeout=60)  # other rows' jobs ran since its last job: the refill is done
            samples[name].append(timers[name]())
    rows = {("docker pooled, refill done" if n == "docker pooled" else n): stats(v) for n, v in samples.items()}
    if pooled is not None:
        pooled.pool.wait_ready(timeout=60)
        before = pooled.pool.stats()
        back = [one_job(pooled, work, suite) for _ in range(args.repeats)]
        after = pooled.pool.stats()
        adjacent = [one_job(backends["none"], work, suite) for _ in range(args.repeats)]
        rows["docker pooled, back to back"] = stats(back)
        rows["docker pooled, back to back"].update(pool_hits=after["hits"] - before["hits"],
                                                   pool_misses=after["misses"] - before["misses"])
        rows["none, right after that"] = stats(adjacent)
    if warm is not None:
        warm.close()
    shutil.rmtree(work, ignore_errors=True)
    floor = rows["none"]["median_s"]
    for name, st in rows.items():
        ref = rows["none, right after that"]["median_s"] if name.endswith("back to back") else floor
        st["over_none_median_s"], st["over_none_p90_s"] = st["median_s"] - ref, st["p90_s"] - ref
    print(f"\nper-job cost (trivial job `{' '.join(TRIVIAL)}` with the job layer's mounts, {args.repeats} runs each; "
          f"{os.cpu_count()} cores); over none = each run minus the median of none (the back-to-back block: of the "
          "none block right after it)")
    print(f"{'backend':28} {'median s':>9} {'p90 s':>7} {'over none: median':>18} {'p90':>7} "
          f"{'of a 1.5 s job':>15}")
    for name, st in rows.items():
        extra = f"   ({st['pool_hits']} of {st['pool_hits'] + st['pool_misses']} jobs found a container ready)" \
            if "pool_hits" in st else ""
        print(f"{name:28} {st['median_s']:9.3f} {st['p90_s']:7.3f} {st['over_none_median_s']:+18.3f} "
              f"{st['over_none_p90_s']:+7.3f} {100 * st['over_none_median_s'] / SCREENING_S:14.1f}%{extra}")

    figures: dict = {"per_job": rows, "screening_job_s": SCREENING_S}
    if not args.skip_eval:
        spec = typical_spec()
        if "bubblewrap" in backends:  # warms the game cache on the host, outside the timing
            with Broker(BrokerConfig(local_chat_model=None)) as broker:
                prepare_suite(spec, JobRunner(backends["bubblewrap"], broker).cache_root)
        if "docker pooled" in backends:
            warm_pool(backends["docker pooled"], typical_spec)
        ways = [n for n in ("bubblewrap", "docker cold", "docker pooled") if n in backends]
        runs: dict[str, list[float]] = {"host subprocess": []}
        for _ in range(args.eval_repeats):  # interleaved, so drift on a busy machine hits every way alike
            runs["host subprocess"].append(time_eval_in_process(typical_spec()))
            for name in ways:
                runs.setdefault(name, []).append(time_eval_sandboxed(backends[name], typical_spec()))
        evals = {name: stats(samples) for name, samples in runs.items()}
        figures["typical_eval"] = evals
        ref = evals["host subprocess"]["median_s"]
        print(f"\ntypical TextWorld evaluation (6 train, 4 test x 3 repeats, heuristic agent), median of "
              f"{args.eval_repeats}:")
        for name, st in evals.items():
            print(f"  {name:16} {st['median_s']:6.2f} s  (min {st['min_s']:.2f}, {st['median_s'] - ref:+.2f} s)")
        print(f"per-job cost (isolation only: over none, median / p90) as a share of that evaluation "
              f"({ref:.2f} s) and of a {SCREENING_S:g} s screening job:")
        for name, st in rows.items():
            med, p90 = st["over_none_median_s"], st["over_none_p90_s"]
            st["share_of_typical_eval"] = med / ref
            print(f"  {name:28} {100 * med / ref:6.2f} % / {100 * p90 / ref:6.2f} %   "
                  f"{100 * med / SCREENING_S:6.2f} % / {100 * p90 / SCREENING_S:6.2f} %")
    for backend in backends.values():
        backend.close()
    if args.out:
        write_json_atomic(args.out, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
