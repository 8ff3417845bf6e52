"""The Docker backend: one container per job, no network, read-only root, every limit, always removed.

Each container: ``network_mode=none``; read-only root; a size-capped tmpfs at ``/tmp``; memory with swap equal
to it (no swap); a pids limit; a CPU quota; every capability dropped but ``SETUID``, ``SETGID`` and ``KILL``,
which ``setpriv`` hands to the job as the image's non-root uid (the harness needs them to start the design's
worker under a second uid, :data:`DESIGN_UID`, with none, and to kill it); no-new-privileges; Docker's default
seccomp profile; an init process that reaps orphans; rlimits for CPU time, file size, core dumps and open files; stdout/stderr streamed to the host and kept
as head + tail (the daemon's json-file copy is capped at 1 MiB, so output never fills the host's disk). The command
runs under ``timeout -s KILL`` (PID 1, which the job cannot signal), so a container stops by itself if the
host dies; the host kills it at the wall-clock limit. Containers carry labels naming their host process;
:meth:`DockerBackend.cleanup_stale` (run at start) removes those whose host process is gone.

Limit hits: ``State.OOMKilled`` for OOM; the container's pids cgroup (``pids.events``, read from the host
while it runs) for refused forks, with a stderr heuristic when that file cannot be read.

**Pooled containers** (the default; ``pool=0`` or ``ALMA_DOCKER_POOL=0`` turns them off): a job whose mounts fit
a container started beforehand with the same limits runs in it instead of in a new one
(:mod:`sandbox.docker_pool`). Such a container's main process is a gate (:data:`POOL_GATE`, the image's Python)
that waits on the container's stdin for the job's command and environment, then execs the same ``timeout ...
setpriv ...`` command a fresh container runs, with stdin on ``/dev/null`` and default signal dispositions: the
job runs as the container's main process, under the same init, limits, capabilities, seccomp profile and uids,
and is watched by the same code (``wait``, ``OOMKilled``, the pids cgroup). The container serves that one job
only; it is removed in the background once the job has ended. A pooled container is labelled
``org.alma-engine.pool-owner`` (not ``org.alma-engine.owner``, which lists containers made for a known job) and
``org.alma-engine.job=(pool)``; cleanup_stale treats both owner labels alike.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import math
import os
import secrets
import shutil
import socket
import threading
import time
from pathlib import Path

from sandbox.docker_pool import IDLE_TTL_S, SLOT_PREFIX, ContainerPool, Slot, pool_size
from sandbox.errors import SandboxUnavailable
from sandbox.image import IMAGE_UID
from sandbox.limits import BASE_ENV, SCRATCH, JobRun, Limits, Mount
from sandbox.outcome import LimitHits, OutputTail, SandboxOutcome, classify, hits_from_stderr, limit_events
from sandbox.watch import Watchdog, output_over_limit

log = logging.getLogger(__name__)

LABEL = "org.alma-engine.sandbox"
OWNER_LABEL = "org.alma-engine.owner"
JOB_LABEL = "org.alma-engine.job"
#: JSON list of the host directories a pooled container was made with (removed with it by cleanup_stale)
SLOT_LABEL = "org.alma-engine.slot-dirs"
#: JOB_LABEL of a pooled container (its job is not known when it is created)
POOL_JOB = "(pool)"
#: a pooled container's owner (``host:pid:start-time``, as OWNER_LABEL): spares kept by a live backend are not
#: listed under OWNER_LABEL, which names the containers made for a known job
POOL_OWNER_LABEL = "org.alma-engine.pool-owner"
#: A pooled container's main process (``python -I -S -c POOL_GATE SECONDS``): reads ``{"argv": [...], "env":
#: {...}}`` from stdin (the host writes it and closes stdin when a job takes the container), then execs ``argv``
#: with the container's environment updated by ``env``, stdin on /dev/null (read-write, as Docker gives it) and
#: the signals Python ignores (SIGPIPE, SIGXFSZ) back to their defaults. Nothing comes within SECONDS: it exits.
POOL_GATE = """import json, os, signal, sys
signal.alarm(int(sys.argv[1]))
spec = json.loads(sys.stdin.buffer.read() or b"null")
if not spec:
    sys.exit(97)
signal.alarm(0)
for s in (signal.SIGPIPE, signal.SIGXFSZ):
    signal.signal(s, signal.SIG_DFL)
