"""What the operating system enforces around a strategy process, and around the core.

A strategy process, before it imports any strategy code (``confine``):

- resource limits (``setrlimit``): address space, CPU seconds, open files, no core dumps;
- ``no_new_privs``, and every capability dropped (bounding, effective, permitted), so
  even when the node runs as root the process cannot ptrace the core, read another
  process's ``/proc`` entries, or override file permissions;
- Landlock (Linux 5.13 and later): it may read and execute only Python's and bastion's
  directories, its strategy's directory and the ``read_paths`` of its config; it may
  write nothing (``/dev/null`` aside); with ABI 4 and later it may not open or accept a
  TCP connection; with ABI 6 and later it may not signal a process outside its sandbox
  (the core) nor reach an abstract Unix socket;
- a seccomp filter: it may not start processes (``fork``, ``vfork``, a ``clone`` that
  is not a thread's), so nothing it runs outlives it or the node (a process left
  behind could command the next node on its control socket), nor open a socket but a
  Unix one (Landlock denies TCP only), nor use ``io_uring``;
- the parent-death signal, so it never outlives the core.

The core (``harden_core``): not dumpable (its ``/proc/<pid>/environ``, ``mem`` and
``fd`` are closed to processes without ``CAP_SYS_PTRACE``), and the subreaper of its
descendants (a strategy's child that double-forks is still the core's descendant, so
the control socket can refuse it).

Each step that the kernel refuses is reported, not hidden: ``Confinement`` says what
holds, the core logs it and ``bastion status`` shows it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import socket
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import msgspec

_libc = ctypes.CDLL(None, use_errno=True)

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
_CAP_LAST = 63

_SYS_LANDLOCK_CREATE_RULESET = 444
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1

_FS_EXECUTE = 1 << 0
_FS_WRITE_FILE = 1 << 1
_FS_READ_FILE = 1 << 2
_FS_READ_DIR = 1 << 3
_FS_TRUNCATE = 1 << 14
_FS_IOCTL_DEV = 1 << 15
_FS_ALL_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1}
_FS_ALL_LATEST = (1 << 16) - 1  # ABI 5 and later
_NET_BIND_TCP = 1 << 0
_NET_CONNECT_TCP = 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
_SCOPE_SIGNAL = 1 << 1

_READ_DIR = _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR
_READ_FILE = _FS_EXECUTE | _FS_READ_FILE
_SYSTEM_DIRS = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/opt")
_SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/localtime", "/dev/urandom")

ENV_ALWAYS: tuple[str, ...] = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "PYTHONPATH")
"""The environment variables every strategy process gets (none of them is a secret);
a strategy's ``env`` names any more."""


class Confinement(msgspec.Struct, frozen=True, kw_only=True):
    """What holds around a strategy process (it reports this to the core)."""

    rlimits: bool
    no_new_privs: bool
    capabilities_dropped: bool
    landlock_abi: int
    """0: the kernel has no Landlock: the filesystem is not confined."""
    network_denied: bool
    """No socket but a Unix one (seccomp), or at least no TCP (Landlock ABI 4)."""
    signals_scoped: bool
    processes_denied: bool
    """seccomp refuses it new processes (threads are allowed)."""

    def gaps(self) -> list[str]:
        """What does not hold, in words, for the log and ``bastion status``."""
        gaps = []
        if not self.rlimits:
            gaps.append("resource limits not set")
        if not self.no_new_privs:
            gaps.append("no_new_privs not set")
        if not self.capabilities_dropped:
            gaps.append("capabilities not dropped")
        if not self.landlock_abi:
            gaps.append("no Landlock: files are not confined")
        if not self.network_denied:
            gaps.append("no seccomp and Landlock ABI < 4: the network is not denied")
        if not self.signals_scoped:
            gaps.append("Landlock ABI < 6: signals to the core not denied")
        if not self.processes_denied:
            gaps.append("no seccomp: it may start processes, which can outlive it")
        return gaps


