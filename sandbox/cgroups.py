"""Per-job cgroups for the bubblewrap backend: memory (no swap), pids and CPU quota, then OOM/pids accounting.

cgroup v2 is used where its hierarchy offers the memory and pids controllers; otherwise cgroup v1 (one
directory per controller). Job cgroups live in an ``alma-sandbox`` directory under this process's own cgroup
(or under ``$ALMA_CGROUP_ROOT``) and are named ``alma-<host pid>-<job id>-<nonce>``, so the ones a dead host
left behind are found and removed by :func:`cleanup_stale`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from sandbox.errors import SandboxUnavailable
from sandbox.limits import Limits

V1_CONTROLLERS = ("memory", "pids", "cpu", "cpuacct")  # cpuacct: optional, only read (CPU time)
PARENT_NAME = "alma-sandbox"


@dataclass(frozen=True)
class CgroupLayout:
    """Where job cgroups are created: one parent directory (v2) or one per controller (v1)."""

    version: int
    parents: dict[str, Path]  # controller -> parent dir ("unified" -> dir for v2)


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(fstype, mount point, super options) of every cgroup mount, from /proc/self/mountinfo."""
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if rfields and rfields[0] in ("cgroup", "cgroup2"):
            out.append((rfields[0], fields[4], set(rfields[2].split(",")) if len(rfields) > 2 else set()))
    return out


def _own_paths() -> dict[str, str]:
    """controller (or "unified") -> this process's cgroup path, from /proc/self/cgroup."""
    own = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else ["unified"]:
            own[c] = path
    return own


def _under(mountpoint: str, path: str) -> Path:
    candidate = Path(mountpoint) / path.lstrip("/")
    return candidate if candidate.is_dir() else Path(mountpoint)


def _v2_layout(mountpoint: str, own: str) -> CgroupLayout | None:
    root = Path(os.environ.get("ALMA_CGROUP_ROOT") or _under(mountpoint, own))
    try:
        available = set((root / "cgroup.controllers").read_text().split())
    except OSError:
        return None
    if not {"memory", "pids"} <= available:
        return None
    wanted = " ".join(f"+{c}" for c in ("memory", "pids", "cpu") if c in available)
    try:
        (root / "cgroup.subtree_control").write_text(wanted)
    except OSError:
        # No-internal-process rule: a cgroup with processes cannot hand controllers down. Move this process
        # into a leaf of its own, then enable them (what podman and systemd-run do).
        leaf = root / "alma-host"
        try:
            leaf.mkdir(exist_ok=True)
            (leaf / "cgroup.procs").write_text(str(os.getpid()))
            (root / "cgroup.subtree_control").write_text(wanted)
        except OSError:
            return None
    parent = root / PARENT_NAME
    try:
        parent.mkdir(exist_ok=True)
        (parent / "cgroup.subtree_control").write_text(wanted)
    except OSError:
        return None
    return CgroupLayout(2, {"unified": parent})


def detect() -> CgroupLayout:
    """The cgroup layout to use here; raises SandboxUnavailable naming what is missing."""
    mounts, own = _mounts(), _own_paths()
    for fstype, point, _ in mounts:
        if fstype == "cgroup2":
            layout = _v2_layout(point, own.get("unified", "/"))
            if layout:
                return layout
    parents: dict[str, Path] = {}
    for controller in V1_CONTROLLERS:
        for fstype, point, opts in mounts:
            if fstype == "cgroup" and controller in opts:
                parent = _under(point, own.get(controller, "/")) / PARENT_NAME
                if parent in parents.values():  # co-mounted with one already set up (cpu,cpuacct)
                    break
                try:
                    parent.mkdir(exist_ok=True)
                except OSError:
                    continue
                parents[controller] = parent
                break
    missing = [c for c in ("memory", "pids") if c not in parents]
    if missing:
        raise SandboxUnavailable(
            f"no writable cgroup with the {' and '.join(missing)} controller(s): the bubblewrap backend needs "
            "cgroup v2 with memory+pids delegated (set ALMA_CGROUP_ROOT to a delegated cgroup, e.g. from "
            "`systemd-run --user --scope -p Delegate=yes`) or writable cgroup v1 hierarchies (run as root); "
            "or use the docker backend")
    return CgroupLayout(1, parents)


def _write(path: Path, value: str) -> bool:
    try:
        path.write_text(value)
        return True
    except OSError:
        return False