fd = os.open("/dev/null", os.O_RDWR)
os.dup2(fd, 0)
os.close(fd)
env = dict(os.environ)
env.update(spec["env"])
os.execvpe(spec["argv"][0], spec["argv"], env)
"""


class _NothingRan(Exception):
    """A pooled container could not be given its job before anything of the job ran."""
#: Extra seconds the in-container `timeout` waits beyond the wall-clock limit before killing the job itself.
SELF_DESTRUCT_GRACE_S = 30
#: uid of the design's worker inside the container (owns nothing in the image)
DESIGN_UID = IMAGE_UID + 1
SCORER_CAPS = ("SETUID", "SETGID", "KILL")


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def owner_id(pid: int | None = None) -> str:
    """``host:pid:start-time`` of a process: survives pid reuse."""
    pid = pid or os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def _owner_alive(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname():
        return True  # not ours to judge
    try:
        return _start_time(int(pid)) == started
    except ValueError:
        return False


class _CgroupProbe:
    """What a container's cgroups say about its job: refused forks, OOM kills, peak memory."""

    def __init__(self, backend: DockerBackend, cid: str):
        self.backend, self.cid = backend, cid
        self.known, self.refused, self.oom_kills, self.peak = False, 0, 0, None

    def read(self) -> None:
        b = self.backend
        d = b._cgroup_dir("pids", self.cid)
        if d is not None:
            with contextlib.suppress(OSError, ValueError):
                events = dict(line.split() for line in (d / "pids.events").read_text().splitlines())
                self.refused = max(self.refused, int(events.get("max", 0)))
                self.known = True
        m = b._cgroup_dir("memory", self.cid)
        if m is not None:
            name = "memory.peak" if b.cgroup_version == "2" else "memory.max_usage_in_bytes"
            with contextlib.suppress(OSError, ValueError):
                self.peak = int((m / name).read_text()) / 2**20
            with contextlib.suppress(OSError, ValueError):
                oom = m / ("memory.events" if b.cgroup_version == "2" else "memory.oom_control")
                fields = dict(line.split() for line in oom.read_text().splitlines())
                self.oom_kills = max(self.oom_kills, int(fields.get("oom_kill", 0)))

    def check(self) -> str | None:
        """For the watchdog: "oom", "pids" or None."""
        self.read()
        if self.oom_kills > 0:
            return "oom"
        return "pids" if self.refused > 0 else None


