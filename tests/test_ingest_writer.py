"""Commits from a writer process (larkps.ingest.writer) store exactly what this
process would, against the embedded archive's own data; a dead or failing writer is
a clear StateError, and a ``kill -9`` of the fetching process ends the writer and
loses nothing it committed."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_ingest import Clock, T, assert_matches_archive, run

from larkps.embedded import EmbeddedArchive, Mesh, MeshConfig
from larkps.errors import StateError
from larkps.ingest.writer import WriterProcess
from larkps.model import Point
from larkps.store.db import STATE_FILE, Store
from larkps.store.points import Commit, IngestStore

SERIES_ROW = (
    "INSERT INTO series (archive, metadata_key, event_type, source_host, source_ip, "
    "destination_host, destination_ip, family, metric, tool, data_uri, seen_at) "
    "VALUES ('a', 'k', 'throughput', 'h', '198.18.0.1', 'd', '198.18.0.2', 'ipv4', "
    "'throughput', 't', '/u', 0)"
)


def dump(state: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    with sqlite3.connect(state / STATE_FILE) as db:
        points = db.execute(
            "SELECT s.metadata_key, s.event_type, p.ts, p.value, p.histogram, p.note "
            "FROM points p JOIN series s ON s.id = p.series_id ORDER BY 1, 2, 3"
        ).fetchall()
        marks = db.execute(
            "SELECT metadata_key, event_type, hwm, covered_from FROM series ORDER BY 1, 2"
        ).fetchall()
    return points, marks


def new_points(report) -> dict[tuple[str, str], list[Point]]:  # type: ignore[no-untyped-def]
    return {(s.key.metadata_key, s.key.event_type): p for s, p in report.new_points.items()}


def test_a_writer_process_stores_what_this_process_stores(tmp_path: Path) -> None:
    mesh = Mesh(MeshConfig(sites=3, seed=21))
    clock = Clock(T)
    steps = [(T, T - 3600), (T, T - 3 * 3600), (T + 900, T + 900 - 3 * 3600)]  # cold, back, on
    reports: dict[bool, list[object]] = {True: [], False: []}
    with EmbeddedArchive(mesh, clock=clock) as archive:
        for now, since in steps:
            clock.now = now
            for writer in (True, False):
                state = tmp_path / f"writer-{writer}"
                report, data = run(state, archive.url, now, since, writer_process=writer)
                assert report.problems == ()
                assert_matches_archive(mesh, data, since, now)
                reports[writer].append((report.points, report.series, new_points(report)))
    assert reports[True] == reports[False]
    backfill = reports[True][1]
    assert backfill[0] > 0  # type: ignore[index]
    assert dump(tmp_path / "writer-True") == dump(tmp_path / "writer-False")


def test_the_writer_answers_which_backfill_rows_were_new(tmp_path: Path) -> None:
    with Store.in_directory(tmp_path) as store:
        IngestStore(store).db.execute(SERIES_ROW)
    with WriterProcess(tmp_path / STATE_FILE) as writer:
        assert writer.commit([Commit(1, [Point(10, 1.0)], hwm=10, covered_from=0)]) == [
            [Point(10, 1.0)]
        ]
        fresh = writer.commit(
            [
                Commit(1, [Point(5, 9.0), Point(10, 2.0), Point(20, 3.0)], check_existing=True),
                Commit(1, [], covered_from=5),
            ]
        )
    assert fresh == [[Point(5, 9.0), Point(20, 3.0)], []]
    with Store.in_directory(tmp_path) as store:
        ingest = IngestStore(store)
        assert ingest.points(1, 0, 100) == [Point(5, 9.0), Point(10, 1.0), Point(20, 3.0)]
        assert store.connection.execute("SELECT hwm, covered_from FROM series").fetchone() == (
            10,
            5,
        )


def test_a_writer_that_died_is_a_state_error(tmp_path: Path) -> None:
    with Store.in_directory(tmp_path) as store:
        IngestStore(store).db.execute(SERIES_ROW)
    writer = WriterProcess(tmp_path / STATE_FILE)
    writer.commit([Commit(1, [Point(10, 1.0)], hwm=10)])
    writer._process.kill()
    writer._process.wait()
    with pytest.raises(StateError, match=r"store writer process .* exited"):
        writer.commit([Commit(1, [Point(20, 1.0)], hwm=20)])
    writer.close()
    with Store.in_directory(tmp_path) as store:
        assert IngestStore(store).points(1, 0, 100) == [Point(10, 1.0)]


def test_a_writer_that_cannot_open_the_store_says_why(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with WriterProcess(blocker / STATE_FILE) as writer, pytest.raises(StateError) as caught:
        writer.commit([Commit(1, [Point(10, 1.0)], hwm=10)])
    assert "cannot open state database" in str(caught.value)
    assert str(blocker) in str(caught.value)


def test_a_failed_batch_is_rolled_back_and_reported(tmp_path: Path) -> None:
    with Store.in_directory(tmp_path) as store:
        IngestStore(store).db.execute(SERIES_ROW)
        store.connection.execute(
            "CREATE TRIGGER no_late BEFORE INSERT ON points WHEN NEW.ts > 100 "
            "BEGIN SELECT RAISE(ABORT, 'too late'); END"
        )
    with WriterProcess(tmp_path / STATE_FILE) as writer:
        with pytest.raises(StateError, match="too late"):
            writer.commit([Commit(1, [Point(10, 1.0), Point(200, 2.0)], hwm=200)])
        assert writer.commit([Commit(1, [Point(20, 1.0)], hwm=20)]) == [[Point(20, 1.0)]]
    with Store.in_directory(tmp_path) as store:
        assert IngestStore(store).points(1, 0, 1000) == [Point(20, 1.0)]  # none of the first


FETCHER = """
import sys, time
from pathlib import Path
from larkps.store.points import Commit
from larkps.ingest.writer import WriterProcess
from larkps.model import Point
writer = WriterProcess(Path(sys.argv[1]))
writer.commit([Commit(1, [Point(10, 1.0)], hwm=10, covered_from=0)])
print(writer._process.pid, flush=True)
time.sleep(60)
"""


def test_kill_9_of_the_fetching_process_ends_the_writer_and_keeps_its_commits(
    tmp_path: Path,
) -> None:
    with Store.in_directory(tmp_path) as store:
        IngestStore(store).db.execute(SERIES_ROW)
    fetcher = subprocess.Popen(
        [sys.executable, "-c", FETCHER, str(tmp_path / STATE_FILE)], stdout=subprocess.PIPE
    )
    assert fetcher.stdout is not None
    writer_pid = int(fetcher.stdout.readline())
    fetcher.kill()  # SIGKILL: no goodbye to the writer
    fetcher.wait()
    for _ in range(200):  # the writer reads the end of its socket and exits
        if not _alive(writer_pid):
            break
        time.sleep(0.05)
    assert not _alive(writer_pid)
    with Store.in_directory(tmp_path) as store:
        assert IngestStore(store).points(1, 0, 100) == [Point(10, 1.0)]
        assert store.connection.execute("SELECT hwm FROM series").fetchone() == (10,)


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, its parent gone, is reaped by init)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        return os.path.exists(f"/proc/{pid}")


def test_without_a_second_process_the_cycle_commits_from_this_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    mesh = Mesh(MeshConfig(sites=3, seed=22))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    with EmbeddedArchive(mesh, clock=Clock(T)) as archive:
        report, data = run(tmp_path, archive.url, T, T - 3600, writer_process=True)
    assert report.problems == () and report.points > 0
    assert_matches_archive(mesh, data, T - 3600, T)
    assert "cannot start the store writer process" in caplog.text


def test_only_big_cycles_commit_from_a_writer_process() -> None:
    from larkps.ingest.runner import LONG_RANGE, WRITER_PROCESS_TASKS, _big, _Range, _Task

    def tasks(ranges: tuple[_Range, ...], n: int) -> list[_Task]:
        return [_Task("a", None, ranges)] * n  # type: ignore[arg-type]

    cold = (_Range(0, LONG_RANGE, backfill=False, cover=True),)
    steady = (_Range(0, LONG_RANGE - 1, backfill=False, cover=False),)
    new_and_older = (
        _Range(LONG_RANGE // 2, LONG_RANGE, backfill=False, cover=False),
        _Range(0, LONG_RANGE // 2, backfill=True, cover=True),
    )
    assert _big(tasks(cold, WRITER_PROCESS_TASKS))
    assert _big(tasks(new_and_older, WRITER_PROCESS_TASKS))
    assert not _big(tasks(cold, WRITER_PROCESS_TASKS - 1))
    assert not _big(tasks(steady, 5 * WRITER_PROCESS_TASKS))
