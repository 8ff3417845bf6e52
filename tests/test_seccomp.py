"""sandbox.seccomp: the program builder (emulated on both architectures) and the filter's real effect under
bubblewrap (skipped when bwrap is not installed)."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox import seccomp
from sandbox.seccomp import DENIED, RET_ALLOW, RET_KILL_PROCESS, UnsupportedArch, build_filter, filter_fd

EPERM_RET = seccomp.ret_errno(1)
ENOSYS_RET = seccomp.ret_errno(38)
NATIVE = {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(), platform.machine().lower())


# ---------------------------------------------------------------------------------------------- the builder
def run_bpf(prog: bytes, nr: int, arch: int, args: tuple[int, ...] = ()) -> int:
    """A tiny classic-BPF interpreter for the opcodes the builder emits; returns the seccomp action."""
    data = struct.pack("<iIQ6Q", nr, arch, 0, *(list(args) + [0] * (6 - len(args))))
    insns = [struct.unpack_from("<HBBI", prog, off) for off in range(0, len(prog), 8)]
    pc, acc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == 0x20:  # ld w abs
            acc = struct.unpack_from("<I", data, k)[0]
        elif code == 0x15:  # jeq k
            pc += jt if acc == k else jf
        elif code == 0x45:  # jset k
            pc += jt if acc & k else jf
        elif code == 0x06:  # ret k
            return k
        else:
            raise AssertionError(f"unexpected opcode {code:#x} at {pc}")
        pc += 1


@pytest.mark.parametrize("arch", sorted(seccomp.ARCHES))
def test_program_shape(arch):
    prog = build_filter(arch)
    assert len(prog) % 8 == 0
    assert 0 < len(prog) // 8 < 4096
    assert build_filter(arch) == prog  # deterministic


@pytest.mark.parametrize("arch", ["riscv64", "i686", "armv7l", "ppc64le"])
def test_unsupported_arch_raises(arch):
    with pytest.raises(UnsupportedArch, match=arch):
        build_filter(arch)
    with pytest.raises(UnsupportedArch):
        filter_fd(arch)


def test_syscall_numbers():
    x86 = seccomp.syscall_table("x86_64")
    assert (x86["unshare"], x86["mount"], x86["ptrace"], x86["clone"], x86["clone3"]) == (272, 165, 101, 56, 435)
    assert (x86["setns"], x86["bpf"], x86["io_uring_setup"], x86["personality"]) == (308, 321, 425, 135)
    arm = seccomp.syscall_table("aarch64")
    assert (arm["unshare"], arm["mount"], arm["ptrace"], arm["clone"], arm["clone3"]) == (97, 40, 117, 220, 435)
    assert seccomp.syscall_table("amd64") == x86 and seccomp.syscall_table("arm64") == arm
    for table in (x86, arm):
        assert set(table) <= set(DENIED) | {"clone", "clone3", "personality"}


def _header_numbers(path: str) -> dict[str, int]:
    text = Path(path).read_text()
    return {m[1]: int(m[2]) for m in re.finditer(r"^#define __NR_(\w+)\s+(\d+)\s*$", text, re.M)}


@pytest.mark.parametrize("arch,header", [("x86_64", "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"),
                                         ("aarch64", "/usr/include/asm-generic/unistd.h")])
def test_tables_match_kernel_headers(arch, header):
    if not os.path.exists(header):
        pytest.skip(f"{header} not installed (apt-get install linux-libc-dev)")
    known = _header_numbers(header)
    table = seccomp.syscall_table(arch)
    assert {name: known.get(name) for name in table} == table
    assert {n for n in DENIED if n in known} <= set(table)  # every denied syscall the ABI has


@pytest.mark.parametrize("arch", sorted(seccomp.ARCHES))
def test_policy_emulated(arch):
    audit, table, x32 = seccomp.ARCHES[arch]
    prog = build_filter(arch)
    for name in DENIED:
        if name in table:
            assert run_bpf(prog, table[name], audit) == EPERM_RET, name
    assert run_bpf(prog, table["clone3"], audit) == ENOSYS_RET
    for flags in (0x11, 0x003D0F00, 0x01200011):  # fork, pthread_create, fork with CHILD_SETTID/CLEARTID
        assert run_bpf(prog, table["clone"], audit, (flags,)) == RET_ALLOW
        assert run_bpf(prog, table["clone"], audit, (flags | (1 << 40),)) == RET_ALLOW
    for bit in (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000):
        assert run_bpf(prog, table["clone"], audit, (0x11 | bit,)) == EPERM_RET
        assert run_bpf(prog, table["clone"], audit, (0x003D0F00 | bit | (0xFF << 32),)) == EPERM_RET
    for value in (0, 8, 0x20000, 0x20008, 0xFFFFFFFF, 0xFFFFFFFF_00000008):
        assert run_bpf(prog, table["personality"], audit, (value,)) == RET_ALLOW, hex(value)
    for value in (1, 0x0400000, 0x0040000, 0x20009):
        assert run_bpf(prog, table["personality"], audit, (value,)) == EPERM_RET, hex(value)
    for nr in range(0, 460):  # everything else is allowed
        if nr not in table.values():
            assert run_bpf(prog, nr, audit) == RET_ALLOW, nr
    for other in (0x40000003, 0x40000028, 0xC0000028, 0):  # i386, arm, arm (LE), garbage
        assert run_bpf(prog, 39, other) == RET_KILL_PROCESS
    x32_nr = 0x40000000 | 39
    assert run_bpf(prog, x32_nr, audit) == (RET_KILL_PROCESS if x32 else RET_ALLOW)


def test_filter_fd_holds_the_program():
    fd = filter_fd()
    try:
        assert not os.get_inheritable(fd)
        data = b""
        while chunk := os.read(fd, 4096):
            data += chunk
        assert data == build_filter()
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------- under bubblewrap
needs_bwrap = pytest.mark.skipif(not shutil.which("bwrap"), reason="bubblewrap is not installed "
                                 "(apt-get install bubblewrap)")
needs_native = pytest.mark.skipif(NATIVE not in seccomp.ARCHES, reason=f"no syscall table for {NATIVE}")


def bwrap(*cmd: str, seccomp_filter: bool = True) -> subprocess.CompletedProcess:
    argv = ["bwrap", "--unshare-pid", "--unshare-net", "--die-with-parent", "--ro-bind", "/", "/",
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    fds = []
    if seccomp_filter:
        fds.append(filter_fd())
        argv += ["--seccomp", str(fds[0])]
    try:
        return subprocess.run([*argv, "--", *cmd], pass_fds=fds, capture_output=True, text=True, timeout=120)
    finally:
        for fd in fds:
            os.close(fd)


# Each probe notes [result, errno]; the clone child exits at once.
PROBE = """
import ctypes, json, os, sys, threading
table = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
out = {}
def note(name, r):
    out[name] = [r, ctypes.get_errno() if r < 0 else 0]
    ctypes.set_errno(0)
