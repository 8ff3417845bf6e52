"""A seccomp filter for the bubblewrap backend, built as a classic-BPF program in pure Python.

bubblewrap loads it with ``bwrap --seccomp FD``: FD is a readable fd holding the raw program (an array of
``struct sock_filter {u16 code; u8 jt; u8 jf; u32 k}``, little-endian), and bwrap installs it with
``prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER)`` right before it execs the command. The filter is inherited by
everything the command starts and cannot be removed.

Policy (modelled on what Docker's default profile denies to a container without capabilities):

- a syscall from another ABI (i386 ``int 0x80`` or arm32 compat: ``seccomp_data.arch`` is not the native one;
  on x86_64 also x32 numbers, which have bit 0x40000000 set) kills the process;
- EPERM for :data:`DENIED`: namespaces and mounts (``unshare``, ``setns``, ``mount``, the new mount API,
  ``pivot_root``, ``chroot``), tracing and other processes' memory (``ptrace``, ``process_vm_*``), kernel
  modules, kexec, ``bpf``, ``perf_event_open``, ``userfaultfd``, keyrings, swap, reboot, accounting, quotas,
  handles (``open_by_handle_at``), the kernel log, the clock, the host and domain names, io_uring, and
  obsolete calls (``uselib``, ``ustat``, ``sysfs``, ``_sysctl``, ``nfsservctl``, ...) where the ABI has them;
- ``clone`` with any ``CLONE_NEW*`` bit in its flags (args[0] on x86_64 and aarch64) gets EPERM; plain
  ``clone`` (fork, threads) is allowed;
- ``clone3`` gets ENOSYS, so that glibc falls back to ``clone``, whose flags the filter can read (clone3
  passes them in memory, which seccomp cannot see);
- ``personality`` is allowed only for the values Docker allows (0, PER_LINUX32 8, UNAME26 0x20000, 0x20008,
  and the query 0xffffffff); any other value gets EPERM;
- everything else is allowed.
"""

from __future__ import annotations

import os
import platform
import struct


class UnsupportedArch(ValueError):
    """No syscall table for this machine architecture."""


# BPF opcodes (linux/bpf_common.h) and seccomp return values (linux/seccomp.h)
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JSET_K = 0x45
_RET_K = 0x06
RET_ALLOW = 0x7FFF0000
RET_KILL_PROCESS = 0x80000000
EPERM, ENOSYS = 1, 38


def ret_errno(errno: int) -> int:
    return 0x00050000 | (errno & 0xFFFF)


# struct seccomp_data { int nr; u32 arch; u64 instruction_pointer; u64 args[6]; } (little-endian)
_NR, _ARCH, _ARG0_LO = 0, 4, 16
MAX_INSNS = 4096  # BPF_MAXINSNS
X32_SYSCALL_BIT = 0x40000000
CLONE_NS_FLAGS = (0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
                  # CLONE_NEWTIME shares the exit-signal byte in clone(2), so clone cannot request it; kept
                  # for completeness (it only turns a clone with an invalid signal >= 128 into EPERM)
                  | 0x00000080)
PERSONALITY_ALLOWED = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

#: Syscalls denied with EPERM, where the architecture has them.
DENIED = (
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "fsopen", "fsmount", "fsconfig", "fspick",
    "move_mount", "open_tree", "mount_setattr", "ptrace", "process_vm_readv", "process_vm_writev",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "create_module",
    "get_kernel_syms", "query_module", "bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key",
    "request_key", "swapon", "swapoff", "reboot", "acct", "quotactl", "quotactl_fd", "open_by_handle_at",
    "name_to_handle_at", "lookup_dcookie", "syslog", "iopl", "ioperm", "settimeofday", "clock_settime",
    "clock_adjtime", "adjtimex", "sethostname", "setdomainname", "vm86", "vm86old", "nfsservctl", "uselib",
    "ustat", "sysfs", "_sysctl", "io_uring_setup", "io_uring_enter", "io_uring_register",
)

# Syscall numbers, checked against /usr/include/x86_64-linux-gnu/asm/unistd_64.h (linux-libc-dev). x86_64
# has no vm86/vm86old (i386 only, and i386 calls are killed by the arch check).
_X86_64 = {
    "clone": 56, "ptrace": 101, "syslog": 103, "uselib": 134, "personality": 135, "ustat": 136, "sysfs": 139,
    "pivot_root": 155, "_sysctl": 156, "adjtimex": 159, "chroot": 161, "acct": 163, "settimeofday": 164,
    "mount": 165, "umount2": 166, "swapon": 167, "swapoff": 168, "reboot": 169, "sethostname": 170,
    "setdomainname": 171, "iopl": 172, "ioperm": 173, "create_module": 174, "init_module": 175,
    "delete_module": 176, "get_kernel_syms": 177, "query_module": 178, "quotactl": 179, "nfsservctl": 180,
    "lookup_dcookie": 212, "clock_settime": 227, "kexec_load": 246, "add_key": 248, "request_key": 249,
    "keyctl": 250, "unshare": 272, "perf_event_open": 298, "name_to_handle_at": 303, "open_by_handle_at": 304,
    "clock_adjtime": 305, "setns": 308, "process_vm_readv": 310, "process_vm_writev": 311,
    "finit_module": 313, "kexec_file_load": 320, "bpf": 321, "userfaultfd": 323, "io_uring_setup": 425,
    "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428, "move_mount": 429, "fsopen": 430,
    "fsconfig": 431, "fsmount": 432, "fspick": 433, "clone3": 435, "mount_setattr": 442, "quotactl_fd": 443,
}
# aarch64 uses the generic table: /usr/include/asm-generic/unistd.h. It has no iopl/ioperm, vm86, uselib,
# ustat, sysfs, _sysctl or the old module calls.
_AARCH64 = {
    "lookup_dcookie": 18, "umount2": 39, "mount": 40, "pivot_root": 41, "nfsservctl": 42, "chroot": 51,
    "quotactl": 60, "acct": 89, "personality": 92, "unshare": 97, "kexec_load": 104, "init_module": 105,
    "delete_module": 106, "clock_settime": 112, "syslog": 116, "ptrace": 117, "reboot": 142,
    "sethostname": 161, "setdomainname": 162, "settimeofday": 170, "adjtimex": 171, "add_key": 217,
    "request_key": 218, "keyctl": 219, "clone": 220, "swapon": 224, "swapoff": 225, "perf_event_open": 241,
    "name_to_handle_at": 264, "open_by_handle_at": 265, "clock_adjtime": 266, "setns": 268,
    "process_vm_readv": 270, "process_vm_writev": 271, "finit_module": 273, "bpf": 280, "userfaultfd": 282,
    "kexec_file_load": 294, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "clone3": 435, "mount_setattr": 442, "quotactl_fd": 443,
}