def _read_kv(path: Path) -> dict[str, int]:
    try:
        return {k: int(v) for k, v in (line.split() for line in path.read_text().splitlines() if line.strip())}
    except (OSError, ValueError):
        return {}


class JobCgroup:
    """One job's cgroup(s): create with limits, attach the job's first process, read hits, kill, remove."""

    def __init__(self, layout: CgroupLayout, name: str):
        self.layout = layout
        self.name = name
        self.dirs = {c: parent / name for c, parent in layout.parents.items()}

    @classmethod
    def create(cls, layout: CgroupLayout, job_id: str, limits: Limits) -> JobCgroup:
        cg = cls(layout, f"alma-{os.getpid()}-{job_id}-{secrets.token_hex(3)}")
        for d in cg.dirs.values():
            d.mkdir()
        mem = limits.memory_mb * 1024 * 1024
        quota = max(1000, int(limits.cpus * 100_000))
        if layout.version == 2:
            d = cg.dirs["unified"]
            ok = _write(d / "memory.max", str(mem)) and _write(d / "pids.max", str(limits.pids))
            _write(d / "memory.swap.max", "0")
            _write(d / "cpu.max", f"{quota} 100000")
        else:
            ok = _write(cg.dirs["memory"] / "memory.limit_in_bytes", str(mem))
            _write(cg.dirs["memory"] / "memory.memsw.limit_in_bytes", str(mem))  # absent without swapaccount
            ok = ok and _write(cg.dirs["pids"] / "pids.max", str(limits.pids))
            if "cpu" in cg.dirs:
                _write(cg.dirs["cpu"] / "cpu.cfs_period_us", "100000")
                _write(cg.dirs["cpu"] / "cpu.cfs_quota_us", str(quota))
        if not ok:
            cg.remove()
            raise SandboxUnavailable(f"cannot set limits on cgroup {cg.name} under {layout.parents}")
        return cg

    def attach(self, pid: int) -> None:
        for d in self.dirs.values():
            (d / "cgroup.procs").write_text(str(pid))

    def _dir(self, controller: str) -> Path:
        return self.dirs["unified"] if self.layout.version == 2 else self.dirs[controller]

    def oom_kills(self) -> int:
        name = "memory.events" if self.layout.version == 2 else "memory.oom_control"
        return _read_kv(self._dir("memory") / name).get("oom_kill", 0)

    def pids_refused(self) -> int:
        return _read_kv(self._dir("pids") / "pids.events").get("max", 0)

    def memory_peak_mb(self) -> float | None:
        name = "memory.peak" if self.layout.version == 2 else "memory.max_usage_in_bytes"
        try:
            return int((self._dir("memory") / name).read_text()) / 2**20
        except (OSError, ValueError):
            return None

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system) used by the job's processes so far; None where the cgroup cannot tell."""
        if self.layout.version == 2:
            usec = _read_kv(self.dirs["unified"] / "cpu.stat").get("usage_usec")
            return None if usec is None else usec / 1e6
        d = self.dirs.get("cpuacct") or self.dirs.get("cpu")  # v1: cpuacct, often co-mounted with cpu
        try:
            return int((d / "cpuacct.usage").read_text()) / 1e9 if d else None
        except (OSError, ValueError):
            return None

    def procs(self) -> list[int]:
        pids: set[int] = set()
        for d in self.dirs.values():
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(p) for p in (d / "cgroup.procs").read_text().split())
        return sorted(pids)

    def kill_all(self, timeout: float = 5.0) -> bool:
        """SIGKILL every process in the cgroup until none is left; False if some survived ``timeout``."""
        if self.layout.version == 2:
            _write(self.dirs["unified"] / "cgroup.kill", "1")
        deadline = time.monotonic() + timeout
        while True:
            pids = self.procs()
            if not pids:
                return True
            if time.monotonic() > deadline:
                return False
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    def remove(self) -> None:
        for d in self.dirs.values():
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup_stale(layout: CgroupLayout) -> list[str]:
    """Kill and remove job cgroups whose host process is gone; returns their names."""
    removed = []
    names = {p.name for parent in layout.parents.values() if parent.is_dir() for p in parent.iterdir()
             if p.is_dir() and p.name.startswith("alma-")}
    for name in sorted(names):
        try:
            owner = int(name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if owner != os.getpid() and not _alive(owner):
            cg = JobCgroup(layout, name)
            cg.dirs = {c: d for c, d in cg.dirs.items() if d.is_dir()}
            cg.kill_all(timeout=2.0)
            cg.remove()
            removed.append(name)
    return removed
