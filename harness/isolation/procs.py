"""The design worker's uid, seen from the scorer: how to start a process under it, and how to find and kill
every process it owns.

The scorer (``harness.run``) and the design's worker run as different uids when the scorer may change uids:
as root, or inside a sandbox that gave the scorer only ``CAP_SETUID``, ``CAP_SETGID`` and ``CAP_KILL`` (the
sandbox backends do, and name the worker's uid in ``ALMA_DESIGN_UID``). The worker is started through
``setpriv`` with no capabilities at all and no-new-privs, so it cannot change uid again, signal the scorer,
or write anything the scorer owns. Because the worker's uid owns nothing but the design's processes, "every
process of that uid" is exactly the set to kill at the end of a call or phase: double forks and new sessions
included.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from pathlib import Path

#: uid of the worker when the harness runs as root outside a sandbox and ALMA_DESIGN_UID is not set
DEFAULT_DESIGN_UID = 65534
CAP_KILL, CAP_SETGID, CAP_SETUID, CAP_SETPCAP = 5, 6, 7, 8


def _effective_caps() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return 0


def has_cap(cap: int) -> bool:
    return bool(_effective_caps() >> cap & 1)


def design_uid() -> int | None:
    """The uid the design's worker runs as, or None when this process cannot give it another uid."""
    raw = os.environ.get("ALMA_DESIGN_UID")
    if os.geteuid() == 0:
        uid = int(raw) if raw else DEFAULT_DESIGN_UID
    elif raw and has_cap(CAP_SETUID) and has_cap(CAP_SETGID):
        uid = int(raw)
    else:
        return None
    if uid == os.geteuid() or not shutil.which("setpriv") or not _others_can_reach(sys.base_prefix):
        return None
    return uid


def worker_command(uid: int | None, argv: list[str]) -> list[str]:
    """``argv`` run as ``uid`` with no capabilities (or unchanged when ``uid`` is None)."""
    if uid is None:
        return argv
    cmd = [shutil.which("setpriv") or "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
           "--inh-caps=-all", "--ambient-caps=-all", "--no-new-privs"]
    if has_cap(CAP_SETPCAP):
        cmd.append("--bounding-set=-all")
    return [*cmd, "--", *argv]


def _proc_uid_state(pid: int) -> tuple[int, str] | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    uid, state = -1, "?"
    for line in text.splitlines():
        if line.startswith("Uid:"):
            uid = int(line.split()[1])
        elif line.startswith("State:"):
            state = line.split()[1]
    return uid, state


def processes_of(uid: int, exclude: set[int] | frozenset[int] = frozenset()) -> list[int]:
    """Live (non-zombie) processes whose real uid is ``uid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in exclude:
            continue
        info = _proc_uid_state(int(entry))
        if info and info[0] == uid and info[1] not in ("Z", "X"):
            found.append(int(entry))
    return found


def describe(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()[:200]
    except OSError:
        return f"{pid}"
    text = raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()
    return f"{pid} {text}"


def kill_all(uid: int, rounds: int = 200, exclude: set[int] | frozenset[int] = frozenset()) -> int:
    """SIGKILL every process of ``uid`` (but ``exclude``) until none is left (forks racing the kill included);
    returns how many were killed. Never call it with the caller's own uid."""
    if uid == os.getuid():
        raise ValueError("refusing to kill every process of the harness's own uid")
    killed = 0
    for _ in range(rounds):
        pids = processes_of(uid, exclude)
        if not pids:
            return killed
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.005)
    return killed


def _others_can_reach(path: str) -> bool:
    """Whether another uid can traverse every directory up to ``path`` (else dropping privileges would leave
    the worker unable to import the standard library, e.g. an interpreter under a private /root)."""
    current = Path(path).resolve()
    for directory in [current, *current.parents]:
        try:
            if not directory.stat().st_mode & 0o001:
                return False
        except OSError:
            return False
    return True


def files_outside(uid: int, roots: list[str], allowed: list[str], limit: int = 20) -> list[str]:
    """Paths under ``roots`` owned by ``uid`` that are not under ``allowed`` (writes outside scratch)."""
    allowed_real = [os.path.realpath(a) for a in allowed]
    found: list[str] = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root, onerror=lambda _e: None):
            keep = []
            for d in dirnames:
                full = os.path.join(dirpath, d)
                if any(full == a or full.startswith(a + os.sep) for a in allowed_real):
                    continue
                keep.append(d)
            dirnames[:] = keep
            for name in [*keep, *filenames]:
                full = os.path.join(dirpath, name)
                try:
                    if os.lstat(full).st_uid == uid:
                        found.append(full)
                except OSError:
                    continue
                if len(found) >= limit:
                    return found
    return found


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` (all its threads), or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()  # after "pid (comm) "; comm may hold spaces or parentheses
    try:
        return (int(fields[11]) + int(fields[12])) / _TICKS
    except (IndexError, ValueError):
        return None


def running_threads(pid: int) -> int:
    """How many threads of process ``pid`` are running or runnable right now (state ``R``)."""
    count = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tids:
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        count += stat[stat.rfind(")") + 2:stat.rfind(")") + 3] == "R"
    return count