class DockerBackend:
    """Runs a :class:`JobRun` in a container of ``image`` used for that job only (see the module docstring):
    a pooled one started beforehand when the job fits one, else a fresh one.

    ``pool``: how many containers to keep started (default ``$ALMA_DOCKER_POOL``, else 2; 0 = a fresh
    container per job); ``pool_ttl_s``: how long one may idle before it is replaced.
    Raises SandboxUnavailable when no daemon answers.
    """

    name = "docker"
    isolated = True
    uid = IMAGE_UID

    def __init__(self, image: str, *, client=None, timeout: float = 60.0, pool: int | None = None,
                 pool_ttl_s: float = IDLE_TTL_S):
        import docker

        self._docker = docker
        try:
            self.client = client or docker.from_env(timeout=timeout)
            self.client.ping()
            info = self.client.info()
        except Exception as exc:  # noqa: BLE001 - any failure here means no usable daemon
            raise SandboxUnavailable(f"no Docker daemon answers ({exc}); start one with scripts/start_docker.sh "
                                     "or use --backend bubblewrap") from exc
        self.image = image
        self.cgroup_version = str(info.get("CgroupVersion", "1"))
        self.cgroup_driver = str(info.get("CgroupDriver", "cgroupfs"))
        self.owner = owner_id()
        self._live: dict[str, object] = {}
        self._lock = threading.Lock()
        self.stale_removed = self.cleanup_stale()
        size = pool_size(pool)
        self.pool: ContainerPool | None = ContainerPool(self, size, ttl_s=pool_ttl_s) if size > 0 else None
        atexit.register(self.close)

    # ----------------------------------------------------------------------------------------------------
    def cleanup_stale(self) -> list[str]:
        """Remove sandbox containers whose host process is gone (e.g. killed before it could clean up), with
        the host directories of pooled ones."""
        removed = []
        try:
            containers = self.client.containers.list(all=True, filters={"label": LABEL})
        except self._docker.errors.DockerException as exc:
            log.warning("cannot list stale sandbox containers: %s", exc)
            return removed
        for c in containers:
            owner = c.labels.get(OWNER_LABEL) or c.labels.get(POOL_OWNER_LABEL, "")
            if owner != self.owner and not _owner_alive(owner):
                with contextlib.suppress(self._docker.errors.DockerException):
                    c.remove(force=True)
                    removed.append(c.name)
                with contextlib.suppress(ValueError, TypeError):
                    for d in json.loads(c.labels.get(SLOT_LABEL, "[]")):
                        if Path(d).name.startswith(SLOT_PREFIX):
                            shutil.rmtree(d, ignore_errors=True)
        if removed:
            log.warning("removed %d stale sandbox container(s): %s", len(removed), ", ".join(removed))
        return removed

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
        with self._lock:
            live, self._live = list(self._live.values()), {}
        for c in live:
            with contextlib.suppress(Exception):
                c.remove(force=True)

    def _forget(self, container) -> None:
        with self._lock:
            self._live.pop(container.id, None)

    def _cgroup_dir(self, controller: str, cid: str) -> Path | None:
        base = Path("/sys/fs/cgroup")
        if self.cgroup_version == "2":
            candidates = [base / "system.slice" / f"docker-{cid}.scope", base / "docker" / cid]
        else:
            candidates = [base / controller / "docker" / cid,
                          base / controller / "system.slice" / f"docker-{cid}.scope"]
        return next((c for c in candidates if c.is_dir()), None)

    @staticmethod
    def _job_argv(job: JobRun) -> list[str]:
        """The job's command as the container runs it: under a self-destruct clock, dropped to IMAGE_UID with
        only the scorer's capabilities."""
        return ["timeout", "-s", "KILL", str(math.ceil(job.limits.wall_s) + SELF_DESTRUCT_GRACE_S),
                "setpriv", f"--reuid={IMAGE_UID}", f"--regid={IMAGE_UID}", "--clear-groups",
                "--inh-caps=-all," + ",".join(f"+{c.lower()}" for c in SCORER_CAPS),
                "--ambient-caps=-all," + ",".join(f"+{c.lower()}" for c in SCORER_CAPS),
                "--no-new-privs", "--", *job.command]

    @staticmethod
    def _job_env(job: JobRun) -> dict[str, str]:
        return {**job.environment(), "ALMA_DESIGN_UID": str(DESIGN_UID)}

    def _container_kwargs(self, limits: Limits, mounts: list[Mount], command: list[str], environment: dict,
                          name: str, job_label: str) -> dict:
        """A container's settings: everything but what it runs is the same for fresh and pooled containers."""
        types = self._docker.types
        lim = limits
        mem = f"{lim.memory_mb}m"
        cpu_s = math.ceil(lim.wall_s * max(lim.cpus, 1.0)) + 5
        fsize = max(lim.output_mb, lim.scratch_mb) * 2**20
        return dict(
            image=self.image,
            command=command,
            name=name,
            labels={LABEL: "1", OWNER_LABEL: self.owner, JOB_LABEL: job_label},
            user="0:0",  # only until setpriv: the job itself runs as IMAGE_UID
            environment=environment,
            init=True,
            working_dir=SCRATCH,
            hostname="sandbox",
            network_mode="none",
            read_only=True,
            tmpfs={SCRATCH: f"rw,exec,nosuid,nodev,size={lim.scratch_mb}m,mode=1777"},
            mounts=[types.Mount(target=m.target, source=str(m.source), type="bind", read_only=m.read_only)
                    for m in mounts],
            mem_limit=mem,
            memswap_limit=mem,
            pids_limit=lim.pids,
            nano_cpus=int(lim.cpus * 1e9),
            cap_drop=["ALL"],
            cap_add=list(SCORER_CAPS),
            security_opt=["no-new-privileges"],
            ipc_mode="private",
            ulimits=[types.Ulimit(name="cpu", soft=cpu_s, hard=cpu_s + 5),
                     types.Ulimit(name="fsize", soft=fsize, hard=fsize),
                     types.Ulimit(name="core", soft=0, hard=0),
                     types.Ulimit(name="nofile", soft=lim.nofile, hard=lim.nofile)],
            # stdout/stderr are streamed to the host (attach); the daemon's own copy is capped at 1 MiB
            log_config=types.LogConfig(type="json-file", config={"max-size": "1m", "max-file": "1"}),
        )

    def _create_kwargs(self, job: JobRun) -> dict:
        """The settings of a fresh container running ``job``."""
        return self._container_kwargs(job.limits, job.mounts, self._job_argv(job), self._job_env(job),
                                      f"alma-{job.job_id}-{secrets.token_hex(3)}", job.job_id)

    def _pool_container(self, image: str, limits: Limits, mounts: list[Mount], ttl_s: float,
                        slot_dirs: list[Path]):
        """Create and start a pooled container (for :class:`sandbox.docker_pool.ContainerPool`): the settings
        of a fresh one, its main process the gate (:data:`POOL_GATE`), which gives up a minute after the pool
        would retire it. Its environment is the jobs' base (``LANG`` among it: Python coerces no locale)."""
        gate = ["python", "-I", "-S", "-c", POOL_GATE, str(math.ceil(ttl_s) + 60)]
        kwargs = self._container_kwargs(limits, mounts, gate, dict(BASE_ENV), f"alma-pool-{secrets.token_hex(4)}",
                                        POOL_JOB)
        kwargs.update(image=image, stdin_open=True)  # and StdinOnce: stdin closes when the host has written
        labels = kwargs["labels"]
        labels[POOL_OWNER_LABEL] = labels.pop(OWNER_LABEL)
        labels[SLOT_LABEL] = json.dumps([str(d) for d in slot_dirs])
        container = self.client.containers.create(**kwargs)
        try:
            container.start()
            # opened now, off the job's critical path: its output (from the start: logs) and the gate's stdin
            stream = container.attach(stdout=True, stderr=True, stream=True, logs=True, demux=True)
            sock = self.client.api.attach_socket(container.id, params={"stdin": 1, "stream": 1})
        except BaseException:
            with contextlib.suppress(Exception):
                container.remove(force=True)
            raise
        # whether this host sees the container's cgroup (then its absence later means the container is gone)
        seen = self._cgroup_dir("pids", container.id) is not None
        return container, (stream, getattr(sock, "_sock", sock), seen)

    def _daemon_answers(self) -> bool:
        try:
            return bool(self.client.ping())
        except Exception:  # noqa: BLE001
            return False

    @staticmethod
    def _pump(stream, out: OutputTail, err: OutputTail) -> None:
        with contextlib.suppress(Exception):  # the stream ends (or breaks) when the container goes
            for chunk_out, chunk_err in stream:
                if chunk_out:
                    out.feed(chunk_out)
                if chunk_err:
                    err.feed(chunk_err)

    def _on_trip(self, job: JobRun, hits: LimitHits, detail: dict, kill):
        def on_trip(reason: str) -> None:
            if reason == "pids":
                hits.pids = True
                detail["pids"] = f"the pids limit ({job.limits.pids}) refused a fork; the job was stopped"
            elif reason == "oom":
                hits.oom = True
                detail["oom"] = f"the memory limit ({job.limits.memory_mb} MB) killed a process; the job " \
                                "was stopped"
            else:
                hits.output = True
                detail["output"] = reason
            with contextlib.suppress(Exception):
                kill()

        return on_trip

    def _outcome(self, job: JobRun, started: float, exit_code: int | None, hits: LimitHits, detail: dict,
                 probe: _CgroupProbe, out: OutputTail, err: OutputTail) -> SandboxOutcome:
        hits.pids |= probe.refused > 0
        if exit_code is not None and exit_code >= 128:
            hits.cpu_time |= exit_code - 128 == 24  # SIGXCPU
            hits.output |= exit_code - 128 == 25  # SIGXFSZ
        stderr = err.text()
        hits_from_stderr(stderr, hits, pids_known=probe.known)
        return SandboxOutcome(
            job.job_id, self.name, classify(exit_code, hits), exit_code=exit_code,
            wall_s=time.monotonic() - started, hits=hits, stdout=out.text(), stderr=stderr,
            output_truncated=out.truncated or err.truncated, memory_peak_mb=probe.peak,
            detail="; ".join(detail.values()), events=limit_events(hits, detail))

    def run(self, job: JobRun) -> SandboxOutcome:
        """Run ``job`` in a container of its own and classify how it ended; the container is always removed.
        Daemon or image failures give outcome ``infra_error`` (never raised)."""
        started = time.monotonic()
        if self.pool is not None:
            taken = self.pool.take(job)
            if taken is not None:
                outcome = self._run_pooled(job, *taken, started)
                if outcome is not None:
                    return outcome
        return self._run_fresh(job, started)

    def _run_fresh(self, job: JobRun, started: float) -> SandboxOutcome:
        """``job`` in a new container."""
        errors = self._docker.errors
        try:
            container = self.client.containers.create(**self._create_kwargs(job))
        except errors.ImageNotFound:
            return self._infra(job, started, f"image {self.image} is missing: build it with `python -m sandbox.image "
                                             "build`")
        except Exception as exc:  # noqa: BLE001 - daemon errors of any kind are infrastructure failures
            return self._infra(job, started, f"docker could not create the container: {exc}")
        with self._lock:
            self._live[container.id] = container
        try:
            return self._supervise(job, container, started, container.start, job.out_dir)
        finally:
            with contextlib.suppress(Exception):
                container.remove(force=True)
            self._forget(container)

    def _run_pooled(self, job: JobRun, slot: Slot, dirs: dict[str, Path], started: float) -> SandboxOutcome | None:
        """``job`` in ``slot``'s container, started beforehand; None when the container could not be given the
        job before anything of it ran (the caller uses a fresh container)."""
        container = slot.container
        stream, raw, seen = slot.handles
        if seen and self._cgroup_dir("pids", container.id) is None:
            log.info("job %s: pooled container %s has stopped; using a fresh one", job.job_id, container.id[:12])
            self.pool.discard(slot)
            return None
        slot.handles = None
        spec = json.dumps({"argv": self._job_argv(job), "env": self._job_env(job)}).encode()

        def release() -> None:  # hand the gate its command on the container's stdin, then close that
            try:
                raw.sendall(spec)
                raw.shutdown(socket.SHUT_WR)
            except OSError as exc:
                if not isinstance(exc, BrokenPipeError | ConnectionResetError):
                    raise
                raise _NothingRan(f"the pooled container's stdin is closed: {exc}") from exc
            finally:
                raw.close()

        watch = job.out_dir
        for m in job.mounts:
            if job.out_dir is not None and m.source == job.out_dir and m.target in dirs:
                watch = dirs[m.target]
        with self._lock:
            self._live[container.id] = container
        try:
            return self._supervise(job, container, started, release, watch, stream=stream)
        except _NothingRan as exc:
            log.info("job %s: pooled container %s unusable (%s); using a fresh one", job.job_id,
                     container.id[:12], exc)
            return None
        finally:
            self.pool.finish(slot, job)  # the job's output goes home; the container is removed in the background

    def _infra(self, job: JobRun, started: float, reason: str, hits: LimitHits | None = None) -> SandboxOutcome:
        return SandboxOutcome(job.job_id, self.name, classify(None, hits or LimitHits(), reason),
                              wall_s=time.monotonic() - started, detail=reason)

    def _supervise(self, job: JobRun, container, started: float, start, out_dir: Path | None,
                   stream=None) -> SandboxOutcome:
        """Start ``job`` in ``container`` (``start()``; ``stream``: its output, attached already), watch it to
        its end or its limits and classify how it ended; leaves the container stopped (its removal is the
        caller's). Raises :class:`_NothingRan` from ``start`` (then nothing of the job ran)."""
        hits, detail = LimitHits(), {}
        out, err = OutputTail(job.limits.log_kb * 1024), OutputTail(job.limits.log_kb * 1024)
        probe = _CgroupProbe(self, container.id)
        if stream is None:
            try:
                stream = container.attach(stdout=True, stderr=True, stream=True, logs=True, demux=True)
            except Exception as exc:  # noqa: BLE001
                return self._infra(job, started, f"docker could not start the container: {exc}", hits)
        pump = threading.Thread(target=self._pump, args=(stream, out, err), daemon=True)
        pump.start()
        try:
            start()
        except _NothingRan:
            raise
        except Exception as exc:  # noqa: BLE001
            with contextlib.suppress(Exception):
                container.kill()
            return self._infra(job, started, f"docker could not start the container: {exc}", hits)

        watchdog = Watchdog([probe.check, lambda: output_over_limit(out_dir, job.limits.output_mb)],
                            self._on_trip(job, hits, detail, container.kill))
        watchdog.start()
        exit_code = None
        try:
            left = started + job.limits.wall_s - time.monotonic()
            exit_code = container.wait(timeout=max(left, 0.1))["StatusCode"]
        except Exception as exc:  # noqa: BLE001 - requests' timeout and connection errors alike
            if not self._daemon_answers():
                watchdog.stop()
                return self._infra(job, started, f"the Docker daemon stopped answering while the job ran: {exc}", hits)
            hits.timeout = True
            detail["timeout"] = f"killed after {job.limits.wall_s:g} s wall clock"
            with contextlib.suppress(Exception):
                container.kill()
            with contextlib.suppress(Exception):
                exit_code = container.wait(timeout=30)["StatusCode"]
        finally:
            watchdog.stop()
        pump.join(timeout=10.0)
        try:
            container.reload()
            hits.oom |= bool(container.attrs["State"].get("OOMKilled"))
        except Exception as exc:  # noqa: BLE001
            return self._infra(job, started, f"docker could not report the container's end: {exc}", hits)
        return self._outcome(job, started, exit_code, hits, detail, probe, out, err)
