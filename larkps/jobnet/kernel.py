"""The few Linux calls Python 3.11 lacks: unshare, setns, prctl, and user-namespace maps.

Through ctypes on libc; every failure raises :class:`OSError` with the errno.
"""

from __future__ import annotations

import ctypes
import os
import signal

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
CLONE_NEWPID = 0x20000000

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36

#: The C library this process already has loaded (``find_library`` would run ldconfig).
_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def setns(fd: int, nstype: int) -> None:
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def prctl(option: int, value: int) -> None:
    args = (ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))
    _check(_libc.prctl(ctypes.c_int(option), ctypes.c_ulong(value), *args), "prctl")


def set_subreaper() -> None:
    """Orphaned descendants are re-parented to this process, not to PID 1."""
    prctl(PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    prctl(PR_SET_PDEATHSIG, sig)


def set_dumpable(dumpable: bool) -> None:
    """Not dumpable: no core dumps, no ptrace or /proc/PID/mem of this process by its own
    uid, and /proc/self owned by root (so a child that writes its own uid_map sets it back)."""
    prctl(PR_SET_DUMPABLE, int(dumpable))


def no_new_privs() -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1)


MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REC = 0x4000
MS_PRIVATE = 1 << 18


def mount(source: str | None, target: str, fstype: str | None, flags: int) -> None:
    result = _libc.mount(
        _bytes(source), target.encode(), _bytes(fstype), ctypes.c_ulong(flags), None
    )
    _check(result, f"mount {target}")


def umount(target: str, flags: int) -> None:
    _check(_libc.umount2(target.encode(), ctypes.c_int(flags)), f"umount {target}")


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else text.encode()


def own_proc() -> None:
    """A mount namespace whose /proc shows this process's PID namespace only."""
    unshare(CLONE_NEWNS)
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)


def map_ids(inside_uid: int, outside_uid: int, inside_gid: int, outside_gid: int) -> None:
    """Map one uid and one gid of this process's new user namespace (groups denied)."""
    with open("/proc/self/setgroups", "w") as handle:
        handle.write("deny")
    with open("/proc/self/uid_map", "w") as handle:
        handle.write(f"{inside_uid} {outside_uid} 1\n")
    with open("/proc/self/gid_map", "w") as handle:
        handle.write(f"{inside_gid} {outside_gid} 1\n")