r = libc.syscall(table["clone"], 0x10000000 | 17, 0, 0, 0, 0)  # CLONE_NEWUSER | SIGCHLD
if r == 0:
    os._exit(0)
if r > 0:
    os.waitpid(r, 0)
note("clone_newuser", r)
note("mount", libc.mount(b"none", b"/tmp", b"tmpfs", 0, None))
pid = os.fork()
if pid == 0:
    r = libc.ptrace(0, 0, 0, 0)  # PTRACE_TRACEME
    os._exit(0 if r == 0 else ctypes.get_errno())
out["fork"] = os.waitpid(pid, 0)[1]
note("clone3", libc.syscall(table["clone3"], 0, 0))
note("personality_query", libc.personality(0xFFFFFFFF))
got = []
t = threading.Thread(target=got.append, args=(1,))
t.start(); t.join()
out["thread"] = got
import subprocess
out["subprocess"] = subprocess.run(["true"]).returncode
note("unshare", libc.unshare(0x10000000))  # last: it changes what later calls may do
print(json.dumps(out))
"""


def probe(seccomp_filter: bool) -> dict:
    p = bwrap(sys.executable, "-c", PROBE, json.dumps(seccomp.syscall_table()), seccomp_filter=seccomp_filter)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.splitlines()[-1])
    out["ptrace"] = os.WEXITSTATUS(out.pop("fork"))  # the child's errno, 0 on success
    return out


@needs_bwrap
@needs_native
def test_denied_under_bwrap():
    out = probe(seccomp_filter=True)
    for name in ("mount", "unshare", "clone_newuser"):
        assert out[name] == [-1, 1], (name, out)  # EPERM
    assert out["ptrace"] == 1
    assert out["clone3"] == [-1, 38]  # ENOSYS
    assert out["personality_query"][0] >= 0
    assert out["thread"] == [1] and out["subprocess"] == 0  # fork, threads, vfork/exec still work


@needs_bwrap
@needs_native
def test_control_without_filter():
    """The same probe without the filter: what the filter denies is allowed by bubblewrap alone."""
    out = probe(seccomp_filter=False)
    assert out["ptrace"] == 0 and out["clone3"][1] != 38
    if os.geteuid() == 0:  # as root bwrap keeps the capabilities these need
        assert out["mount"][0] == 0 and out["unshare"][0] == 0 and out["clone_newuser"][0] > 0, out


@needs_bwrap
@needs_native
def test_unshare_cli_fails():
    p = bwrap("unshare", "-Urm", "true")
    assert p.returncode != 0
    assert "Operation not permitted" in p.stderr


@needs_bwrap
@pytest.mark.skipif(NATIVE != "x86_64", reason="x32 syscalls exist only on x86_64")
def test_x32_syscall_kills():
    p = bwrap(sys.executable, "-c", "import ctypes; print('up', flush=True); "
              "ctypes.CDLL(None).syscall(0x40000000 | 39); print('survived')")
    assert p.stdout == "up\n"
    assert p.returncode in (128 + signal.SIGSYS, -signal.SIGSYS)


@needs_bwrap
@needs_native
def test_normal_program_runs():
    code = ("import json, sqlite3, threading, multiprocessing as mp\n"
            "try:\n import numpy\nexcept ImportError:\n numpy = None\n"
            "db = sqlite3.connect(':memory:'); db.execute('create table t (x)'); db.execute('insert into t values (1)')\n"
            "total = numpy.arange(10).sum() if numpy is not None else 45\n"
            "with mp.get_context('fork').Pool(2) as pool: squares = pool.map(abs, [-1, -2])\n"
            "print(json.dumps([db.execute('select x from t').fetchone()[0], int(total), squares]))\n")
    p = bwrap(sys.executable, "-c", code)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == [1, 45, [1, 2]]
