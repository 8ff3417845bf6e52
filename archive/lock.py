"""The run lock: one writer per run directory.

An exclusive ``flock`` on a lock file next to the database. The kernel drops the lock when its holder dies,
so the lock of a crashed run is stale by construction and the next run takes it over; the file's content (pid,
host, time) only serves the error message. The descriptor is not inherited across ``exec``; a child made by a
bare ``fork`` shares it and keeps the lock until it exits.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from archive.errors import ArchiveError, ArchiveLocked


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_holder(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.read(fd, 4096).decode("utf-8", "replace").strip()
        holder = json.loads(data) if data else {}
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}


class RunLock:
    """An exclusive, non-blocking lock on ``path``; :meth:`acquire` raises :class:`ArchiveLocked` if held.

    ``previous_holder`` is what the lock file said when it was taken (e.g. the pid of a crashed run whose
    stale lock was taken over), or ``{}`` for a fresh lock.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._fd: int | None = None
        self.previous_holder: dict = {}

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        if self._fd is not None:
            return self
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ArchiveError(f"cannot create the run lock {self.path}: {exc.strerror}. Check that the run "
                               "directory exists and is writable.") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_holder(fd)
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise ArchiveError(f"cannot lock {self.path}: {exc.strerror}. The file system may not "
                                   "support flock; use a local disk for the run directory.") from exc
            pid = holder.get("pid") if isinstance(holder.get("pid"), int) else None
            detail = ""
            if holder.get("host") and holder.get("host") != socket.gethostname():
                detail = f"(on host {holder['host']})"
            elif pid is not None and not _pid_alive(pid):
                detail = f"(pid {pid} has exited; a child process it forked may still hold the lock)"
            elif pid == os.getpid():
                detail = "(this process: the archive is already open here; reuse that Archive object)"
            raise ArchiveLocked(str(self.path), pid, detail) from None
        self.previous_holder = _read_holder(fd)
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()})
        os.ftruncate(fd, 0)
        os.pwrite(fd, record.encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
