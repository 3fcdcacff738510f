"""The SQLite state store: transactions commit or roll back as a whole."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from larkps.errors import StateError
from larkps.store.db import Store

SCHEMA = "CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v TEXT)"


def test_committed_rows_survive_and_failed_transactions_leave_nothing(tmp_path: Path):
    with Store.in_directory(tmp_path) as store:
        with store.transaction() as db:
            db.execute(SCHEMA)
            db.execute("INSERT INTO t VALUES (1, 'kept')")
        with pytest.raises(RuntimeError), store.transaction() as db:
            db.execute("INSERT INTO t VALUES (2, 'lost')")
            raise RuntimeError("crash inside the transaction")
    with Store.in_directory(tmp_path) as store:
        rows = store.connection.execute("SELECT k, v FROM t").fetchall()
    assert rows == [(1, "kept")]


def test_kill_9_after_commit_loses_nothing(tmp_path: Path):
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from larkps.store.db import Store\n"
        "s = Store.in_directory(Path(sys.argv[1]))\n"
        "with s.transaction() as db:\n"
        f"    db.execute({SCHEMA!r})\n"
        "    db.executemany('INSERT INTO t VALUES (?, ?)', [(i, 'x') for i in range(1000)])\n"
        "db = s.connection\n"
        "db.execute('BEGIN IMMEDIATE')\n"
        "db.execute(\"INSERT INTO t VALUES (5000, 'uncommitted')\")\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=False)
    assert done.returncode == -9
    with Store.in_directory(tmp_path) as store:
        count, top = store.connection.execute("SELECT count(*), max(k) FROM t").fetchone()
    assert (count, top) == (1000, 999)


def test_unwritable_location_is_a_state_error(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StateError, match="cannot open state database"):
        Store.in_directory(blocker / "state")