#: machine name -> (AUDIT_ARCH_* value, syscall table, whether x32 numbers must be rejected)
ARCHES = {
    "x86_64": (0xC000003E, _X86_64, True),
    "aarch64": (0xC00000B7, _AARCH64, False),
}
_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}


def syscall_table(arch: str | None = None) -> dict[str, int]:
    """The syscall numbers this module knows for ``arch`` (default: this machine)."""
    return dict(_arch(arch)[1])


def _arch(arch: str | None) -> tuple[int, dict[str, int], bool]:
    name = (arch or platform.machine()).lower()
    name = _ALIASES.get(name, name)
    if name not in ARCHES:
        raise UnsupportedArch(f"no seccomp syscall table for architecture {name!r} "
                              f"(supported: {', '.join(sorted(ARCHES))})")
    return ARCHES[name]


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    if not (0 <= jt <= 255 and 0 <= jf <= 255):
        raise ValueError("BPF jump offset out of range")
    return struct.pack("<HBBI", code, jt, jf, k & 0xFFFFFFFF)


def build_filter(arch: str | None = None) -> bytes:
    """The raw seccomp program (``struct sock_filter[]``) for ``arch`` (default: ``platform.machine()``).

    Raises :class:`UnsupportedArch` for an architecture without a table here.
    """
    audit_arch, table, x32 = _arch(arch)
    eperm = ret_errno(EPERM)
    prog = [_insn(_LD_W_ABS, _ARCH), _insn(_JEQ_K, audit_arch, 1, 0), _insn(_RET_K, RET_KILL_PROCESS),
            _insn(_LD_W_ABS, _NR)]
    if x32:
        prog += [_insn(_JSET_K, X32_SYSCALL_BIT, 0, 1), _insn(_RET_K, RET_KILL_PROCESS)]
    for nr in sorted({table[name] for name in DENIED if name in table}):
        prog += [_insn(_JEQ_K, nr, 0, 1), _insn(_RET_K, eperm)]
    # clone: flags are args[0]; the kernel uses only their low 32 bits
    prog += [_insn(_JEQ_K, table["clone"], 0, 4), _insn(_LD_W_ABS, _ARG0_LO),
             _insn(_JSET_K, CLONE_NS_FLAGS, 0, 1), _insn(_RET_K, eperm), _insn(_RET_K, RET_ALLOW)]
    # personality(unsigned int): allowed values jump to the final "allow" of this block
    n = len(PERSONALITY_ALLOWED)
    prog += [_insn(_JEQ_K, table["personality"], 0, n + 3), _insn(_LD_W_ABS, _ARG0_LO)]
    prog += [_insn(_JEQ_K, value, n - i, 0) for i, value in enumerate(PERSONALITY_ALLOWED)]
    prog += [_insn(_RET_K, eperm), _insn(_RET_K, RET_ALLOW)]
    prog += [_insn(_JEQ_K, table["clone3"], 0, 1), _insn(_RET_K, ret_errno(ENOSYS)), _insn(_RET_K, RET_ALLOW)]
    if len(prog) >= MAX_INSNS:
        raise ValueError(f"seccomp program too long: {len(prog)} instructions")
    return b"".join(prog)


def filter_fd(arch: str | None = None) -> int:
    """A readable fd holding :func:`build_filter`'s program, for ``bwrap --seccomp FD`` (``pass_fds``).

    It is the read end of a pipe whose write end is already closed (the program, about 1 KiB, fits in a
    pipe's buffer), so it can be read exactly once: use a fresh fd for every bwrap run. The caller owns it
    and closes it once the child has been started (bwrap reads it to EOF and closes its own copy). The fd is
    not inheritable; ``subprocess``'s ``pass_fds`` makes it so in the child only.
    """
    data = build_filter(arch)
    r, w = os.pipe()
    try:
        os.write(w, data)  # fits the 64 KiB pipe buffer: never blocks, never short
    except BaseException:
        os.close(r)
        raise
    finally:
        os.close(w)
    return r
