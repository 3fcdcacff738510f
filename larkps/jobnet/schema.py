"""The ledger's tables, its schema version and the steps that upgrade it.

The ledger (:mod:`larkps.jobnet.ledger`) is a database of its own, apart from the
state store, with its own ``PRAGMA user_version``. A new file is created from
:data:`LEDGER_TABLES` at :data:`LEDGER_VERSION`; an older one runs the steps of
:data:`LEDGER_STEPS` from its version on (``LEDGER_STEPS[i]`` takes a ledger from
version i to i + 1), all of them in the caller's one transaction. A ledger of a
newer larkps is refused. A released step never changes.

Tables: ``runs`` (one row per run of a job: who, mode, policy, rate, the supervising
process, start, end, exit status, who closed it), ``counters`` (bytes and packets per
run, direction and destination class), ``objects`` (what a run made, in order, and
when gc removed it).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from larkps.errors import StateError
from larkps.store.schema import Step, run_script, upgrade


class LedgerError(StateError):
    """The ledger could not be opened, read or written (one line naming the file)."""


#: Version 1: the objects of a run as a JSON list in the run row.
LEDGER_TABLES_1 = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    mode TEXT NOT NULL,
    policy TEXT NOT NULL,
    rate_bps INTEGER,
    pid INTEGER NOT NULL,
    pid_start INTEGER NOT NULL,
    boot_id TEXT NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    exit_status INTEGER,
    objects TEXT NOT NULL
);
CREATE TABLE counters (
    run_id INTEGER NOT NULL REFERENCES runs (id),
    direction TEXT NOT NULL,
    class TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    packets INTEGER NOT NULL,
    PRIMARY KEY (run_id, direction, class)
) WITHOUT ROWID
"""
#: Version 2 (today's): one row per object, so gc records what it removed; who closed a run.
LEDGER_TABLES = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    mode TEXT NOT NULL,
    policy TEXT NOT NULL,
    rate_bps INTEGER,
    pid INTEGER NOT NULL,
    pid_start INTEGER NOT NULL,
    boot_id TEXT NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    exit_status INTEGER,
    closed_by TEXT
);
CREATE INDEX runs_open ON runs (ended);
CREATE TABLE counters (
    run_id INTEGER NOT NULL REFERENCES runs (id),
    direction TEXT NOT NULL,
    class TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    packets INTEGER NOT NULL,
    PRIMARY KEY (run_id, direction, class)
) WITHOUT ROWID;
CREATE TABLE objects (
    run_id INTEGER NOT NULL REFERENCES runs (id),
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    removed REAL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID
"""


def _objects_table(db: sqlite3.Connection) -> None:
    """Version 1 -> 2: the JSON list of each run into rows of ``objects``; closed_by."""
    run_script(
        db,
        """
        CREATE TABLE objects (
            run_id INTEGER NOT NULL REFERENCES runs (id),
            seq INTEGER NOT NULL,
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            removed REAL,
            PRIMARY KEY (run_id, seq)
        ) WITHOUT ROWID;
        INSERT INTO objects (run_id, seq, kind, name)
            SELECT runs.id, item.key, json_extract(item.value, '$.kind'),
                   json_extract(item.value, '$.name')
            FROM runs, json_each(runs.objects) AS item;
        ALTER TABLE runs DROP COLUMN objects;
        ALTER TABLE runs ADD COLUMN closed_by TEXT;
        UPDATE runs SET closed_by = 'wrapper' WHERE ended IS NOT NULL;
        CREATE INDEX runs_open ON runs (ended)
        """,
    )


#: ``LEDGER_STEPS[i]`` takes a ledger from version i to i + 1 (0: a new, empty file).
LEDGER_STEPS: tuple[Step, ...] = (LEDGER_TABLES_1, _objects_table)
LEDGER_VERSION = len(LEDGER_STEPS)


def upgrade_ledger(
    db: sqlite3.Connection, path: Path, steps: Sequence[Step] = LEDGER_STEPS
) -> None:
    """Bring the ledger to ``len(steps)`` in the caller's transaction (new: today's tables)."""
    tables = LEDGER_TABLES if steps is LEDGER_STEPS else None
    upgrade(db, path, steps, tables, refuse_newer_ledger)


def refuse_newer_ledger(found: int, path: Path, known: int = LEDGER_VERSION) -> None:
    if found > known:
        raise LedgerError(
            f"ledger {path} has schema version {found}, newer than this larkps knows "
            f"({known}): read it with the larkps that wrote it"
        )
