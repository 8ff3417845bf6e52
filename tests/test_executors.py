"""Executors (engine.search.executors): a thread pool on this machine and Ray tasks on a local Ray cluster (a head with
no CPUs and one worker node, each a ``ray start --block`` subprocess), running real sandbox jobs and tiny
functions; a worker process or a whole worker node killed mid-task -> the task completes once, elsewhere,
and the archive records it once.

Without Ray (``pip install 'ray>=2.9'``) the Ray tests skip locally and fail under ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from archive import Archive
from engine.config import EvolveConfig
from engine.search.executors import EvaluationJob, ExecutorError, LocalExecutor, RayExecutor, job_executor

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ task bodies (imported by Ray workers)
def slow_square(x: int, delay: float = 0.0) -> int:
    time.sleep(delay)
    return x * x


def fail(x: int) -> int:
    raise ValueError(f"bad input {x}")


def marked(log: str, release: str, value: int) -> int:
    """Append 'start PID NODE' to ``log``, wait until ``release`` exists, append 'done PID', return 2*value."""
    import ray

    node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"
    with open(log, "a") as fh:
        fh.write(f"start {os.getpid()} {node}\n")
    deadline = time.monotonic() + 120
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.05)
    with open(log, "a") as fh:
        fh.write(f"done {os.getpid()} {node}\n")
    return 2 * value


def log_lines(log: Path, kind: str) -> list[list[str]]:
    return [line.split() for line in log.read_text().splitlines() if line.startswith(kind)] if log.exists() else []


def wait_for(predicate, timeout: float = 90.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# ------------------------------------------------------------------ local executor
def test_local_executor_bounds_concurrency_and_reports_errors():
    running, peak, lock = [0], [0], threading.Lock()

    def tracked(x):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
        if x == 3:
            raise ValueError("three")
        return x * x

    with LocalExecutor(tracked, workers=2) as ex:
        assert ex.capacity == 2
        for i in range(6):
            ex.submit(str(i), i)
        with pytest.raises(ExecutorError, match="already running"):
            ex.submit("5", 5)
        results = {}
        for r in ex.as_completed(timeout=30):
            assert r.key not in results  # each key once
            results[r.key] = r
    assert peak[0] == 2
    assert {k: r.value for k, r in results.items() if r.ok} == {"0": 0, "1": 1, "2": 4, "4": 16, "5": 25}
    assert "ValueError: three" in results["3"].error and not results["3"].lost


# ------------------------------------------------------------------ a local Ray cluster
def _need_ray():
    try:
        import ray  # noqa: F401
    except ImportError:
        message = "Ray is not installed: .venv/bin/pip install 'ray>=2.9'"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalRayCluster:
    """A Ray head (0 CPUs: it runs no tasks) and worker nodes, each ``ray start --block`` in its own process
    group, so that a node can be killed as a whole."""

    def __init__(self, root: Path):
        self.root = root
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.ray = str(Path(sys.executable).with_name("ray"))
        self.env = dict(os.environ, PYTHONPATH=str(REPO), RAY_USAGE_STATS_ENABLED="0",
                        ALMA_WORKER_DIR=str(root / "workers"),
                        RAY_health_check_period_ms="1000", RAY_health_check_timeout_ms="1000",
                        RAY_health_check_failure_threshold="3",
                        RAY_memory_monitor_refresh_ms="0",  # no OOM kills: other tests share this machine
                        RAY_AUTH_MODE="disabled")  # loopback-only test cluster; a stale token must not matter
        self.procs: list[subprocess.Popen] = []
        self.head = self._start(["--head", f"--port={self.port}", "--num-cpus=0", "--include-dashboard=false",
                                 "--disable-usage-stats", f"--temp-dir={root / 'ray'}"])

    def _start(self, args: list[str]) -> subprocess.Popen:
        proc = subprocess.Popen([self.ray, "start", "--block", "--node-ip-address=127.0.0.1",
                                 "--object-store-memory=80000000", *args], env=self.env, cwd=REPO,
                                start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=open(self.root / f"node{len(self.procs)}.log", "w"))
        self.procs.append(proc)
        return proc

    def add_worker(self, cpus: int = 1) -> subprocess.Popen:
        return self._start([f"--address={self.address}", f"--num-cpus={cpus}"])

    def kill(self, proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        for proc in reversed(self.procs):
            self.kill(proc, signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill(proc, signal.SIGKILL)
                proc.wait(10)


@pytest.fixture(scope="module")
def cluster():
    _need_ray()
    import ray

    root = Path(tempfile.mkdtemp(prefix="alma-ray-", dir="/tmp"))  # short: Ray's socket paths are bounded
    os.environ["RAY_AUTH_MODE"] = "disabled"  # the driver side of the loopback-only test cluster
    c = LocalRayCluster(root)
    try:
        c.worker = c.add_worker()
        ray.init(address=c.address, namespace="alma-engine-tests", log_to_driver=False)
        wait_for(lambda: ray.cluster_resources().get("CPU", 0) >= 1, what="the worker node")
        yield c
    finally:
        ray.shutdown()
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


def cpus() -> float:
    import ray

    return ray.available_resources().get("CPU", 0.0)


def test_ray_and_local_executors_give_equal_results(cluster):
    calls = {str(i): (i, 0.05) for i in range(5)}
    with LocalExecutor(slow_square, workers=2) as local:
        by_local = local.map(calls, timeout=60)
    ray_ex = RayExecutor(slow_square, address=cluster.address)
    by_ray = ray_ex.map(calls, timeout=120)
    ray_ex.close()
    assert {k: r.value for k, r in by_ray.items()} == {k: r.value for k, r in by_local.items()} == \
        {str(i): i * i for i in range(5)}
    assert all("node" in r.where for r in by_ray.values())
    with RayExecutor(fail, address=cluster.address) as failing:
        failed = failing.map({"x": (7,)}, timeout=120)["x"]
    assert "ValueError: bad input 7" in failed.error and not failed.lost


def _sandbox_config() -> EvolveConfig:
    from sandbox.backend import select_backend
    from sandbox.errors import SandboxUnavailable

    try:
        select_backend("bubblewrap").close()
    except SandboxUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but bubblewrap is unavailable: {exc}")
        pytest.skip(f"bubblewrap is unavailable: {exc}")
    return EvolveConfig.model_validate({
        "eval": {"benchmark": "babaisai", "n_train": 2, "n_test": 2, "repeats": 1, "agent": "heuristic",
                 "embedder": "hashing"},
        "sandbox": {"backend": "bubblewrap", "timeout_s": 300}})


def test_sandbox_jobs_local_and_on_ray_agree(cluster, tmp_path):
    from engine.code.genome import Genome
    from engine.search.evaluator import Evaluator

    config = _sandbox_config()
    genome = Genome.from_file(REPO / "seeds" / "trajectory_retrieval.py")
    evaluator = Evaluator(config, tmp_path / "run")
    try:
        spec = evaluator.job_spec(genome, "id")
        reports = {}
        for kind in ("local", "ray"):
            with job_executor(kind, config, tmp_path / "run", evaluator=evaluator, workers=1,
                              ray_address=cluster.address) as jobs:
                jobs.submit(EvaluationJob("1", genome.id, spec, tmp_path / kind / "id"))
                [done] = list(jobs.as_completed(timeout=300))
            assert done.error is None and done.report.outcome.value == "ok", (done.error, done.report)
            assert (tmp_path / kind / "id" / "result.json").is_file() and (tmp_path / kind / "id" / "job.json").is_file()
            reports[kind] = done
    finally:
        evaluator.close()
    local, remote = reports["local"].report.result, reports["ray"].report.result
    assert (local.score, local.stderr) == (remote.score, remote.stderr)
    assert [(e.task_id, e.phase, e.won, e.steps, e.actions) for e in local.episodes] == \
        [(e.task_id, e.phase, e.won, e.steps, e.actions) for e in remote.episodes]
    assert "node" in reports["ray"].where and "alma-eval" in reports["local"].where
    assert (cluster.root / "workers" / "run").is_dir()  # the worker-local broker's directory


def _run_once_through_archive(tmp_path: Path, ex: RayExecutor, log: Path, release: Path, kill) -> Archive:
    """Begin an evaluation in a real archive, run it as a Ray task, ``kill`` its first attempt, record the one
    result the executor hands back; returns the (closed) archive path's reopened Archive."""
    run = tmp_path / "run"
    with Archive.open(run) as archive:
        archive.add_design("d1", "# design", proposer="seed")
        archive.set_status("d1", "evaluating")
        ev = archive.begin_evaluation("d1", "babaisai", "id")
        ex.submit(str(ev.id), str(log), str(release), 21)
        [[_, pid, node]] = wait_for(lambda: log_lines(log, "start"), what="the task to start")
        kill(int(pid), node)
        wait_for(lambda: len(log_lines(log, "start")) == 2, timeout=120, what="the retry to start")
        release.touch()
        results = list(ex.as_completed(timeout=120))
        assert [r.key for r in results] == [str(ev.id)] and results[0].ok, results
        for r in results:
            archive.finish_evaluation(int(r.key), outcome="ok", score=r.value / 100, stderr=0.0)
        archive.set_status("d1", "evaluated")
    return Archive.open(run, lock=False)


