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
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import os
import secrets
import socket
import threading
import time
from pathlib import Path

from sandbox.errors import SandboxUnavailable
from sandbox.image import IMAGE_UID
from sandbox.limits import SCRATCH, JobRun
from sandbox.outcome import LimitHits, OutputTail, SandboxOutcome, classify, hits_from_stderr, limit_events
from sandbox.watch import Watchdog, output_over_limit

log = logging.getLogger(__name__)

LABEL = "org.alma-engine.sandbox"
OWNER_LABEL = "org.alma-engine.owner"
JOB_LABEL = "org.alma-engine.job"
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


class DockerBackend:
    """Runs a :class:`JobRun` in a fresh container of ``image`` (see the module docstring).

    Raises SandboxUnavailable when no daemon answers.
    """

    name = "docker"
    isolated = True
    uid = IMAGE_UID

    def __init__(self, image: str, *, client=None, timeout: float = 60.0):
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
        atexit.register(self.close)

    # ----------------------------------------------------------------------------------------------------
    def cleanup_stale(self) -> list[str]:
        """Remove sandbox containers whose host process is gone (e.g. killed before it could clean up)."""
        removed = []
        try:
            containers = self.client.containers.list(all=True, filters={"label": LABEL})
        except self._docker.errors.DockerException as exc:
            log.warning("cannot list stale sandbox containers: %s", exc)
            return removed
        for c in containers:
            owner = c.labels.get(OWNER_LABEL, "")
            if owner != self.owner and not _owner_alive(owner):
                with contextlib.suppress(self._docker.errors.DockerException):
                    c.remove(force=True)
                    removed.append(c.name)
        if removed:
            log.warning("removed %d stale sandbox container(s): %s", len(removed), ", ".join(removed))
        return removed

    def close(self) -> None:
        with self._lock:
            live, self._live = list(self._live.values()), {}
        for c in live:
            with contextlib.suppress(Exception):
                c.remove(force=True)

    def _cgroup_dir(self, controller: str, cid: str) -> Path | None:
        base = Path("/sys/fs/cgroup")
        if self.cgroup_version == "2":
            candidates = [base / "system.slice" / f"docker-{cid}.scope", base / "docker" / cid]
        else:
            candidates = [base / controller / "docker" / cid,
                          base / controller / "system.slice" / f"docker-{cid}.scope"]
        return next((c for c in candidates if c.is_dir()), None)

    def _create_kwargs(self, job: JobRun) -> dict:
        types = self._docker.types
        lim = job.limits
        mem = f"{lim.memory_mb}m"
        cpu_s = math.ceil(lim.wall_s * max(lim.cpus, 1.0)) + 5
        fsize = max(lim.output_mb, lim.scratch_mb) * 2**20
        return dict(
            image=self.image,
            command=["timeout", "-s", "KILL", str(math.ceil(lim.wall_s) + SELF_DESTRUCT_GRACE_S),
                     "setpriv", f"--reuid={IMAGE_UID}", f"--regid={IMAGE_UID}", "--clear-groups",
                     "--inh-caps=-all," + ",".join(f"+{c.lower()}" for c in SCORER_CAPS),
                     "--ambient-caps=-all," + ",".join(f"+{c.lower()}" for c in SCORER_CAPS),
                     "--no-new-privs", "--", *job.command],
            name=f"alma-{job.job_id}-{secrets.token_hex(3)}",
            labels={LABEL: "1", OWNER_LABEL: self.owner, JOB_LABEL: job.job_id},
            user="0:0",  # only until setpriv: the job itself runs as IMAGE_UID
            environment={**job.environment(), "ALMA_DESIGN_UID": str(DESIGN_UID)},
            init=True,
            working_dir=SCRATCH,
            hostname="sandbox",
            network_mode="none",
            read_only=True,
            tmpfs={SCRATCH: f"rw,exec,nosuid,nodev,size={lim.scratch_mb}m,mode=1777"},
            mounts=[types.Mount(target=m.target, source=str(m.source), type="bind", read_only=m.read_only)
                    for m in job.mounts],
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

    def run(self, job: JobRun) -> SandboxOutcome:
        """Run ``job`` in a new container and classify how it ended; the container is always removed.
        Daemon or image failures give outcome ``infra_error`` (never raised)."""
        errors = self._docker.errors
        started = time.monotonic()
        hits, detail = LimitHits(), {}

        def infra(reason: str) -> SandboxOutcome:
            return SandboxOutcome(job.job_id, self.name, classify(None, hits, reason),
                                  wall_s=time.monotonic() - started, detail=reason)

        try:
            container = self.client.containers.create(**self._create_kwargs(job))
        except errors.ImageNotFound:
            return infra(f"image {self.image} is missing: build it with `python -m sandbox.image build`")
        except Exception as exc:  # noqa: BLE001 - daemon errors of any kind are infrastructure failures
            return infra(f"docker could not create the container: {exc}")
        with self._lock:
            self._live[container.id] = container
        out, err = OutputTail(job.limits.log_kb * 1024), OutputTail(job.limits.log_kb * 1024)
        pids_state = {"known": False, "refused": 0, "peak": None}
        try:
            try:
                stream = container.attach(stdout=True, stderr=True, stream=True, logs=True, demux=True)
                pump = threading.Thread(target=self._pump, args=(stream, out, err), daemon=True)
                pump.start()
                container.start()
            except Exception as exc:  # noqa: BLE001
                return infra(f"docker could not start the container: {exc}")

            def check_pids() -> str | None:
                d = self._cgroup_dir("pids", container.id)
                if d is not None:
                    with contextlib.suppress(OSError, ValueError):
                        events = dict(line.split() for line in (d / "pids.events").read_text().splitlines())
                        pids_state["refused"] = max(pids_state["refused"], int(events.get("max", 0)))
                        pids_state["known"] = True
                m = self._cgroup_dir("memory", container.id)
                if m is not None:
                    name = "memory.peak" if self.cgroup_version == "2" else "memory.max_usage_in_bytes"
                    with contextlib.suppress(OSError, ValueError):
                        pids_state["peak"] = int((m / name).read_text()) / 2**20
                    with contextlib.suppress(OSError, ValueError):
                        oom = (m / ("memory.events" if self.cgroup_version == "2" else "memory.oom_control"))
                        fields = dict(line.split() for line in oom.read_text().splitlines())
                        if int(fields.get("oom_kill", 0)) > 0:
                            return "oom"
                return "pids" if pids_state["refused"] > 0 else None

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
                    container.kill()

            watchdog = Watchdog([check_pids, lambda: output_over_limit(job.out_dir, job.limits.output_mb)],
                                on_trip)
            watchdog.start()
            exit_code = None
            try:
                left = started + job.limits.wall_s - time.monotonic()
                exit_code = container.wait(timeout=max(left, 0.1))["StatusCode"]
            except Exception as exc:  # noqa: BLE001 - requests' timeout and connection errors alike
                if not self._daemon_answers():
                    watchdog.stop()
                    return infra(f"the Docker daemon stopped answering while the job ran: {exc}")
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
                return infra(f"docker could not report the container's end: {exc}")
        finally:
            with contextlib.suppress(Exception):
                container.remove(force=True)
            with self._lock:
                self._live.pop(container.id, None)
        hits.pids |= pids_state["refused"] > 0
        if exit_code is not None and exit_code >= 128:
            hits.cpu_time |= exit_code - 128 == 24  # SIGXCPU
            hits.output |= exit_code - 128 == 25  # SIGXFSZ
        stderr = err.text()
        hits_from_stderr(stderr, hits, pids_known=pids_state["known"])
        return SandboxOutcome(
            job.job_id, self.name, classify(exit_code, hits), exit_code=exit_code,
            wall_s=time.monotonic() - started, hits=hits, stdout=out.text(), stderr=stderr,
            output_truncated=out.truncated or err.truncated, memory_peak_mb=pids_state["peak"], detail="; ".join(detail.values()),
            events=limit_events(hits, detail))
