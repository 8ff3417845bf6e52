"""Pre-started containers for the Docker backend: container start leaves the job's critical path.

A fresh container costs about 0.3-0.4 s to create and start. :class:`ContainerPool` keeps ``size`` containers
created and started ahead (every limit and mount of the job; see
:meth:`sandbox.docker_backend.DockerBackend._pool_container`), each idling in a gate that waits on the
container's stdin for the job's command; a job only hands its command over. **Each container serves exactly
one job**: it stops when the job ends, is removed in the background, and a replacement is started. A pooled
container is created by the same code as a fresh one (same image, limits, capabilities, seccomp profile,
rlimits, tmpfs, no network) and the job runs as its main process, as in a fresh one.

**Mounts.** A container's bind mounts are fixed when it is created, but a job's own directories (job spec,
output, broker socket) are made just before it runs. The pool learns a job's *shape* from two consecutive jobs
with the same limits and mount targets: a mount whose host source is the same in both is *shared* (e.g. the
task-suite cache) and is mounted as it is; one whose source differs is *private* (a per-job directory) and the
pool gives each container its own empty host directory there (``alma-pool-*``, mode 0700, root's), created
next to where the jobs keep theirs. When a job takes the container, each private directory is mirrored into
the container's own: directories recreated with the job's owners and modes, files (sockets included) hard
linked, so the container sees exactly the inodes, owners and modes a bind mount of the job's directory would
show. A writable private directory must be empty when the job starts; what the job wrote there is moved
(renamed) into the job's directory once the container has stopped (every process of it dead). A mirrored directory is a
snapshot at start: a file the host adds to it while the job runs is not seen (the job layer adds none). A job
whose mounts do not fit a ready container (or cannot be mirrored: another filesystem, more than
:data:`MAX_MIRROR_ENTRIES` entries, an owner the host may not set) runs in a fresh container as before.

**Lifetime.** A pooled container idles at most ``ttl_s`` (then it is replaced); its gate gives up a minute
later and the job's own command runs under ``timeout`` as in a fresh container, so a container stops by itself
when the host dies, as a fresh one does. Pooled containers carry the backend's labels (its owner as
``org.alma-engine.pool-owner``) and the paths of their host directories, so
:meth:`sandbox.docker_backend.DockerBackend.cleanup_stale` removes both after a host died.

The pool's size comes from the backend's ``pool`` argument or ``ALMA_DOCKER_POOL`` (``0`` or ``off``: no
pool, a fresh container per job); default :data:`DEFAULT_SIZE`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.limits import JobRun, Limits, Mount

log = logging.getLogger(__name__)

POOL_ENV = "ALMA_DOCKER_POOL"
DEFAULT_SIZE = 2
#: an idle container older than this is replaced (its gate gives up a minute later)
IDLE_TTL_S = 300.0
#: host directories of pooled containers start with this (cleanup_stale removes no other)
SLOT_PREFIX = "alma-pool-"
#: a private directory with more entries than this is not mirrored (the job gets a fresh container)
MAX_MIRROR_ENTRIES = 256
#: how many distinct (limits, mount targets) combinations the pool remembers to learn shapes from
_SEEN_KEYS = 16


def pool_size(size: int | None = None) -> int:
    """``size`` when given, else ``$ALMA_DOCKER_POOL`` (``0``/``off``/``false``/``no``: 0), else the default."""
    if size is not None:
        return max(0, int(size))
    raw = os.environ.get(POOL_ENV, "").strip().lower()
    if not raw:
        return DEFAULT_SIZE
    if raw in ("off", "false", "no", "none"):
        return 0
    try:
        return max(0, int(raw))
    except ValueError:
        log.warning("%s=%r is not a number or 'off'; using %d", POOL_ENV, raw, DEFAULT_SIZE)
        return DEFAULT_SIZE


class Ineligible(Exception):
    """This job cannot run in this pooled container (it runs in a fresh one instead)."""


@dataclass(frozen=True)
class MountShape:
    """One mount of a shape: ``shared`` = the host source every job mounts there; otherwise the mount is a
    per-job directory and pooled containers get their own directory under ``parent``."""

    target: str
    read_only: bool
    shared: str | None = None
    parent: str | None = None


@dataclass(frozen=True)
class Shape:
    image: str
    limits: str  # Limits as JSON
    mounts: tuple[MountShape, ...]

    def private(self) -> list[MountShape]:
        return [m for m in self.mounts if m.shared is None]

    def mountpoints(self, private: MountShape) -> list[str]:
        """Paths (relative) inside ``private``'s directory where other mounts of the shape are mounted."""
        return sorted(os.path.relpath(m.target, private.target) for m in self.mounts
                      if m.target != private.target and m.target.startswith(private.target.rstrip("/") + "/"))


