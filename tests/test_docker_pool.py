"""The Docker backend's pool of pre-started containers (sandbox/docker_pool.py): a pooled job ends, scores and
is isolated exactly like one in a fresh container; every container serves one job and is then removed; limit
hits are classified the same; close() and stale cleanup leave nothing behind.

Skips when no Docker daemon answers (or no evaluation image exists); fails under CI=true.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

from sandbox.docker_pool import POOL_ENV, SLOT_PREFIX, pool_size
from sandbox.image import IMAGE_UID
from sandbox.limits import JobRun, Limits, Mount
from sandbox.outcome import Outcome
from tests.test_sandbox_backends import docker_image, last_json

REPO = Path(__file__).resolve().parents[1]


def test_pool_size_comes_from_the_argument_or_the_environment(monkeypatch):
    monkeypatch.delenv(POOL_ENV, raising=False)
    assert pool_size() == 2 and pool_size(0) == 0 and pool_size(3) == 3
    for off in ("0", "off", "false", "no"):
        monkeypatch.setenv(POOL_ENV, off)
        assert pool_size() == 0
    monkeypatch.setenv(POOL_ENV, "4")
    assert pool_size() == 4 and pool_size(1) == 1


# -------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def image():
    return docker_image()


@pytest.fixture
def make_backend(image):
    made = []

    def make(**kwargs):
        from sandbox.docker_backend import DockerBackend

        b = DockerBackend(image, **kwargs)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    """A read-only directory every job mounts at /cache/suite (the task-suite cache)."""
    d = tmp_path_factory.mktemp("suite")
    (d / "tasks.json").write_text('["t1"]')
    d.chmod(0o755)
    return d


class Layout:
    """One job's host directories, made as the job layer makes them: job/ (the spec), out/ (writable), cache/
    (the gate in front of the suite), each the scorer's with mode 0700, and a broker-like Unix socket (0600)."""

    def __init__(self, base: Path, suite: Path):
        self.root = Path(tempfile.mkdtemp(prefix="alma-job-t-", dir=base))
        self.root.chmod(0o755)
        self.job, self.out, self.gate = self.root / "job", self.root / "out", self.root / "cache"
        for d in (self.job, self.out, self.gate):
            d.mkdir(mode=0o700)
        (self.gate / "suite").mkdir(mode=0o755)
        for d in (self.job, self.out, self.gate):
            if os.geteuid() == 0:
                os.chown(d, IMAGE_UID, IMAGE_UID)
            else:
                d.chmod(0o777)
        (self.job / "job.json").write_text('{"spec": "the job"}')
        (self.job / "job.json").chmod(0o644)
        self.sock_dir = Path(tempfile.mkdtemp(prefix="alma-b-"))
        self.sock_dir.chmod(0o711)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(self.sock_dir / "broker.sock"))
        self.server.listen(8)
        if os.geteuid() == 0:
            os.chown(self.sock_dir / "broker.sock", IMAGE_UID, -1)
        (self.sock_dir / "broker.sock").chmod(0o600)
        self.suite = suite
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"pong")

    def job_run(self, code: str, **limits) -> JobRun:
        return JobRun(f"p-{uuid.uuid4().hex[:8]}", ["python", "-c", textwrap.dedent(code)],
                      mounts=[Mount(self.job, "/job"), Mount(self.out, "/out", read_only=False),
                              Mount(self.gate, "/cache"), Mount(self.suite, "/cache/suite"),
                              Mount(self.sock_dir, "/broker")],
                      limits=Limits(**{"wall_s": 30, **limits}), out_dir=self.out)

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def layouts(tmp_path, suite):
    made = []

    def make() -> Layout:
        made.append(Layout(tmp_path, suite))
        return made[-1]

    yield make
    for lay in made:
        lay.close()


def spy(backend) -> list[tuple[str, str]]:
    """(job id, container id) of every job the backend's pool serves from now on."""
    served = []
    take = backend.pool.take

    def recording(job):
        taken = take(job)
        if taken is not None:
            served.append((job.job_id, taken[0].container.id))
        return taken

    backend.pool.take = recording
    return served


def prime(backend, layouts, **limits) -> None:
    """Two jobs of one shape teach the pool that shape; wait until it holds containers for it."""
    for _ in range(2):
        r = backend.run(layouts().job_run("print('warm')", **limits))
        assert r.outcome is Outcome.OK, r.stderr
    assert backend.pool.wait_ready(timeout=60), backend.pool.stats()