def scrubbed_env(names: Iterable[str], environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a strategy process: ``ENV_ALWAYS`` and ``names``, if set."""
    source = os.environ if environ is None else environ
    return {n: source[n] for n in (*ENV_ALWAYS, *names) if n in source}


def harden_core() -> list[str]:
    """Make the core non-dumpable and the subreaper of its descendants; return what the
    kernel refused (empty: both hold)."""
    refused = []
    if _prctl(PR_SET_DUMPABLE, 0) != 0:
        refused.append("not dumpable")
    if _prctl(PR_SET_CHILD_SUBREAPER, 1) != 0:
        refused.append("child subreaper")
    return refused


def confine(
    *,
    memory_mb: int,
    cpu_s: int | None,
    open_files: int,
    read_dirs: Iterable[str],
) -> Confinement:
    """Confine this process (a strategy process, before it loads strategy code)."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    rlimits = _set_rlimits(memory_mb, cpu_s, open_files)
    no_new_privs = _prctl(PR_SET_NO_NEW_PRIVS, 1) == 0
    caps = _drop_capabilities()
    abi, network, signals = _landlock(read_dirs)
    filtered = no_new_privs and _seccomp()
    return Confinement(
        rlimits=rlimits,
        no_new_privs=no_new_privs,
        capabilities_dropped=caps,
        landlock_abi=abi,
        network_denied=network or filtered,
        signals_scoped=signals,
        processes_denied=filtered,
    )


def python_dirs() -> list[str]:
    """The directories this interpreter imports from (stdlib, site-packages, bastion).

    Not the directory Python puts first on ``sys.path`` by itself: under ``python -m``
    it is the working directory, and a node's working directory may hold its journal,
    its config and its FIX stores. (``PYTHONPATH``'s directories stay: an operator put
    them there for the strategies, and their processes get ``PYTHONPATH`` too.)
    """
    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    implicit = 0 if sys.flags.safe_path else 1
    dirs.update(p for p in sys.path[implicit:] if p)
    dirs.add(str(Path(__file__).resolve().parents[1]))
    return sorted(d for d in dirs if os.path.isdir(d))


def _prctl(option: int, arg: int) -> int:
    return int(_libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0))


