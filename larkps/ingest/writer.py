"""A second process that writes a big cycle's pages into the state store.

In one process, the thread that commits waits for the GIL at every SQLite statement
and fsync, behind the fetch threads that decode and parse, and in a cold backfill
spends about twice the CPU its transactions take alone (docs/benchmarks.md). Here
the committing thread sends
each batch's rows (:class:`RowCommit`, plain lists, cheap to pickle) to a writer
process with its own interpreter and GIL, which runs the very same
:meth:`IngestStore.commit_rows` on its own connection to the same file and answers
which backfill rows were new.

Nothing about durability changes: each batch is one transaction with its marks, in
the order sent, and the committing thread waits for the answer before it counts a
batch as stored. If the fetching process dies (even ``kill -9``), the writer reads
the end of its socket and exits; what it committed stays committed. The writer
ignores SIGINT and SIGTERM, so a Ctrl-C or a service stop reaches the fetching
process, which ends the cycle and closes the writer in order.

Run as ``python -m larkps.ingest.writer STATE_FILE FD`` by :class:`WriterProcess`.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import cast

from larkps.errors import LarkpsError, StateError
from larkps.model import Point
from larkps.store.db import Store
from larkps.store.points import Commit, IngestStore, RowCommit, fresh_points, row_commit

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 60.0  # seconds to wait for the writer to finish and exit


class WriterProcess:
    """Commits batches through a writer process; the same answers as IngestStore.commit."""

    def __init__(self, state_file: Path) -> None:
        self.state_file = state_file
        ours, theirs = socket.socketpair()
        argv = [sys.executable, "-m", __name__, str(state_file), str(theirs.fileno())]
        try:
            self._process = subprocess.Popen(  # noqa: S603 - our interpreter, no shell
                argv, pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL
            )
        except OSError as exc:
            ours.close()
            raise StateError(f"cannot start the store writer process: {exc}") from None
        finally:
            theirs.close()
        self._conn = Connection(ours.detach())
        self._ready = False  # the writer says so once it has opened the store

    def commit(self, commits: Sequence[Commit]) -> list[list[Point]]:
        """Write every page and its marks in one transaction (in the writer); return the
        points that were new to the store, per commit."""
        answer = self._ask([row_commit(c) for c in commits])
        return fresh_points(commits, answer)

    def _ask(self, batch: list[RowCommit]) -> list[list[int] | None]:
        if not self._ready:
            self._answer()  # started while the first pages were fetched
            self._ready = True
        try:
            self._conn.send(batch)
        except OSError:
            raise self._gone() from None
        return cast(list[list[int] | None], self._answer())

    def _answer(self) -> object:
        try:
            status, answer = self._conn.recv()
        except (OSError, EOFError):
            raise self._gone() from None
        if status != "ok":
            raise StateError(str(answer))
        return answer

    def _gone(self) -> StateError:
        return StateError(f"the store writer process for {self.state_file} exited")

    def close(self) -> None:
        """Ask the writer to finish and wait for it to exit."""
        with contextlib.suppress(OSError):
            self._conn.send(None)
        self._conn.close()
        try:
            self._process.wait(CLOSE_TIMEOUT)
        except subprocess.TimeoutExpired:
            log.warning("store writer process did not exit; killing it")
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> WriterProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(state_file: Path, conn: Connection) -> None:
    """Say ready (or why not), then commit each batch received until None or the end
    of the socket."""
    try:
        store = Store(state_file)
        ingest = IngestStore(store)
    except LarkpsError as exc:
        conn.send(("error", str(exc)))
        return
    conn.send(("ok", None))
    with store:
        while True:
            try:
                batch = conn.recv()
            except (EOFError, OSError):
                return  # the fetching process is gone
            if batch is None:
                return
            try:
                answer: tuple[str, object] = ("ok", ingest.commit_rows(batch))
            except LarkpsError as exc:
                answer = ("error", str(exc))
            except Exception as exc:  # noqa: BLE001 - sqlite3 or other: the message, no crash
                answer = ("error", f"store writer: {exc!r}")
            try:
                conn.send(answer)
            except OSError:
                return


def main(argv: Sequence[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    state_file, fd = argv
    serve(Path(state_file), Connection(int(fd)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
