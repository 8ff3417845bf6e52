"""Python audit hooks for the design worker: record security-relevant events and refuse the dangerous ones.

Refused (PermissionError raised inside the design): subprocesses, fork/exec/spawn, socket connects and
binds, ctypes and SQLite extension loading, writes outside the scratch directory (opens, renames to or from,
links, SQLite ``ATTACH``/``VACUUM INTO`` through an authorizer set on every connection), changing the audit
state. Recorded: all of the above plus reads and directory listings outside the allowed roots (interpreter,
project, scratch) and imports of risky modules.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading

RISKY_MODULES = frozenset({"ctypes", "subprocess", "socket", "multiprocessing", "pty", "_posixsubprocess",
                           "signal", "resource", "mmap", "pickle", "marshal"})
REFUSED_EVENTS = {
    "subprocess.Popen": "subprocess",
    "os.system": "subprocess",
    "os.exec": "subprocess",
    "os.posix_spawn": "subprocess",
    "os.spawn": "subprocess",
    "os.fork": "fork",
    "os.forkpty": "fork",
    "pty.spawn": "subprocess",
    "socket.connect": "network",
    "socket.bind": "network",
    "socket.sendto": "network",
    "socket.getaddrinfo": "network",
    "ctypes.dlopen": "ctypes",
    "ctypes.dlsym": "ctypes",
    "ctypes.cdata": "ctypes",
    "os.kill": "signal",
    "os.killpg": "signal",
    "sys.setprofile": "tamper",
    "sys.settrace": "tamper",
    "sys._current_frames": "tamper",
    "gc.get_referrers": "tamper",
    "gc.get_referents": "tamper",
    "gc.get_objects": "tamper",
}
#: audit events that change the file system, with the positions of their path arguments (a rename's target
#: counts as much as its source)
WRITE_EVENTS = {"os.remove": (0,), "os.rename": (0, 1), "os.rmdir": (0,), "os.mkdir": (0,), "os.chmod": (0,),
                "os.chown": (0,), "shutil.rmtree": (0,), "os.symlink": (1,), "os.link": (0, 1),
                "os.truncate": (0,), "os.utime": (0,), "shutil.copyfile": (1,), "shutil.copytree": (1,),
                "shutil.move": (0, 1), "os.mkfifo": (0,), "os.mknod": (0,)}
#: files a design has no reason to write (code that a later interpreter could load)
PLANTED_SUFFIXES = (".py", ".pyc", ".pth", ".so")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
MAX_EVENTS = 500
#: a private event the worker raises after every call to check that this hook still runs
CANARY_EVENT = "alma.canary"


class AuditLog:
    """Collects events (dicts) raised by the hook; :meth:`drain` hands them to the harness."""

    def __init__(self, scratch_dir: str, allowed_read_roots: list[str]):
        self.scratch = os.path.realpath(scratch_dir)
        self.read_roots = [os.path.realpath(r) for r in allowed_read_roots] + [self.scratch]
        self.events: list[dict] = []
        self.dropped = 0
        self.armed = False
        self.canary = ""
        self._lock = threading.Lock()
        self._seen: set[tuple[str, str]] = set()

    def record(self, kind: str, event: str, detail: str, refused: bool) -> None:
        key = (event, detail[:200])
        with self._lock:
            if key in self._seen:
                return
            self._seen.add(key)
            if len(self.events) >= MAX_EVENTS:
                self.dropped += 1
                return
            self.events.append({"kind": kind, "event": event, "detail": detail[:300], "refused": refused})

    def drain(self) -> list[dict]:
        with self._lock:
            out, self.events = self.events, []
        return out

    def _inside(self, path: str, roots: list[str]) -> bool:
        return any(path == r or path.startswith(r + os.sep) for r in roots)

    def hook(self, event: str, args: tuple) -> None:
        if not self.armed:
            return
        if event == CANARY_EVENT:
            self.canary = str(args[0]) if args else ""
            return
        if event == "open":
            self._on_open(args)
        elif event == "import":
            name = str(args[0]).split(".")[0]
            if name in RISKY_MODULES:
                self.record("import", event, str(args[0]), refused=False)
        elif event in REFUSED_EVENTS or event.startswith("os.exec") or event.startswith("os.spawn"):
            kind = REFUSED_EVENTS.get(event, "subprocess")
            self.record(kind, event, repr(args)[:300], refused=True)
            raise PermissionError(f"alma sandbox: {event} is not allowed in a memory design")
        elif event in WRITE_EVENTS:
            for path in [args[i] for i in WRITE_EVENTS[event] if i < len(args)]:
                self._check_write(event, path)
        elif event in ("os.listdir", "os.scandir"):
            path = args[0] if args else "."
            if isinstance(path, (str, bytes, os.PathLike)):
                real = os.path.realpath(os.fsdecode(path))
                if not self._inside(real, self.read_roots):
                    self.record("file_read", event, real, refused=False)
        elif event in ("sqlite3.enable_load_extension", "sqlite3.load_extension"):
            self.record("ctypes", event, repr(args)[:300], refused=True)
            raise PermissionError(f"alma sandbox: {event} is not allowed in a memory design")

    def _check_write(self, event: str, path: object) -> None:
        if not isinstance(path, (str, bytes, os.PathLike)):
            return
        real = os.path.realpath(os.fsdecode(path))
        if not self._inside(real, [self.scratch]):
            self.record("file_write", event, real, refused=True)
            raise PermissionError(f"alma sandbox: {event} outside the scratch directory: {real}")
        self._check_planted(real)

    def sqlite_authorizer(self, action: int, arg1, arg2, db_name, trigger) -> int:
        """Refuses ATTACH (and VACUUM INTO, which attaches its target) of a database file outside scratch:
        SQLite opens files in C, below the ``open`` audit event."""
        if action != sqlite3.SQLITE_ATTACH or not arg1 or arg1 == ":memory:":
            return sqlite3.SQLITE_OK
        path = arg1.removeprefix("file:").split("?", 1)[0] if arg1.startswith("file:") else arg1
        if path in ("", ":memory:"):
            return sqlite3.SQLITE_OK
        real = os.path.realpath(path)
        if self._inside(real, [self.scratch]):
            return sqlite3.SQLITE_OK
        self.record("file_write", "sqlite3.attach", real, refused=True)
        return sqlite3.SQLITE_DENY

    def _on_open(self, args: tuple) -> None:
        path, mode, flags = (list(args) + [None, None, None])[:3]
        if not isinstance(path, (str, bytes, os.PathLike)):
            return  # an fd
        real = os.path.realpath(os.fsdecode(path))
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & _WRITE_FLAGS)
        if writing and not self._inside(real, [self.scratch]):
            self.record("file_write", "open", real, refused=True)
            raise PermissionError(f"alma sandbox: writing outside the scratch directory is not allowed: {real}")
        if not writing and not self._inside(real, self.read_roots):
            self.record("file_read", "open", real, refused=False)
        if writing:
            self._check_planted(real)

    def _check_planted(self, real: str) -> None:
        """Record code files written into scratch: modules planted for a later interpreter to import."""
        if real.endswith(PLANTED_SUFFIXES):
            self.record("file_write", "planted_code", real, refused=False)


def _wrap_import(log: AuditLog) -> None:
    """Record imports of risky modules even when they are already loaded (the audit 'import' event fires only
    on a first load)."""
    import builtins

    original = builtins.__import__

    def recording_import(name, globals=None, locals=None, fromlist=(), level=0):
        if log.armed and level == 0 and name.split(".")[0] in RISKY_MODULES:
            log.record("import", "import", name, refused=False)
        return original(name, globals, locals, fromlist, level)

    builtins.__import__ = recording_import


def _guard_sqlite(log: AuditLog) -> None:
    """Every connection made through ``sqlite3.connect`` gets the log's authorizer (before the design runs)."""
    original = sqlite3.connect

    def connect(*args, **kwargs):
        conn = original(*args, **kwargs)
        conn.set_authorizer(log.sqlite_authorizer)
        return conn

    sqlite3.connect = sqlite3.dbapi2.connect = connect


def install(scratch_dir: str, project_root: str) -> AuditLog:
    """Install the hook (irrevocably, for this process) and return its log; call ``log.armed = True`` to
    start enforcing once the worker's own set-up is done."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, project_root, "/usr/lib", "/usr/share",
             "/proc/self", "/dev/urandom", "/etc/localtime"}
    roots.update(p for p in sys.path if p)
    log = AuditLog(scratch_dir, sorted(roots))
    sys.addaudithook(log.hook)
    _wrap_import(log)
    _guard_sqlite(log)
    return log