def _set_rlimits(memory_mb: int, cpu_s: int | None, open_files: int) -> bool:
    try:
        memory = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        if cpu_s is not None:
            resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):
        return False
    return True


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _drop_capabilities() -> bool:
    """Drop every capability from the bounding set, then the effective, permitted and
    inheritable sets. True when the process holds none afterwards."""
    for cap in range(_CAP_LAST + 1):
        _prctl(PR_CAPBSET_DROP, cap)  # EINVAL past the kernel's last: ignored
    header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (_CapData * 2)()
    if _libc.capset(ctypes.byref(header), data) != 0:
        return False
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("CapEff:", "CapPrm:")) and int(line.split()[1], 16):
                return False
    return True


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 when it has none."""
    version = _libc.syscall(
        _SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), _LANDLOCK_CREATE_RULESET_VERSION
    )
    return max(0, int(version))


def _landlock(read_dirs: Iterable[str]) -> tuple[int, bool, bool]:
    """Restrict this process to reading ``read_dirs`` (and the system's libraries);
    return (ABI, TCP denied, signals scoped). (0, False, False): not confined."""
    abi = landlock_abi()
    if abi < 1:
        return 0, False, False
    handled_fs = _FS_ALL_BY_ABI.get(abi, _FS_ALL_LATEST)
    attr = _RulesetAttr(handled_fs, 0, 0)
    size = 8
    if abi >= 4:
        attr.handled_access_net = _NET_BIND_TCP | _NET_CONNECT_TCP
        size = 16
    if abi >= 6:
        attr.scoped = _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL
        size = 24
    ruleset = _libc.syscall(
        _SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0
    )
    if ruleset < 0:
        return 0, False, False
    try:
        dirs = {*read_dirs, *_SYSTEM_DIRS}
        for path in sorted(dirs):
            _allow(ruleset, path, _READ_DIR & handled_fs)
        for path in _SYSTEM_FILES:
            _allow(ruleset, path, _READ_FILE & handled_fs)
        dev_null = _FS_READ_FILE | _FS_WRITE_FILE | _FS_TRUNCATE | _FS_IOCTL_DEV
        _allow(ruleset, "/dev/null", dev_null & handled_fs)
        if _libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0) != 0:
            return 0, False, False
    finally:
        os.close(ruleset)
    return abi, abi >= 4, abi >= 6


def _allow(ruleset: int, path: str, access: int) -> None:
    if not os.path.isdir(path):  # a file takes only the rights of files
        access &= _FS_EXECUTE | _FS_READ_FILE | _FS_WRITE_FILE | _FS_TRUNCATE | _FS_IOCTL_DEV
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # not on this machine: nothing to allow
    try:
        rule = _PathBeneathAttr(access, fd)
        _libc.syscall(
            _SYS_LANDLOCK_ADD_RULE, ruleset, _LANDLOCK_RULE_PATH_BENEATH, ctypes.byref(rule), 0
        )
    finally:
        os.close(fd)


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_LD_W_ABS, _JEQ_K, _JGE_K, _JSET_K, _RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
_NR, _ARCH, _ARG0 = 0, 4, 16  # offsets in seccomp_data (the low 32 bits of args[0])
_RET = {"allow": 0x7FFF0000, "eperm": 0x00050000 | 1, "enosys": 0x00050000 | 38}
_CLONE_THREAD = 0x00010000
_X32_SYSCALL_BIT = 0x40000000


class _Syscalls(NamedTuple):
    arch: int
    """AUDIT_ARCH_*"""
    clone: int
    clone3: int
    socket: int
    io_uring_setup: int
    forks: tuple[int, ...]
    """fork and vfork, where the machine has them."""


_SYSCALLS = {
    "x86_64": _Syscalls(0xC000003E, 56, 435, 41, 425, (57, 58)),
    "aarch64": _Syscalls(0xC00000B7, 220, 435, 198, 425, ()),
}


def _seccomp() -> bool:
    """Install the strategy process's seccomp filter; True when it holds. It fails:
    ``fork``, ``vfork`` and every ``clone`` that does not make a thread (``clone3``
    answers ENOSYS: its flags are out of a filter's reach, and libc then uses
    ``clone``); a socket of any family but ``AF_UNIX`` (Landlock denies TCP only: UDP
    went out); ``io_uring`` (whose operations a filter does not see); a system call of
    another ABI (x32, 32-bit)."""
    nrs = _SYSCALLS.get(os.uname().machine)
    if nrs is None:
        return False
    code: list[tuple[int, int | str, int | str, int]] = [
        (_LD_W_ABS, 0, 0, _ARCH),
        (_JEQ_K, 0, "eperm", nrs.arch),
        (_LD_W_ABS, 0, 0, _NR),
        (_JGE_K, "eperm", 0, _X32_SYSCALL_BIT),
        *((_JEQ_K, "eperm", 0, nr) for nr in nrs.forks),
        (_JEQ_K, "enosys", 0, nrs.clone3),
        (_JEQ_K, "enosys", 0, nrs.io_uring_setup),
        (_JEQ_K, "socket", 0, nrs.socket),
        (_JEQ_K, "clone", "allow", nrs.clone),
    ]
    labels = {"socket": len(code)}
    code += [(_LD_W_ABS, 0, 0, _ARG0), (_JEQ_K, "allow", "eperm", socket.AF_UNIX)]
    labels["clone"] = len(code)
    code += [(_LD_W_ABS, 0, 0, _ARG0), (_JSET_K, "allow", "eperm", _CLONE_THREAD)]
    for name in ("allow", "eperm", "enosys"):
        labels[name] = len(code)
        code.append((_RET_K, 0, 0, _RET[name]))

    def jump(at: int, to: int | str) -> int:
        return to if isinstance(to, int) else labels[to] - at - 1

    program = (_SockFilter * len(code))(
        *(_SockFilter(op, jump(i, jt), jump(i, jf), k) for i, (op, jt, jf, k) in enumerate(code))
    )
    fprog = _SockFprog(len(code), program)
    result = _libc.prctl(
        PR_SET_SECCOMP, ctypes.c_ulong(_SECCOMP_MODE_FILTER), ctypes.byref(fprog), 0, 0
    )
    return int(result) == 0


def is_descendant(pid: int, ancestor: int) -> bool:
    """Whether process ``pid`` descends from ``ancestor`` (by ``/proc``'s parent links;
    the core is its descendants' subreaper, so a double fork does not hide one).

    An ancestor that exits while the links are read is not an answer: the links are
    read again from ``pid`` (by then its orphans are the subreaper's). False when
    ``pid`` itself is gone: a caller that must not trust a stranger checks
    ``process_exists`` after this."""
    for _ in range(16):
        found = _descends(pid, ancestor)
        if found is not None:
            return found
    return True  # its ancestry keeps changing under us: not a stranger to trust


def _descends(pid: int, ancestor: int) -> bool | None:
    """One walk up the parent links; None when a process on the way exited meanwhile."""
    first = True
    for _ in range(64):
        if pid <= 1:
            return False
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            return False if first else None
        parent = int(stat[stat.rindex(b")") + 2 :].split()[1])
        if parent == ancestor:
            return True
        pid = parent
        first = False
    return False


def process_exists(pid: int) -> bool:
    """Whether process ``pid`` exists (a zombie does)."""
    return os.path.exists(f"/proc/{pid}")
