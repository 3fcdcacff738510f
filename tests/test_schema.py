"""The versioned state schema: stores written by earlier larkps upgrade to the shape of
a new store and keep every row; a store of a newer larkps is refused and left alone;
a failing step leaves the store as it was.

Fixtures (tests/fixtures/state, each with the script that wrote it): v1-store.sqlite
from commit b4b99de (rollups with site names, no versions recorded), v2-store.sqlite
from commit c1f5872 (every table, versions recorded per module in schema_versions),
v3-store.sqlite from commit 5525e71 (schema version 1: the same rows, before the
achieved transfers and calibration state).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sqlite3
from pathlib import Path
from types import ModuleType

import pytest

from larkps.cli.app import main
from larkps.errors import StateError
from larkps.stats.alarm_state import load_alarms
from larkps.store import runs as runlog
from larkps.store.db import STATE_FILE, Store
from larkps.store.points import IngestStore
from larkps.store.schema import MIGRATIONS, SCHEMA_VERSION, upgrade

FIXTURES = Path(__file__).parent / "fixtures" / "state"
PACKAGE = Path(__file__).parent.parent / "larkps"
#: every table the modules read and write (ingest, rollups, alarms, run reports, calibration)
TABLES_V1 = {
    "series",
    "points",
    "discoveries",
    "ingest_meta",
    "attempts",
    "rollup_streams",
    "rollup_hours",
    "rollup_windows",
    "alarm_state",
    "run_reports",
    "archive_health",
}
TABLES = TABLES_V1 | {"achieved_transfers", "calibration_state"}
#: each fixture and the schema version it was written at
FIXTURE_VERSIONS = {"v1-store.sqlite": 0, "v2-store.sqlite": 0, "v3-store.sqlite": 1}


def fixture_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, FIXTURES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def copy_of(fixture: str, tmp_path: Path) -> Path:
    target = tmp_path / STATE_FILE
    shutil.copyfile(FIXTURES / fixture, target)
    return target


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def user_version(path: Path) -> int:
    db = raw(path)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


def contents(path: Path) -> tuple[int, list[str]]:
    """The schema version and every statement that rebuilds the database."""
    db = raw(path)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0]), list(db.iterdump())
    finally:
        db.close()


def table_names(db: sqlite3.Connection) -> set[str]:
    rows = db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    )
    return {row[0] for row in rows}


def indexes(db: sqlite3.Connection, table: str) -> list[tuple[str, int, tuple[str, ...]]]:
    """Each index of ``table``: name (blank for automatic ones), uniqueness, columns."""
    out = []
    for _, name, unique, *_ in db.execute("SELECT * FROM pragma_index_list(?)", (table,)):
        columns = db.execute("SELECT name FROM pragma_index_info(?) ORDER BY seqno", (name,))
        shown = "" if name.startswith("sqlite_autoindex") else name
        out.append((shown, unique, tuple(r[0] for r in columns)))
    return sorted(out)


def shape(path: Path) -> dict[str, object]:
    """Per table: its columns (name, type, not null, default, key), whether it has
    rowids, and its indexes."""
    db = raw(path)
    try:
        out: dict[str, object] = {}
        for table in sorted(table_names(db)):
            columns = db.execute(
                'SELECT name, type, "notnull", dflt_value, pk FROM pragma_table_info(?)', (table,)
            ).fetchall()
            rowid = db.execute("SELECT wr FROM pragma_table_list WHERE name = ?", (table,))
            out[table] = (columns, rowid.fetchone(), indexes(db, table))
        return out
    finally:
        db.close()


def rows(path: Path) -> dict[str, list[tuple[object, ...]]]:
    db = raw(path)
    try:
        return {
            t: db.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in table_names(db)
        }
    finally:
        db.close()


def test_a_new_store_has_every_table_at_the_current_version(tmp_path: Path):
    path = tmp_path / "new.sqlite"
    Store(path).close()
    db = raw(path)
    try:
        assert table_names(db) == TABLES
    finally:
        db.close()
    assert user_version(path) == SCHEMA_VERSION == len(MIGRATIONS)


@pytest.mark.parametrize("fixture", sorted(FIXTURE_VERSIONS))
def test_an_earlier_store_upgrades_to_the_shape_of_a_new_one(tmp_path: Path, fixture: str):
    path = copy_of(fixture, tmp_path)
    assert user_version(path) == FIXTURE_VERSIONS[fixture]
    before = rows(path)
    Store(path).close()
    new = tmp_path / "new.sqlite"
    Store(new).close()
    assert shape(path) == shape(new)
    assert user_version(path) == SCHEMA_VERSION
    after = rows(path)
    assert set(after) == TABLES
    for table, kept in before.items():
        if table == "schema_versions":
            assert table not in after  # the per-module versions are folded into one
        elif table == "rollup_streams" and fixture == "v1-store.sqlite":
            assert len(after[table]) == len(kept)  # converted: test_state_follows_config
        else:
            assert after[table] == kept, table
    if fixture == "v2-store.sqlite":  # it holds every table, each with rows
        assert set(before) == TABLES_V1 | {"schema_versions"}
        assert all(before[t] for t in TABLES_V1)
    if fixture == "v3-store.sqlite":
        assert set(before) == TABLES_V1 and all(before[t] for t in TABLES_V1)
        assert after["achieved_transfers"] == after["calibration_state"] == []


@pytest.mark.parametrize("fixture", ["v2-store.sqlite", "v3-store.sqlite"])
def test_todays_store_reads_back_after_the_upgrade(tmp_path: Path, fixture: str):
    from larkps.stats.rollups.store import update_rollups
    from larkps.stats.rollups.views import sites_of, window_stats

    written = fixture_script("make_v2_store")
    now, sites = written.NOW, written.V1_SITES
    data = written.upgrade_data(sites)
    with Store(copy_of(fixture, tmp_path)) as store:
        assert load_alarms(store) == {r.key: r for r in written.ALARMS}
        assert runlog.latest(store) == list(reversed(written.RUNS))
        assert runlog.last_success(store) == now - 3600
        health = {
            a: (h.attempted, h.last_success, h.failing_since, h.problem)
            for a, h in runlog.archive_health(store).items()
        }
        ingest = IngestStore(store)
        assert ingest.attempts() == {"mesh": now}
        assert ingest.meta("pruned") == now - 86400
        stored = {s.series.key: s.id for s in ingest.series("mesh", sites)}
        for series, points in data:
            assert ingest.points(stored[series.key], 0, now) == points
        upgraded = window_stats(store, written.WINDOW_LENGTHS, now, sites=sites_of({}, sites))
    assert health == {
        "mesh": (now, now, None, None),  # answered in both cycles
        "other": (now, now - 3600, now, "no answer within 10 s"),  # failing in the second
    }
    with Store(tmp_path / "fresh.sqlite") as store:
        update_rollups(store, data, now, written.WINDOW_LENGTHS)
        fresh = window_stats(store, written.WINDOW_LENGTHS, now, sites=sites_of({}, sites))
    assert upgraded and upgraded == fresh


def test_a_store_of_a_newer_larkps_is_refused_and_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    path = tmp_path / STATE_FILE
    Store(path).close()
    db = raw(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    image = path.read_bytes()
    with pytest.raises(StateError) as caught:
        Store(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    assert f"schema version {SCHEMA_VERSION + 1}, newer than this larkps knows" in message
    assert f"({SCHEMA_VERSION})" in message
    assert path.read_bytes() == image
    config = tmp_path / "larkps.toml"
    config.write_text(
        f'[larkps]\nstate_dir = "{tmp_path}"\n\n[[archives]]\nname = "mesh"\nkind = "embedded"\n'
    )
    assert main(["status", "--config", str(config)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err, err
    assert path.read_bytes() == image


def failing_step(db: sqlite3.Connection) -> None:
    """Changes every kind of thing a step may change, then fails as SQLite does."""
    db.execute("ALTER TABLE points ADD COLUMN extra TEXT")
    db.execute("CREATE TABLE newer (x INTEGER)")
    db.execute("DELETE FROM series")
    db.execute("INSERT INTO no_such_table VALUES (1)")


def bug_step(db: sqlite3.Connection) -> None:
    db.execute("DROP TABLE points")
    raise RuntimeError("a bug in the step")


@pytest.mark.parametrize("fixture", sorted(FIXTURE_VERSIONS))
def test_a_failing_step_leaves_the_store_as_it_was(tmp_path: Path, fixture: str):
    path = copy_of(fixture, tmp_path)
    before = contents(path)
    with pytest.raises(StateError) as caught:
        Store(path, steps=(*MIGRATIONS, failing_step))
    message = str(caught.value)
    found = FIXTURE_VERSIONS[fixture]
    assert str(path) in message
    assert f"from schema version {found} to {SCHEMA_VERSION + 1}" in message
    assert "no such table: no_such_table" in message and "\n" not in message
    assert contents(path) == before  # the real steps (which did run) rolled back too
    with pytest.raises(RuntimeError, match="a bug in the step"):
        Store(path, steps=(*MIGRATIONS, bug_step))
    assert contents(path) == before
    Store(path).close()  # and the real steps still upgrade it
    assert user_version(path) == SCHEMA_VERSION


def test_a_step_runs_once_and_later_versions_start_from_the_recorded_one(tmp_path: Path):
    calls: list[int] = []

    def second(db: sqlite3.Connection) -> None:
        calls.append(len(calls))
        db.execute("ALTER TABLE attempts ADD COLUMN why TEXT")

    path = copy_of("v2-store.sqlite", tmp_path)
    Store(path).close()
    steps = (*MIGRATIONS, second)
    for _ in range(3):
        Store(path, steps=steps).close()
    assert calls == [0]
    assert user_version(path) == SCHEMA_VERSION + 1
    db = raw(path)
    assert "why" in {r[1] for r in db.execute("SELECT * FROM pragma_table_info('attempts')")}
    db.close()
    newer = f"schema version {SCHEMA_VERSION + 1}, newer than this larkps knows"
    with pytest.raises(StateError, match=newer):
        Store(path)


def test_only_the_schema_module_declares_tables():
    """SQL DDL outside schema.py; a line that runs ``nft`` speaks nftables, whose
    ``create table`` is not SQL."""
    ddl = re.compile(r"\b(CREATE|ALTER|DROP)\s+(TABLE|INDEX)\b", re.IGNORECASE)
    found = [
        f"{p.relative_to(PACKAGE)}: {line.strip()}"
        for p in sorted(PACKAGE.rglob("*.py"))
        if p.name != "schema.py"
        for line in p.read_text().splitlines()
        if ddl.search(line) and '"nft"' not in line
    ]
    assert found == []
    assert ddl.search('stdin=f"create table {table}"')  # what the nft exemption is for


def test_a_second_upgrade_of_the_same_version_inside_its_transaction_does_nothing(
    tmp_path: Path,
):
    """Two processes that both found an old version: the second, once it has the
    write lock, finds the new one and runs nothing."""
    calls: list[int] = []

    def second(db: sqlite3.Connection) -> None:
        calls.append(1)
        db.execute("INSERT INTO ingest_meta VALUES ('second', 1)")

    path = copy_of("v1-store.sqlite", tmp_path)
    steps = (*MIGRATIONS, second)
    with Store(path, steps=steps) as store, store.transaction() as db:
        upgrade(db, path, steps)
    assert calls == [1]


def test_a_file_that_is_not_a_database_is_a_state_error(tmp_path: Path):
    path = tmp_path / STATE_FILE
    path.write_bytes(b"not sqlite at all\n" * 100)
    with pytest.raises(StateError, match=f"cannot open state database {path}: file is not a"):
        Store(path)
    assert path.read_bytes() == b"not sqlite at all\n" * 100
