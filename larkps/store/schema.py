"""Every table of the state store, its schema version and the steps that upgrade it.

The store records one version for the whole schema in ``PRAGMA user_version``.
A new store is created from :data:`TABLES` at :data:`SCHEMA_VERSION`; an older one
runs the steps of :data:`MIGRATIONS` from its version on (``MIGRATIONS[i]`` takes a
store from version i to i + 1), all of them and the new version number in the
caller's one transaction, so a failure anywhere leaves the store as it was. A store
from a newer larkps (a version above ``SCHEMA_VERSION``) is refused.

Changing a table: edit its declaration below and append the step that converts a
store of the previous version. A released step never changes: it describes how
stores of its version were written.

Tables, by the module that reads and writes them:

* store.points: ``series`` (one row per archive, metadata key and event type, with
  its endpoints and marks), ``points`` (one row per series and timestamp),
  ``discoveries`` (when each archive's series were last listed), ``attempts`` (when
  each archive was last asked for points), ``ingest_meta`` (named integers).
* stats.rollups (store, views): ``rollup_streams`` (one row per archive, metadata key and
  kind, with its endpoints, high-water mark, gaps and forecast history),
  ``rollup_hours`` (the partial of each stream and hour), ``rollup_windows`` (the
  running partial of each stream per configured window length).
* stats.alarm_state: ``alarm_state`` (hysteresis of each alarm between cycles).
* store.runs: ``run_reports`` (one JSON document per cycle), ``archive_health`` (each
  polled archive's last attempt, last success and current failure).
* achieved_store: ``achieved_transfers`` (one row per completed job's input
  transfer: the ends as the job ad named them, bytes, seconds, and the predicted
  figure once known), ``calibration_state`` (the ratio applied to each site pair in
  the last cycle, so that the next one moves from it by a bounded step).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

from larkps.errors import StateError

#: One schema change: DDL text (statements split on ";") or a function of the connection.
Step = str | Callable[[sqlite3.Connection], None]

INGEST_TABLES = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    archive TEXT NOT NULL,
    metadata_key TEXT NOT NULL,
    event_type TEXT NOT NULL,
    source_host TEXT NOT NULL,
    source_ip TEXT NOT NULL,
    destination_host TEXT NOT NULL,
    destination_ip TEXT NOT NULL,
    family TEXT NOT NULL,
    metric TEXT NOT NULL,
    tool TEXT NOT NULL,
    data_uri TEXT NOT NULL,
    bucket_width REAL,
    seen_at INTEGER NOT NULL,
    hwm INTEGER,
    covered_from INTEGER,
    UNIQUE (archive, metadata_key, event_type)
);
CREATE TABLE IF NOT EXISTS points (
    series_id INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    value REAL,
    histogram BLOB,
    note TEXT,
    PRIMARY KEY (series_id, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS discoveries (
    archive TEXT PRIMARY KEY,
    at INTEGER NOT NULL,
    query TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ingest_meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS attempts (
    archive TEXT PRIMARY KEY,
    at INTEGER NOT NULL
)
"""
ROLLUP_TABLES = """
CREATE TABLE IF NOT EXISTS rollup_streams (
    id INTEGER PRIMARY KEY,
    archive TEXT NOT NULL,
    metadata_key TEXT NOT NULL,
    kind TEXT NOT NULL,
    source_host TEXT NOT NULL,
    source_ip TEXT NOT NULL,
    destination_host TEXT NOT NULL,
    destination_ip TEXT NOT NULL,
    family TEXT NOT NULL,
    hwm INTEGER,
    gaps BLOB NOT NULL,
    history_ts BLOB NOT NULL,
    history BLOB NOT NULL,
    UNIQUE (archive, metadata_key, kind)
);
CREATE TABLE IF NOT EXISTS rollup_hours (
    stream INTEGER NOT NULL,
    hour INTEGER NOT NULL,
    tests INTEGER NOT NULL,
    sent INTEGER NOT NULL,
    lost INTEGER NOT NULL,
    latest_ts INTEGER,
    latest_value REAL,
    bucket_values BLOB NOT NULL,
    bucket_counts BLOB NOT NULL,
    PRIMARY KEY (stream, hour)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rollup_hours_by_hour ON rollup_hours (hour);
CREATE TABLE IF NOT EXISTS rollup_windows (
    stream INTEGER NOT NULL,
    length INTEGER NOT NULL,
    first_hour INTEGER NOT NULL,
    tests INTEGER NOT NULL,
    sent INTEGER NOT NULL,
    lost INTEGER NOT NULL,
    latest_ts INTEGER,
    latest_value REAL,
    bucket_values BLOB NOT NULL,
    bucket_counts BLOB NOT NULL,
    PRIMARY KEY (length, stream)
) WITHOUT ROWID
"""
ALARM_TABLES = """
CREATE TABLE IF NOT EXISTS alarm_state (
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    site TEXT NOT NULL,
    peer TEXT NOT NULL,
    since INTEGER NOT NULL,
    good INTEGER NOT NULL,
    value REAL NOT NULL,
    threshold REAL NOT NULL,
    judged INTEGER NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (kind, subject)
)
"""
RUN_TABLES = """
CREATE TABLE IF NOT EXISTS run_reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    report TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS run_reports_started ON run_reports (started);
CREATE TABLE IF NOT EXISTS archive_health (
    archive TEXT PRIMARY KEY,
    attempted INTEGER NOT NULL,
    last_success INTEGER,
    failing_since INTEGER,
    problem TEXT
)
"""
ACHIEVED_TABLES = """
CREATE TABLE IF NOT EXISTS achieved_transfers (
    job TEXT PRIMARY KEY,
    schedd TEXT NOT NULL,
    completed INTEGER NOT NULL,
    source_site TEXT,
    source_host TEXT,
    destination_site TEXT,
    destination_host TEXT,
    bytes INTEGER NOT NULL,
    seconds INTEGER NOT NULL,
    method TEXT NOT NULL,
    rate_limit_bps REAL,
    network_received INTEGER,
    network_sent INTEGER,
    predicted_bps REAL,
    predicted_at INTEGER
);
CREATE INDEX IF NOT EXISTS achieved_by_completion ON achieved_transfers (completed);
CREATE TABLE IF NOT EXISTS calibration_state (
    source_site TEXT NOT NULL,
    destination_site TEXT NOT NULL,
    ratio REAL NOT NULL,
    count INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    PRIMARY KEY (source_site, destination_site)
)
"""
#: The tables of version 1.
_TABLES_1 = ";".join((INGEST_TABLES, ROLLUP_TABLES, ALARM_TABLES, RUN_TABLES))
#: Every table at :data:`SCHEMA_VERSION`.
TABLES = ";".join((_TABLES_1, ACHIEVED_TABLES))

