"""Python audit hooks for the design worker: record security-relevant events and refuse the dangerous ones.

Refused (PermissionError raised inside the design): subprocesses, fork/exec/spawn, socket connects and
binds, ctypes loading, writes outside the scratch directory, changing the audit state. Recorded: all of the
above plus reads outside the allowed roots (interpreter, project, scratch) and imports of risky modules.
"""

from __future__ import annotations

import os
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
        elif event in ("os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "shutil.rmtree"):
            path = args[0] if args else ""
            if isinstance(path, (str, bytes, os.PathLike)):
                real = os.path.realpath(os.fsdecode(path))
                if not self._inside(real, [self.scratch]):
                    self.record("file_write", event, real, refused=True)
                    raise PermissionError(f"alma sandbox: {event} outside the scratch directory: {real}")

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


def install(scratch_dir: str, project_root: str) -> AuditLog:
    """Install the hook (irrevocably, for this process) and return its log; call ``log.armed = True`` to
    start enforcing once the worker's own set-up is done."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, project_root, "/usr/lib", "/usr/share",
             "/proc/self", "/dev/urandom", "/etc/localtime"}
    roots.update(p for p in sys.path if p)
    log = AuditLog(scratch_dir, sorted(roots))
    sys.addaudithook(log.hook)
    _wrap_import(log)
    return log