PROBE = r"""
import errno, json, os, socket, stat

def st(p):
    try:
        s = os.stat(p)
        return [s.st_uid, s.st_gid, oct(stat.S_IMODE(s.st_mode))]
    except OSError as e:
        return errno.errorcode[e.errno]

def ls(p):
    try:
        return sorted(os.listdir(p))
    except OSError as e:
        return errno.errorcode[e.errno]

def ask(path):
    try:
        c = socket.socket(socket.AF_UNIX)
        c.connect(path)
        return c.recv(16).decode()
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e))

def attempt(f):
    try:
        f()
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]

def connect(path):
    c = socket.socket(socket.AF_UNIX)
    c.connect(path)
    c.close()

def attempts():
    return {name: attempt(f) for name, f in (
        ("read_job", lambda: open("/job/job.json").read()), ("list_out", lambda: os.listdir("/out")),
        ("write_out", lambda: open("/out/x", "w")), ("list_cache", lambda: os.listdir("/cache")),
        ("broker", lambda: connect("/broker/broker.sock")))}

status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
paths = ["/job", "/job/job.json", "/out", "/cache", "/cache/suite", "/cache/suite/tasks.json", "/broker",
         "/broker/broker.sock", "/tmp", "/"]
mounts = {}
for line in open("/proc/self/mountinfo"):
    f = line.split()
    if f[4] in paths or f[4] == "/proc":
        rest = line.split(" - ")[1].split()
        mounts[f[4]] = [f[5], rest[0], rest[2] if f[4] == "/tmp" else ""]
try:
    socket.create_connection(("1.1.1.1", 53), timeout=2)
    net = "reached"
except OSError as e:
    net = "unreachable"
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.setgroups([])
    os.setgid(int(os.environ["ALMA_DESIGN_UID"]))
    os.setuid(int(os.environ["ALMA_DESIGN_UID"]))
    os.write(w, json.dumps(attempts()).encode())
    os._exit(0)
os.waitpid(pid, 0)
design = json.loads(os.read(r, 65536))
open("/out/result.txt", "w").write("written by the scorer")
print(json.dumps({
    "ids": [os.getuid(), os.geteuid(), os.getgid(), os.getgroups()],
    "status": {k: status[k].strip() for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs",
                                              "Seccomp", "SigBlk", "SigIgn", "SigCgt")},
    "stdin": [os.readlink("/proc/self/fd/0"), open("/proc/self/fdinfo/0").read().split()[3]],
    "procs": sorted(open(f"/proc/{p}/comm").read().strip() for p in os.listdir("/proc") if p.isdigit()),
    "limits": [l for l in open("/proc/self/limits").read().splitlines() if "processes" not in l],
    "env": sorted(os.environ.items()),
    "hostname": socket.gethostname(), "cwd": os.getcwd(),
    "stat": {p: st(p) for p in paths}, "ls": {p: ls(p) for p in paths[:-2]},
    "job": open("/job/job.json").read(), "broker": ask("/broker/broker.sock"), "mounts": mounts, "net": net,
    "tmpfs": os.statvfs("/tmp").f_blocks * os.statvfs("/tmp").f_frsize,
    "design": design,
}))
"""


def test_pooled_container_is_as_isolated_as_a_fresh_one(make_backend, layouts):
    """Everything a job can observe of its sandbox (uids, capabilities, no-new-privileges, seccomp, signal
    dispositions, stdin, the processes around it, rlimits, environment, mounts and their options, owners and
    modes of /job /out /cache /broker, the broker socket, no network, the scratch size, what the design's uid may
    touch) is the same in a pooled container."""
    fresh = make_backend(pool=0)
    a = layouts()
    r_fresh = fresh.run(a.job_run(PROBE))
    assert r_fresh.outcome is Outcome.OK, r_fresh.stderr

    pooled = make_backend(pool=1)
    prime(pooled, layouts)
    served = spy(pooled)
    b = layouts()
    r_pooled = pooled.run(b.job_run(PROBE))
    assert r_pooled.outcome is Outcome.OK, r_pooled.stderr
    assert len(served) == 1, "the probe did not run in a pooled container"

    seen_fresh, seen_pooled = last_json(r_fresh.stdout), last_json(r_pooled.stdout)
    assert seen_pooled == seen_fresh
    # what the design's uid may touch: nothing private; the job's own directories as the job layer made them
    assert seen_pooled["design"] == {"read_job": "EACCES", "list_out": "EACCES", "write_out": "EACCES",
                                     "list_cache": "EACCES", "broker": "EACCES"}
    assert seen_pooled["broker"] == "pong" and seen_pooled["job"] == '{"spec": "the job"}'
    assert seen_pooled["net"] == "unreachable" and seen_pooled["ids"][0] == IMAGE_UID
    # what the job wrote is in the job's own out/ on the host, owned by the scorer's uid, nothing else
    assert os.listdir(b.out) == ["result.txt"]
    assert (b.out / "result.txt").read_text() == "written by the scorer"
    assert (b.out / "result.txt").stat().st_uid == (a.out / "result.txt").stat().st_uid