# -- version 0 -> 1 ---------------------------------------------------------------------
# Version 0: each module created its own tables when first used, so a store holds
# any subset of them. The rollups had versions of their own (in a table
# schema_versions): 1 kept the sites seen when a stream's tests were taken in, 2
# keeps endpoint IPs instead; a store written before schema_versions has rollups 1.
_ROLLUP_STREAMS_2 = """
CREATE TABLE rollup_streams_2 (
    id INTEGER PRIMARY KEY,
    archive TEXT NOT NULL,
    metadata_key TEXT NOT NULL,
    kind TEXT NOT NULL,
    source_host TEXT NOT NULL,
    source_ip TEXT NOT NULL,
    destination_host TEXT NOT NULL,
    destination_ip TEXT NOT NULL,
    family TEXT NOT NULL,
    hwm INTEGER,
    gaps BLOB NOT NULL,
    history_ts BLOB NOT NULL,
    history BLOB NOT NULL,
    UNIQUE (archive, metadata_key, kind)
);
INSERT INTO rollup_streams_2 (id, archive, metadata_key, kind, source_host, source_ip,
    destination_host, destination_ip, family, hwm, gaps, history_ts, history)
SELECT id, archive, metadata_key, kind, source_host, '', destination_host, '', family, hwm,
    gaps, history_ts, history FROM rollup_streams;
DROP TABLE rollup_streams;
ALTER TABLE rollup_streams_2 RENAME TO rollup_streams
"""
# The endpoint IPs of converted streams, from the series the ingest store keeps.
_STREAM_IPS = """
UPDATE rollup_streams SET source_ip = s.source_ip, destination_ip = s.destination_ip
FROM (SELECT archive, metadata_key, max(source_ip) AS source_ip,
             max(destination_ip) AS destination_ip
      FROM series GROUP BY archive, metadata_key) AS s
WHERE rollup_streams.archive = s.archive AND rollup_streams.metadata_key = s.metadata_key
"""


def _one_schema(db: sqlite3.Connection) -> None:
    """Version 0 -> 1: rollup streams with endpoint IPs instead of sites, every
    missing table created, the per-module versions dropped."""
    streams = _columns(db, "rollup_streams")
    if streams and "source_ip" not in streams:
        run_script(db, _ROLLUP_STREAMS_2)
        if _columns(db, "series"):
            db.execute(_STREAM_IPS)
    run_script(db, _TABLES_1)
    db.execute("DROP TABLE IF EXISTS schema_versions")


# -- version 1 -> 2 ---------------------------------------------------------------------
# Version 2 adds the achieved transfers of completed jobs and the calibration state.
#: (today's ACHIEVED_TABLES: copy the text here before a later step changes it)
_ACHIEVED_2 = ACHIEVED_TABLES

#: ``MIGRATIONS[i]`` upgrades a store from version i to i + 1.
MIGRATIONS: tuple[Step, ...] = (_one_schema, _ACHIEVED_2)
SCHEMA_VERSION = len(MIGRATIONS)


def version(db: sqlite3.Connection) -> int:
    """The schema version recorded in the store (0: none, or a new file)."""
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def refuse_newer(found: int, path: Path, target: int = SCHEMA_VERSION) -> None:
    """StateError if the store at ``path`` is of a schema newer than ``target``."""
    if found > target:
        raise StateError(
            f"state database {path} has schema version {found}, newer than this larkps "
            f"knows ({target}): run the larkps that wrote it, or use a new state_dir"
        )


def upgrade(
    db: sqlite3.Connection,
    path: Path,
    steps: Sequence[Step] = MIGRATIONS,
    tables: str | None = TABLES,
    refuse: Callable[[int, Path, int], None] = refuse_newer,
) -> None:
    """Bring a database to version ``len(steps)`` inside the caller's transaction.

    A new one (no tables) is created from ``tables``, the declarations of that
    version (None: by running every step); an older one runs the steps from its
    version on; ``refuse`` raises for one newer than ``len(steps)``.
    """
    target = len(steps)
    found = version(db)
    refuse(found, path, target)
    if found == target:
        return
    if found == 0 and tables is not None and _empty(db):
        run_script(db, tables)
    else:
        for step in steps[found:]:
            if callable(step):
                step(db)
            else:
                run_script(db, step)
    db.execute(f"PRAGMA user_version = {target:d}")


def run_script(db: sqlite3.Connection, script: str) -> None:
    """Run ``script``'s statements (split on ";") one by one, in the open transaction."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _empty(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is None


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    """The column names of ``table`` (empty: no such table)."""
    return {row[1] for row in db.execute("SELECT * FROM pragma_table_info(?)", (table,))}