def _limits_key(limits: Limits) -> str:
    return limits.model_dump_json()


def _key(image: str, job: JobRun) -> tuple:
    return image, _limits_key(job.limits), tuple(sorted((m.target, m.read_only) for m in job.mounts))


def derive_shape(image: str, previous: list[Mount], job: JobRun) -> Shape | None:
    """The shape two jobs with the same limits and targets share (None when a per-job source is not a
    directory)."""
    before = {m.target: m for m in previous}
    mounts = []
    for m in sorted(job.mounts, key=lambda m: m.target):
        old = before[m.target]
        if old.source == m.source:
            mounts.append(MountShape(m.target, m.read_only, shared=str(m.source)))
            continue
        if not m.source.is_dir() or m.source.is_symlink():
            return None
        common = os.path.commonpath([str(old.source), str(m.source)])
        parent = common if common not in ("/", "") and os.path.isdir(common) else tempfile.gettempdir()
        mounts.append(MountShape(m.target, m.read_only, parent=parent))
    return Shape(image, _limits_key(job.limits), tuple(mounts))


@dataclass
class Slot:
    """One pooled container and its host directories (private mount target -> directory)."""

    container: Any
    shape: Shape
    dirs: dict[str, Path]
    roots: list[Path]
    handles: Any = None  # what the backend opened on the container ahead (its output stream, the gate's stdin)
    created: float = field(default_factory=time.monotonic)

    @property
    def id(self) -> str:
        return self.container.id


def _copy_owner_mode(st: os.stat_result, dst: Path) -> None:
    have = os.lstat(dst)
    if (have.st_uid, have.st_gid) != (st.st_uid, st.st_gid):
        try:
            os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
        except PermissionError as exc:
            raise Ineligible(f"cannot give {dst} the owner of the job's directory: {exc}") from exc
    os.chmod(dst, stat.S_IMODE(st.st_mode))


def mirror(src: Path, dst: Path, budget: list[int]) -> None:
    """Make ``dst`` (an existing directory) show what ``src`` holds: directories recreated with the same owner
    and mode, symlinks copied, everything else (files, sockets) hard linked. Raises Ineligible."""
    st = os.lstat(src)
    if not stat.S_ISDIR(st.st_mode):
        raise Ineligible(f"{src} is not a directory")
    try:
        with os.scandir(src) as entries:
            for e in entries:
                budget[0] -= 1
                if budget[0] < 0:
                    raise Ineligible(f"more than {MAX_MIRROR_ENTRIES} entries to mirror")
                to = dst / e.name
                if e.is_dir(follow_symlinks=False):
                    if not to.is_dir():  # a mount point made when the container was created exists already
                        to.mkdir(mode=0o700)
                    mirror(Path(e.path), to, budget)
                elif e.is_symlink():
                    os.symlink(os.readlink(e.path), to)
                    est = e.stat(follow_symlinks=False)
                    os.chown(to, est.st_uid, est.st_gid, follow_symlinks=False)
                else:
                    os.link(e.path, to, follow_symlinks=False)
    except Ineligible:
        raise
    except OSError as exc:  # another filesystem (EXDEV), a protected hard link, a vanished entry
        raise Ineligible(f"cannot mirror {src}: {exc}") from exc
    _copy_owner_mode(st, dst)


