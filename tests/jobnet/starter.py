"""A stand-in for HTCondor's starter, run as root by the jobnet tests.

``starter.py REPORT UID GID WORKDIR TUN -- ARGV...``: in a mount namespace of its own
it puts a mode-0666 tun node over /dev/net/tun (the machine's stays as it is),
becomes a child subreaper, runs ARGV (the job wrapper) as UID:GID in WORKDIR, and
reaps every descendant. When the wrapper has ended it waits a little for whatever
the wrapper left, kills what is still there, and writes REPORT (JSON): the wrapper's
pid and wait status, and the command lines of the leftovers. Exits 0.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

from larkps.jobnet import kernel

GRACE = 5.0  # seconds the wrapper's descendants get to go by themselves


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _children(pid: int) -> list[int]:
    found = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for task in tasks:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as f:
            found += [int(p) for p in f.read().split()]
    return found


def _descendants(pid: int) -> list[int]:
    result, todo = [], _children(pid)
    while todo:
        child = todo.pop()
        result.append(child)
        todo += _children(child)
    return result


def _reap_all() -> list[tuple[int, int]]:
    done = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return done
        if pid == 0:
            return done
        done.append((pid, status))


def _private_tun(tun: str) -> None:
    kernel.unshare(kernel.CLONE_NEWNS)
    subprocess.run(["mount", "--make-rprivate", "/"], check=True)
    if not os.path.exists(tun):
        os.mknod(tun, 0o666 | 0o020000, os.makedev(10, 200))
    os.chmod(tun, 0o666)
    subprocess.run(["mount", "--bind", tun, "/dev/net/tun"], check=True)


def main(argv: list[str]) -> int:
    report, uid, gid, workdir, tun = argv[:5]
    job_argv = argv[6:]
    _private_tun(tun)
    kernel.set_subreaper()
    pid = os.fork()
    if pid == 0:
        try:
            os.chdir(workdir)
            os.setgroups([])
            os.setgid(int(gid))
            os.setuid(int(uid))
            os.execvpe(job_argv[0], job_argv, os.environ)
        finally:
            os._exit(127)
    with open(os.path.join(workdir, "wrapper.pid"), "w") as handle:
        handle.write(str(pid))
    status = None
    while status is None:
        for child, child_status in _reap_all():
            if child == pid:
                status = child_status
        time.sleep(0.01)
    deadline = time.monotonic() + GRACE
    while _descendants(os.getpid()) and time.monotonic() < deadline:
        _reap_all()
        time.sleep(0.02)
    _reap_all()
    left = [p for p in _descendants(os.getpid()) if _cmdline(p)]
    lines = [_cmdline(p) for p in left]
    for child in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
    time.sleep(0.1)
    _reap_all()
    with open(report, "w") as handle:
        json.dump({"pid": pid, "status": status, "left": lines}, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
