"""``kill -9`` of a real ``larkps fetch`` at random moments loses nothing committed.

The child backfills from the embedded archive (served by this process, its clock
pinned) in small pages. It is killed several times at random points; after each
kill the store must hold no duplicates and, for every series, exactly the
archive's points between the start of its covered range and its high-water mark.
A last run then completes the backfill, of exactly the series the archive lists
for the window (a test whose last run is older is not listed). It runs twice:
committing from the fetching process, and from a writer process (`[fetch] writer =
"process"`), which must never outlive a killed fetcher.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from larkps.embedded import EmbeddedArchive, Mesh, MeshConfig
from larkps.embedded.catalog import event_types

pytestmark = pytest.mark.slow
KILLS = 4
SINCE = 6 * 3600
EVENT_TYPES = frozenset({"histogram-owdelay", "packet-count-lost", "throughput"})


def write_config(path: Path, url: str, state: Path, writer: str) -> None:
    path.write_text(
        "[larkps]\n"
        f'state_dir = "{state}"\n'
        "[[archives]]\n"
        'name = "mesh"\n'
        'kind = "esmond"\n'
        f'url = "{url}"\n'
        "max_connections = 3\n"
        "page_size = 10\n"
        f"event_types = {json.dumps(sorted(EVENT_TYPES))}\n"
        f'[fetch]\nwriter = "{writer}"\n'
    )


def writers_of(state: Path) -> list[int]:
    """Live writer processes (larkps.ingest.writer) writing into ``state``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            status = (proc / "stat").read_text().rsplit(") ", 1)[1][0]
        except (OSError, IndexError):
            continue
        ours = b"larkps.ingest.writer" in argv and str(state).encode() in b" ".join(argv)
        if ours and status != "Z":
            found.append(int(proc.name))
    return found


def check_store(db: Path, mesh: Mesh, now: int) -> dict[tuple[str, str], int]:
    """Invariants of the store; returns each series' high-water mark."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT id, metadata_key, event_type, hwm, covered_from FROM series"
        ).fetchall()
        marks = {}
        for sid, key, event, hwm, covered in rows:
            stored = [
                ts
                for (ts,) in conn.execute(
                    "SELECT ts FROM points WHERE series_id = ? ORDER BY ts", (sid,)
                )
            ]
            assert len(stored) == len(set(stored)), (key, event)
            if hwm is None:
                continue
            assert covered is not None and covered <= hwm <= now
            inside = [ts for ts in stored if covered <= ts <= hwm]
            want = [int(p["ts"]) for p in mesh.points(key, event, covered, hwm)]  # type: ignore[call-overload]
            assert inside == want, (key, event)  # no gap up to the mark, nothing extra
            marks[(key, event)] = hwm
    return marks


def updated_between(mesh: Mesh, begin: int, end: int) -> set[tuple[str, str]]:
    """What esmond metadata queries for the fetched event types with ``time-start=begin``
    list, as (metadata key, event type): every fetched event type of each test with
    a point of one of them in [begin, end]."""
    listed: set[tuple[str, str]] = set()
    for series in mesh.series:
        events = [e for e, _ in event_types(series.kind, "esmond") if e in EVENT_TYPES]
        if any(mesh.points(series.key, e, begin, end) for e in events):
            listed.update((series.key, e) for e in events)
    return listed


def run_fetch(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "larkps",
            "fetch",
            "--config",
            str(config),
            "--since",
            "6h",
            "--quiet",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.parametrize("writer", ["thread", "process"])
def test_kill_9_during_fetch_never_loses_committed_points(tmp_path: Path, writer: str):
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    mesh = Mesh(MeshConfig(sites=4, seed=12))
    now = int(time.time())
    state = tmp_path / "state"
    config = tmp_path / "larkps.toml"
    progress = []
    with EmbeddedArchive(mesh, clock=lambda: float(now)) as archive:
        write_config(config, archive.url, state, writer)
        for _ in range(KILLS):
            # Killed at a random moment of its fetch, counted in requests the archive
            # answered (not in seconds: start-up and speed vary with the machine's load).
            # Its first request comes after the store opened.
            wanted = archive.requests_served + rng.randint(1, 60)
            child = run_fetch(config)
            fetching = _until(
                lambda n=wanted, c=child: archive.requests_served >= n or c.poll() is not None,
                120,
            )
            assert fetching and child.poll() is None, (seed, "the fetch ended before its kill")
            child.kill()  # SIGKILL
            child.communicate()
            assert _gone(lambda: writers_of(state), 30), (seed, "a writer outlived its fetcher")
            if (state / "larkps.sqlite").exists():
                marks = check_store(state / "larkps.sqlite", mesh, now)
                progress.append(sum(1 for _ in marks))
        final_start = int(time.time())
        final = run_fetch(config)
        seen_writer = False
        deadline = time.monotonic() + 240
        while final.poll() is None and time.monotonic() < deadline:
            seen_writer = seen_writer or bool(writers_of(state))
            time.sleep(0.02)
        out, err = final.communicate(timeout=10)
    assert seen_writer == (writer == "process"), seed  # the runs committed as configured
    assert final.returncode == 0, (seed, err.decode())
    assert b"fetched " in out
    marks = check_store(state / "larkps.sqlite", mesh, now)
    with sqlite3.connect(state / "larkps.sqlite") as conn:
        series = conn.execute(
            "SELECT metadata_key, event_type, covered_from FROM series"
        ).fetchall()
    # The archive lists a series whose newest point is inside the discovering run's
    # window: that run started after `now` and before the final one.
    stored = {(key, event) for key, event, _ in series}
    assert updated_between(mesh, final_start - SINCE, now) <= stored
    assert stored <= updated_between(mesh, now - SINCE, now)
    for key, event, covered in series:  # complete: every series reached the archive's newest point
        newest = mesh.points(key, event, final_start - SINCE, now)
        if newest:
            assert marks[(key, event)] == newest[-1]["ts"], (seed, key, event)
            assert covered <= final_start - SINCE + 10  # the final run started a bit later
    assert any(count < len(marks) for count in progress), (seed, progress)  # killed mid-fetch
    assert writers_of(state) == []


def _until(done: Callable[[], bool], seconds: float) -> bool:
    """Whether ``done()`` becomes true within ``seconds``."""
    end = time.monotonic() + seconds
    while not done():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


def _gone(alive, seconds: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    """Whether ``alive()`` becomes empty within ``seconds``."""
    end = time.monotonic() + seconds
    while alive():
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True