class ContainerPool:
    """Pre-started single-use containers for one :class:`~sandbox.docker_backend.DockerBackend` (see the
    module docstring). ``take`` and ``finish`` are called from job threads; a background thread starts,
    retires and removes containers."""

    def __init__(self, backend: Any, size: int, *, ttl_s: float = IDLE_TTL_S):
        self.backend, self.size, self.ttl_s = backend, size, ttl_s
        self._cv = threading.Condition()
        self._idle: list[Slot] = []
        self._starting = 0
        self._target: Shape | None = None
        self._seen: dict[tuple, list[Mount]] = {}
        self._doomed: list[tuple[Any, list[Path], Any]] = []  # (container or None, host dirs, handles) to remove
        self._closed = False
        self._failed_until = 0.0
        self.hits = self.misses = self.started = 0
        self._thread = threading.Thread(target=self._loop, daemon=True, name="docker-pool")
        self._thread.start()

    # ---------------------------------------------------------------------------------- job threads
    def take(self, job: JobRun) -> tuple[Slot, dict[str, Path]] | None:
        """A started container made for ``job``'s shape with ``job``'s private directories mirrored into its
        own (target -> the container's host directory), or None (then the caller runs a fresh container).
        The slot is the caller's: it must pass it to :meth:`finish`."""
        image = self.backend.image
        with self._cv:
            if self._closed:
                return None
            slot = None
            now = time.monotonic()
            for s in list(self._idle):
                if now - s.created >= self.ttl_s or s.shape.image != image:
                    self._idle.remove(s)
                    self._doomed.append((s.container, s.roots, s.handles))
                elif slot is None and self._fits(s.shape, job):
                    slot = s
            if slot is not None:
                self._idle.remove(slot)
            self._learn(image, job)
            self._cv.notify_all()
            if slot is None:
                self.misses += 1
                return None
        try:
            dirs = self._prepare(slot, job)
        except Ineligible as exc:
            log.info("job %s runs in a fresh container: %s", job.job_id, exc)
            with self._cv:
                self.misses += 1
            self.discard(slot)
            return None
        with self._cv:
            self.hits += 1
        return slot, dirs

    @staticmethod
    def _fits(shape: Shape, job: JobRun) -> bool:
        if shape.limits != _limits_key(job.limits) or len(shape.mounts) != len(job.mounts):
            return False
        mounts = {m.target: m for m in job.mounts}
        for ms in shape.mounts:
            m = mounts.get(ms.target)
            if m is None or m.read_only != ms.read_only:
                return False
            if ms.shared is not None and str(m.source) != ms.shared:
                return False
        return True

    def _learn(self, image: str, job: JobRun) -> None:
        """Remember ``job``'s mounts; a second job of the same limits and targets makes its shape the target
        the pool fills (idle containers of any other shape are retired). Under the lock."""
        key = _key(image, job)
        previous = self._seen.pop(key, None)
        self._seen[key] = list(job.mounts)
        while len(self._seen) > _SEEN_KEYS:
            self._seen.pop(next(iter(self._seen)))
        if previous is None:
            return
        if self._target is not None and self._target.image == image and self._fits(self._target, job):
            return  # (a per-job source that happens to repeat does not make a new shape)
        shape = derive_shape(image, previous, job)
        if shape is None:
            return
        self._target = shape
        for s in [s for s in self._idle if s.shape != shape]:
            self._idle.remove(s)
            self._doomed.append((s.container, s.roots, s.handles))

    def _prepare(self, slot: Slot, job: JobRun) -> dict[str, Path]:
        mounts = {m.target: m for m in job.mounts}
        budget = [MAX_MIRROR_ENTRIES]
        for ms in slot.shape.private():
            src, dst = mounts[ms.target].source, slot.dirs[ms.target]
            if ms.read_only:
                mirror(src, dst, budget)
                continue
            skip = {p.split("/")[0] for p in slot.shape.mountpoints(ms)}
            try:
                extra = [n for n in os.listdir(src) if n not in skip]
                st = os.lstat(src)
                if os.lstat(dst).st_dev != st.st_dev:
                    raise Ineligible(f"{src} is on another filesystem than the pool's {dst}")
            except OSError as exc:
                raise Ineligible(f"cannot read {src}: {exc}") from exc
            if extra:
                raise Ineligible(f"the writable directory {src} is not empty")
            _copy_owner_mode(st, dst)
        return dict(slot.dirs)

    def finish(self, slot: Slot, job: JobRun) -> None:
        """After the job (the container stopped): move what it wrote in its writable private directories into
        the job's, and have the container and its directories removed."""
        mounts = {m.target: m for m in job.mounts}
        for ms in slot.shape.private():
            if ms.read_only:
                continue
            skip = {p.split("/")[0] for p in slot.shape.mountpoints(ms)}
            src = slot.dirs[ms.target]
            with contextlib.suppress(OSError):
                for name in os.listdir(src):
                    if name not in skip:
                        try:
                            os.rename(src / name, mounts[ms.target].source / name)
                        except OSError as exc:
                            log.warning("job %s: could not move %s back from the pooled container: %s",
                                        job.job_id, name, exc)
        self.discard(slot)

    def discard(self, slot: Slot) -> None:
        """Have ``slot``'s container and directories removed in the background."""
        with self._cv:
            if self._closed:
                doomed = [(slot.container, slot.roots, slot.handles)]
            else:
                self._doomed.append((slot.container, slot.roots, slot.handles))
                self._cv.notify_all()
                return
        self._remove(doomed)

    def close(self) -> None:
        """Stop filling; remove every idle container and everything waiting for removal (blocking)."""
        with self._cv:
            if self._closed:
                return
            self._closed = True
            self._cv.notify_all()
        self._thread.join(timeout=60.0)
        with self._cv:
            doomed = [(s.container, s.roots, s.handles) for s in self._idle] + self._doomed
            self._idle, self._doomed = [], []
        self._remove(doomed)

    def stats(self) -> dict[str, int]:
        with self._cv:
            return {"size": self.size, "idle": len(self._idle), "starting": self._starting, "hits": self.hits,
                    "misses": self.misses, "started": self.started}

    def wait_ready(self, timeout: float = 30.0) -> bool:
        """Block until the pool holds ``size`` idle containers of its target shape (tests, benchmarks); False at
        once while it knows no shape yet."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while not (self._target is not None and len(self._idle) >= self.size):
                left = deadline - time.monotonic()
                if left <= 0 or self._closed or self._target is None:
                    return False
                self._cv.wait(timeout=min(left, 0.2))
            return True

    # ---------------------------------------------------------------------------------- background
    def _loop(self) -> None:
        tick = max(1.0, min(30.0, self.ttl_s / 4))
        while True:
            with self._cv:
                while not self._closed and not self._doomed and not self._want_one():
                    self._cv.wait(timeout=tick)
                    self._expire()
                if self._closed:
                    return
                doomed, self._doomed = self._doomed, []
                shape = self._target if self._want_one() else None
                if shape is not None:
                    self._starting += 1
            self._remove(doomed)
            if shape is not None:
                slot = self._start(shape)
                with self._cv:
                    self._starting -= 1
                    if slot is not None and not self._closed and shape == self._target:
                        self._idle.append(slot)
                        self.started += 1
                    elif slot is not None:
                        self._doomed.append((slot.container, slot.roots, slot.handles))
                    self._cv.notify_all()

    def _want_one(self) -> bool:
        if self._target is None or time.monotonic() < self._failed_until:
            return False
        return len([s for s in self._idle if s.shape == self._target]) + self._starting < self.size

    def _expire(self) -> None:
        now = time.monotonic()
        for s in [s for s in self._idle if now - s.created >= self.ttl_s]:
            self._idle.remove(s)
            self._doomed.append((s.container, s.roots, s.handles))

    def _start(self, shape: Shape) -> Slot | None:
        roots: dict[str, Path] = {}
        dirs: dict[str, Path] = {}
        container = None
        try:
            for i, ms in enumerate(shape.private()):
                if ms.parent not in roots:
                    roots[ms.parent] = Path(tempfile.mkdtemp(prefix=SLOT_PREFIX, dir=ms.parent))
                d = roots[ms.parent] / f"m{i}"
                d.mkdir(mode=0o700)
                for rel in shape.mountpoints(ms):
                    (d / rel).mkdir(mode=0o755, parents=True, exist_ok=True)
                dirs[ms.target] = d
            mounts = [Mount(Path(ms.shared) if ms.shared is not None else dirs[ms.target], ms.target, ms.read_only)
                      for ms in shape.mounts]
            limits = Limits.model_validate_json(shape.limits)
            container, handles = self.backend._pool_container(shape.image, limits, mounts, self.ttl_s,
                                                              list(roots.values()))
            return Slot(container, shape, dirs, list(roots.values()), handles)
        except Exception as exc:  # noqa: BLE001 - a daemon or disk failure: back off, jobs run fresh meanwhile
            log.warning("could not start a pooled container (jobs run in fresh ones for 30 s): %s", exc)
            self._failed_until = time.monotonic() + 30.0
            self._remove([(container, list(roots.values()), None)])
            return None

    def _remove(self, doomed: list[tuple[Any, list[Path], Any]]) -> None:
        for container, roots, handles in doomed:
            for h in reversed(handles or ()):
                if hasattr(h, "close"):
                    with contextlib.suppress(Exception):
                        h.close()  # the gate's stdin (it exits on EOF), then the output stream
            if container is not None:
                with contextlib.suppress(Exception):
                    container.remove(force=True)
                self.backend._forget(container)
            for root in roots:
                if root.name.startswith(SLOT_PREFIX):
                    shutil.rmtree(root, ignore_errors=True)


__all__ = ["DEFAULT_SIZE", "IDLE_TTL_S", "POOL_ENV", "SLOT_PREFIX", "ContainerPool", "Ineligible", "Shape", "Slot",
           "derive_shape", "mirror", "pool_size"]
