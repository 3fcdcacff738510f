"""Signals forwarded to a job while it is being forked are not lost.

A forked child starts with its parent's Python handlers. A signal it gets before it
resets them is taken by such a handler (or dropped with the flag once the handler is
reset) and the job then runs as if nothing had come. With the signals
:func:`~larkps.jobnet.supervise.held` across the fork, the signal waits until the
child has reset its handlers and unblocks them just before exec, as the helper's and
the rootless init's job children do; then it ends the job.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from larkps.jobnet.supervise import FORWARDED

FORK = """
import contextlib, os, signal, sys
from larkps.jobnet.supervise import held

signal.signal(signal.SIGTERM, lambda number, frame: None)  # the supervisor's forwarder
with held() if sys.argv[1] == "held" else contextlib.nullcontext():
    pid = os.fork()
    if pid == 0:  # the job, before its handlers are reset
        os.kill(os.getpid(), signal.SIGTERM)  # forwarded right now
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM])
        os.execvp("sleep", ["sleep", "0.2"])
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.parametrize(("how", "exit_status"), [("held", -15), ("not held", 0)])
def test_a_signal_forwarded_during_the_fork_reaches_the_job_only_if_held(
    how: str, exit_status: int
):
    done = subprocess.run(
        [sys.executable, "-c", FORK, how], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == exit_status  # killed by SIGTERM, or ran to its end


def test_held_restores_the_mask_it_found():
    code = (
        "import json, signal\n"
        "from larkps.jobnet.supervise import held\n"
        "signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR2])\n"
        "with held():\n"
        "    inside = signal.pthread_sigmask(signal.SIG_BLOCK, [])\n"
        "after = signal.pthread_sigmask(signal.SIG_BLOCK, [])\n"
        "print(json.dumps([sorted(map(int, inside)), sorted(map(int, after))]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    inside, after = json.loads(done.stdout)
    assert set(inside) == {*map(int, FORWARDED), signal.SIGUSR2}  # its own set kept inside
    assert after == [signal.SIGUSR2]