def _container_state(backend, cid: str) -> str:
    import docker

    try:
        return backend.client.containers.get(cid).status
    except docker.errors.NotFound:
        return "gone"


def _wait_gone(backend, cid: str, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _container_state(backend, cid) == "gone":
            return True
        time.sleep(0.1)
    return False


def test_each_container_serves_one_job_and_is_removed(make_backend, layouts):
    backend = make_backend(pool=2)
    prime(backend, layouts)
    served = spy(backend)
    for i in range(3):
        lay = layouts()
        r = backend.run(lay.job_run(f"""
            import subprocess
            subprocess.Popen(["sleep", "300"], start_new_session=True)  # an orphan: it must die with the job
            open("/out/n.txt", "w").write("{i}")
            print("done")
        """))
        assert r.outcome is Outcome.OK, r.stderr
        assert (lay.out / "n.txt").read_text() == str(i)
        cid = served[-1][1]
        # nothing of the job outlives run(): no process left in the container's cgroup
        d = backend._cgroup_dir("pids", cid)
        assert d is None or (d / "cgroup.procs").read_text().split() == []
        assert backend.pool.wait_ready(timeout=60)
    assert len(served) == 3 and len({cid for _, cid in served}) == 3
    for _, cid in served:
        assert _wait_gone(backend, cid), f"container {cid[:12]} was not removed"


LIMIT_CASES = {
    "oom": ("""
        blocks = []
        while True:
            blocks.append(bytearray(16 * 2**20))
     """, {"memory_mb": 128}, Outcome.OOM, "oom"),
    "pids": ("""
        import os, time
        for _ in range(200):
            try:
                if os.fork() == 0:
                    time.sleep(60)
                    os._exit(0)
            except OSError:
                time.sleep(60)
     """, {"pids": 24}, Outcome.PIDS_EXHAUSTED, "pids"),
    "timeout": ("import time; time.sleep(60)", {"wall_s": 3}, Outcome.TIMEOUT, "timeout"),
    "output": ("""
        import time
        with open("/out/flood.bin", "wb") as f:
            for _ in range(8):
                f.write(b"x" * 2**20)
                f.flush()
        time.sleep(60)
     """, {"output_mb": 2}, Outcome.OUTPUT_EXCEEDED, "output"),
    "exit_code": ("import sys; sys.exit(7)", {}, Outcome.CRASHED, None),
}


@pytest.mark.parametrize("case", sorted(LIMIT_CASES))
def test_limits_are_classified_in_a_pooled_container(make_backend, layouts, case):
    code, limits, outcome, hit = LIMIT_CASES[case]
    backend = make_backend(pool=1)
    prime(backend, layouts, **limits)
    served = spy(backend)
    started = time.monotonic()
    r = backend.run(layouts().job_run(code, **limits))
    assert served, f"{case}: the job did not run in a pooled container ({backend.pool.stats()})"
    assert r.outcome is outcome, (case, r.outcome, r.exit_code, r.detail, r.stderr[-500:])
    if hit:
        assert hit in r.hits.names()
    else:
        assert r.exit_code == 7 and r.hits.names() == []
    assert time.monotonic() - started < 20  # the watchdog stopped it, not its 60 s sleep


def test_pooled_harness_job_scores_like_a_fresh_one(make_backend, tmp_path):
    """The whole job layer (job directory, broker session over the socket, result validation) on a pooled
    container gives the report a fresh container gives."""
    from harness.jobspec import DesignSpec, JobSpec, ModelSpec, ProtocolSpec
    from harness.suites import prepare_suite
    from sandbox.broker import Broker, BrokerConfig
    from sandbox.job import JobRunner

    design = (REPO / "seeds" / "trajectory_retrieval.py").read_text()

    def spec() -> JobSpec:
        return JobSpec(job_id=f"pool-{uuid.uuid4().hex[:8]}", design=DesignSpec(name="trajectory_retrieval",
                       source=design), models=ModelSpec(embedder="hashing"),
                       protocol=ProtocolSpec(n_train=1, n_test=1, repeats=1, seed=0, design_call_timeout_s=60))

    def run(backend, n: int):
        with Broker(BrokerConfig(local_embedder="hashing", local_chat_model=None)) as broker:
            runner = JobRunner(backend, broker, limits=Limits(wall_s=120, memory_mb=1024), retries=0,
                               prepare=prepare_suite, cache_root=Path(os.environ["ALMA_CACHE_DIR"]),
                               work_root=tmp_path)
            reports = []
            for _ in range(n):
                reports.append(runner.run(spec()))
                if backend.pool is not None:
                    backend.pool.wait_ready(timeout=60)
            return reports

    (fresh,) = run(make_backend(pool=0), 1)
    pooled_backend = make_backend(pool=1)
    served = spy(pooled_backend)
    reports = run(pooled_backend, 3)
    assert len(served) >= 1, pooled_backend.pool.stats()  # the third job at least ran pooled
    pooled_ids = {job_id for job_id, _ in served}
    assert fresh.outcome is Outcome.OK, (fresh.detail, fresh.stderr_tail)

    def essence(report):
        r = report.result
        return (report.outcome, r.score, r.progress,
                [(e.phase, e.task_id, e.won, e.steps, e.actions, e.error) for e in r.episodes])

    for report in reports:
        assert report.outcome is Outcome.OK, (report.detail, report.stderr_tail)
        assert essence(report) == essence(fresh)
    assert any(r.job_id in pooled_ids for r in reports)


def test_a_job_that_does_not_fit_runs_in_a_fresh_container(make_backend, layouts):
    backend = make_backend(pool=1)
    prime(backend, layouts)
    served = spy(backend)
    lay = layouts()
    (lay.out / "already.txt").write_text("there before the job")  # a writable directory that is not empty
    r = backend.run(lay.job_run("import os; print(sorted(os.listdir('/out')))"))
    assert r.outcome is Outcome.OK and served == []
    assert "already.txt" in r.stdout
    r = backend.run(layouts().job_run("print('x')", memory_mb=300))  # other limits
    assert r.outcome is Outcome.OK and served == []


def test_close_leaves_no_container_and_no_directory(make_backend, layouts):
    backend = make_backend(pool=2)
    prime(backend, layouts)
    served = spy(backend)
    r = backend.run(layouts().job_run("print('one')"))
    assert r.outcome is Outcome.OK and served
    assert backend.pool.wait_ready(timeout=60)
    idle = list(backend.pool._idle)
    dirs = [root for s in idle for root in s.roots]
    assert idle and all(d.is_dir() for d in dirs)
    backend.close()
    for cid in [c for _, c in served] + [s.container.id for s in idle]:
        assert _container_state(backend, cid) == "gone"
    assert not any(d.exists() for d in dirs)


def test_off_switch(make_backend, monkeypatch, layouts):
    monkeypatch.setenv(POOL_ENV, "0")
    backend = make_backend()
    assert backend.pool is None
    r = backend.run(layouts().job_run("print('fresh')"))
    assert r.outcome is Outcome.OK and "fresh" in r.stdout


def test_stale_pooled_containers_and_their_directories_are_removed(image, make_backend, tmp_path):
    import docker

    from sandbox.docker_backend import LABEL, POOL_OWNER_LABEL, SLOT_LABEL
    from tests.test_sandbox_units import _dead_pid

    client = docker.from_env()
    slot = Path(tempfile.mkdtemp(prefix=SLOT_PREFIX, dir=tmp_path))
    other = tmp_path / "not-a-pool-dir"
    other.mkdir()
    dead_owner = f"{os.uname().nodename}:{_dead_pid()}:1"
    stale = client.containers.create(image, ["sleep", "60"], labels={
        LABEL: "1", POOL_OWNER_LABEL: dead_owner, SLOT_LABEL: json.dumps([str(slot), str(other)])})
    backend = make_backend(pool=0)
    assert stale.name in backend.stale_removed
    assert _container_state(backend, stale.id) == "gone"
    assert not slot.exists() and other.exists()  # only directories named as the pool names them
