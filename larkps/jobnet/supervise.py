"""Supervising a job: signals forwarded, orphans reaped, its exit status passed on.

The wrapper process becomes a child subreaper, so that whatever a job or its
user-mode network stack leaves behind is re-parented to it and reaped (PID 1 may
not reap). Signals the starter sends (:data:`FORWARDED`) go to the job; when the job
ends, the accounting is handed to a :class:`Recorder` and the wrapper ends as the
job did: the same exit code, or killed by the same signal.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping

from larkps import TYPE_CHECKING

if TYPE_CHECKING:  # neither typing nor the modules that plan are loaded on a job's start
    from typing import NoReturn, Protocol

    from larkps.jobnet.request import JobPlan
    from larkps.jobnet.rules import Counters

    class Recorder(Protocol):
        """Where a run's start (with the objects it made) and its end (with its counters) go.

        ``exit_status`` is as :func:`os.waitstatus_to_exitcode` gives it: the exit code,
        or ``-N`` for a job killed by signal N.
        """

        def start(self, plan: JobPlan, objects: Mapping[str, str]) -> None: ...

        def end(self, plan: JobPlan, exit_status: int, counters: Counters) -> None: ...


FORWARDED = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
PREFIX = "larkps-jobnet: "


class SummaryRecorder:
    """Writes one line of totals to the job's stderr at the end; keeps nothing."""

    def start(self, plan: JobPlan, objects: Mapping[str, str]) -> None:
        return None

    def end(self, plan: JobPlan, exit_status: int, counters: Counters) -> None:
        sent, received = counters.total("out"), counters.total("in")
        say(
            f"job {plan.job_id} sent {sent.bytes} bytes ({sent.packets} packets),"
            f" received {received.bytes} bytes ({received.packets} packets)"
        )


def say(line: str) -> None:
    """One line for the job's stderr (the starter's stderr file)."""
    with contextlib.suppress(OSError):
        sys.stderr.write(PREFIX + line + "\n")
        sys.stderr.flush()


class Signals:
    """Signals as bytes on a pipe (``signal.set_wakeup_fd``), for a select loop."""

    def __init__(self, numbers: tuple[int, ...] = (*FORWARDED, signal.SIGCHLD)) -> None:
        self.numbers = numbers
        self.read_fd, self.write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._old_fd = signal.set_wakeup_fd(self.write_fd, warn_on_full_buffer=False)
        for number in numbers:
            signal.signal(number, _noted)

    def pending(self) -> list[int]:
        """The signals that arrived since the last call, in order."""
        got = b""
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(self.read_fd, 512):
                got += chunk
        return list(got)

    def close(self) -> None:
        """Default handlers back (in a forked child before exec, too)."""
        signal.set_wakeup_fd(-1)
        for number in self.numbers:
            signal.signal(number, signal.SIG_DFL)
        for fd in (self.read_fd, self.write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def _noted(number: int, frame: object) -> None:
    """A Python-level handler: the wakeup fd carries the signal."""


@contextlib.contextmanager
def held(numbers: Iterable[int] = FORWARDED) -> Iterator[None]:
    """The signals blocked in this thread meanwhile, delivered once it ends.

    Fork a job inside: a signal forwarded to it before its handlers are the default
    ones stays pending until it unblocks them just before exec (a Python handler it
    inherited would swallow the signal), and the parent notes the job's pid before
    any handler of its own runs.
    """
    old = signal.pthread_sigmask(signal.SIG_BLOCK, numbers)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def reap() -> Iterator[tuple[int, int]]:
    """(pid, wait status) of every child that has ended, without blocking."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        yield pid, status


def wait_readable(fds: list[int], timeout: float | None = None) -> list[int]:
    while True:
        try:
            ready, _, _ = select.select(fds, [], [], timeout)
        except InterruptedError:  # pragma: no cover - PEP 475 retries
            continue
        return ready


def exit_like(wait_status: int, before: Callable[[], None] | None = None) -> NoReturn:
    """End this process as the job ended: its exit code, or killed by its signal."""
    code = os.waitstatus_to_exitcode(wait_status)
    if before is not None:
        before()
    sys.stdout.flush()
    sys.stderr.flush()
    if code >= 0:
        os._exit(code)
    number = -code
    with contextlib.suppress(OSError, ValueError):  # SIGKILL and SIGSTOP have no handler
        signal.signal(number, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [number])
    os.kill(os.getpid(), number)
    os._exit(128 + number)  # a signal whose default action is not to terminate