def test_ray_worker_process_killed_mid_task_completes_once(cluster, tmp_path):
    log, release = tmp_path / "log", tmp_path / "release"
    ex = RayExecutor(marked, address=cluster.address, max_retries=3)
    with _run_once_through_archive(tmp_path, ex, log, release, lambda pid, node: os.kill(pid, signal.SIGKILL)) as a:
        [ev] = a.evaluations("d1")
        assert ev.status == "done" and ev.score == 0.42 and a.get("d1").score_on("babaisai", "id").n == 1
    starts, dones = log_lines(log, "start"), log_lines(log, "done")
    assert len(starts) == 2 and len(dones) == 1 and dones[0][1] == starts[1][1] != starts[0][1]
    ex.close()


def test_ray_worker_node_lost_mid_task_is_retried_elsewhere_once(cluster, tmp_path):
    log, release = tmp_path / "log", tmp_path / "release"
    ex = RayExecutor(marked, address=cluster.address, max_retries=3)
    lost_node = cluster.worker

    def kill_node(pid: int, node: str) -> None:
        cluster.kill(lost_node)  # the node's raylet, object store and workers, all at once
        lost_node.wait(30)
        cluster.worker = cluster.add_worker()  # a replacement node joins (as an autoscaler would add one)

    with _run_once_through_archive(tmp_path, ex, log, release, kill_node) as a:
        [ev] = a.evaluations("d1")
        assert ev.status == "done" and a.get("d1").score_on("babaisai", "id").n == 1
    starts, dones = log_lines(log, "start"), log_lines(log, "done")
    assert len(starts) == 2 and starts[0][2] != starts[1][2]  # the retry ran on the other node
    assert len(dones) == 1 and dones[0][2] == starts[1][2]
    ex.close()
    wait_for(lambda: cpus() >= 1, what="the replacement node to be idle")


def test_ray_task_lost_past_its_retries_is_reported_lost(cluster, tmp_path):
    log, release = tmp_path / "log", tmp_path / "release"
    with RayExecutor(marked, address=cluster.address, max_retries=0) as ex:
        ex.submit("k", str(log), str(release), 1)
        [[_, pid, _]] = wait_for(lambda: log_lines(log, "start"), what="the task to start")
        os.kill(int(pid), signal.SIGKILL)
        [r] = list(ex.as_completed(timeout=120))
    assert r.lost and not r.ok and "lost after 0 retries" in r.error
    assert len(log_lines(log, "start")) == 1 and not log_lines(log, "done")
