"""Rollups in the state store: hourly partials and running window partials per stream.

Tables (declared in :mod:`larkps.store.schema`):

* ``rollup_streams``: one row per (archive, metadata key, kind) with its endpoints
  (host and IP of each end) and family as last seen, its high-water mark, recent
  gaps and forecast history (see :mod:`larkps.stats.rollups.streams`). No site
  names: the readers (stats.rollups.views) map the endpoints through the site map in
  force when they read, so a changed map applies at once to every window and
  nothing stored is keyed by a name the configuration may drop.
* ``rollup_hours``: the partial of each (stream, hour): test count, packet counts,
  newest test and the weighted multiset of samples (float64 values, int64 counts).
* ``rollup_windows``: for each configured window length, the running partial of the
  hours from ``first_hour`` on: the hours wholly inside the window (the partly
  covered oldest hour is added when the window is read, see stats.rollups.views).

:func:`update_rollups` takes a cycle's points (new ones, or a whole refetched window:
anything at or before a stream's high-water mark is skipped), slides every window
and stores the hours, all in one transaction. Cost per cycle: the new tests, plus
one expired hour per window and stream once an hour, whatever the window length.
Hours older than the longest window are deleted.

Streams once kept the sites seen when their tests were taken in; a store of that
age is upgraded by :mod:`larkps.store.schema` (every stream, hour and window kept; the
IPs come from the ingest ``series`` table where it has them, else from the
stream's next tests).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from larkps.model import Point, Series
from larkps.stats.aggregate.clean import clean_series
from larkps.stats.rollups import (
    EMPTY_PARTIAL,
    Partial,
    StreamState,
    StreamTests,
    WindowState,
    expired_hours,
    first_hour,
    fresh_part,
    from_blobs,
    full_first_hour,
    hourly,
    merge,
    merge_all,
    needs_rebuild,
    rebuild,
    slide,
    stream_tests,
    to_blobs,
)
from larkps.store.db import Store

PARTIAL_COLUMNS = "tests, bucket_values, bucket_counts, sent, lost, latest_ts, latest_value"


@dataclass(frozen=True, slots=True)
class RollupUpdate:
    """What one :func:`update_rollups` call took in."""

    streams: int  # streams with new tests
    tests: int  # new tests taken in
    hours: int  # (stream, hour) partials written


def partial_row(row: Sequence[object]) -> Partial:
    """A Partial from the PARTIAL_COLUMNS of a row."""
    tests, values, counts, sent, lost, latest_ts, latest_value = row
    assert isinstance(values, bytes) and isinstance(counts, bytes)
    return from_blobs(
        int(tests),  # type: ignore[call-overload]
        values,
        counts,
        int(sent),  # type: ignore[call-overload]
        int(lost),  # type: ignore[call-overload]
        None if latest_ts is None else int(latest_ts),  # type: ignore[call-overload]
        None if latest_value is None else float(latest_value),  # type: ignore[arg-type]
    )


def partial_params(partial: Partial) -> tuple[object, ...]:
    values, counts = to_blobs(partial)
    return (
        partial.tests,
        values,
        counts,
        partial.sent,
        partial.lost,
        partial.latest_ts,
        partial.latest_value,
    )


def update_rollups(
    store: Store,
    data: Iterable[tuple[Series, Sequence[Point]]],
    now: int,
    windows: Sequence[int],
    all_new: bool = False,
) -> RollupUpdate:
    """Take a cycle's points into the hourly and window partials (one transaction).

    By default only points after each stream's high-water mark are taken, so a
    refetched window is counted once. ``all_new``: the caller guarantees every point
    is new (incremental ingest), so late arrivals before the mark are taken too.
    """
    tests = stream_tests(clean_series(s, points, now) for s, points in data)
    with store.transaction() as db:
        ids = {t.key: _stream_id(db, t) for t in tests}
        states = {ids[t.key]: _stream_state(db, ids[t.key]) for t in tests}
        new = {ids[t.key]: t if all_new else t.after(states[ids[t.key]].hwm) for t in tests}
        deltas = {sid: hourly(t) for sid, t in new.items() if t.ts.size}
        for length in sorted(set(windows)):
            _slide(db, length, full_first_hour(length, now), deltas)
        hours = _store_hours(db, deltas)
        for sid, t in new.items():
            if t.ts.size:
                _save_state(db, sid, states[sid].advance(t))
        _forget(db, now, windows)
    count = sum(int(t.ts.size) for t in new.values())
    return RollupUpdate(streams=len(deltas), tests=count, hours=hours)


def _stream_id(db: sqlite3.Connection, tests: StreamTests) -> int:
    archive, metadata_key, kind = tests.key
    s = tests.series
    db.execute(
        "INSERT INTO rollup_streams (archive, metadata_key, kind, source_host, source_ip,"
        " destination_host, destination_ip, family, gaps, history_ts, history)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, x'', x'', x'')"
        " ON CONFLICT (archive, metadata_key, kind) DO UPDATE SET"
        " source_host = excluded.source_host, source_ip = excluded.source_ip,"
        " destination_host = excluded.destination_host,"
        " destination_ip = excluded.destination_ip, family = excluded.family",
        (
            archive,
            metadata_key,
            kind.value,
            s.source.host,
            s.source.ip,
            s.destination.host,
            s.destination.ip,
            s.family.value,
        ),
    )
    row = db.execute(
        "SELECT id FROM rollup_streams WHERE archive = ? AND metadata_key = ? AND kind = ?",
        (archive, metadata_key, kind.value),
    ).fetchone()
    return int(row[0])


def _stream_state(db: sqlite3.Connection, sid: int) -> StreamState:
    row = db.execute(
        "SELECT hwm, gaps, history_ts, history FROM rollup_streams WHERE id = ?", (sid,)
    ).fetchone()
    return state_from_row(row)


def state_from_row(row: Sequence[object]) -> StreamState:
    hwm, gaps, history_ts, history = row
    assert isinstance(gaps, bytes) and isinstance(history_ts, bytes)
    assert isinstance(history, bytes)
    return StreamState(
        hwm=None if hwm is None else int(hwm),  # type: ignore[call-overload]
        gaps=np.frombuffer(gaps, dtype="<i8").astype(np.int64),
        history_ts=np.frombuffer(history_ts, dtype="<i8").astype(np.int64),
        history=np.frombuffer(history, dtype="<f8").astype(np.float64),
    )


def _save_state(db: sqlite3.Connection, sid: int, state: StreamState) -> None:
    db.execute(
        "UPDATE rollup_streams SET hwm = ?, gaps = ?, history_ts = ?, history = ? WHERE id = ?",
        (
            state.hwm,
            state.gaps.astype("<i8").tobytes(),
            state.history_ts.astype("<i8").tobytes(),
            state.history.astype("<f8").tobytes(),
            sid,
        ),
    )


def stored_hours(db: sqlite3.Connection, sid: int, lo: int, hi: int | None = None) -> Partial:
    """Merge of the stored hourly partials of one stream with lo <= hour (<= hi)."""
    top = hi if hi is not None else 2**62
    rows = db.execute(
        f"SELECT {PARTIAL_COLUMNS} FROM rollup_hours"  # noqa: S608 (fixed column list)
        " WHERE stream = ? AND hour BETWEEN ? AND ?",
        (sid, lo, top),
    ).fetchall()
    return merge_all(partial_row(r) for r in rows)


def load_window_states(
    db: sqlite3.Connection, length: int, streams: Iterable[int] | None = None
) -> dict[int, WindowState]:
    """Running partials of one window length (all streams, or the ones named)."""
    query = (
        f"SELECT stream, first_hour, {PARTIAL_COLUMNS} FROM rollup_windows"  # noqa: S608
        " WHERE length = ?"
    )
    if streams is None:
        rows = db.execute(query, (length,)).fetchall()
    else:
        rows = [
            r
            for sid in streams
            for r in db.execute(query + " AND stream = ?", (length, sid)).fetchall()
        ]
    return {int(r[0]): WindowState(int(r[1]), partial_row(r[2:])) for r in rows}


def _slide(
    db: sqlite3.Connection, length: int, first: int, deltas: dict[int, dict[int, Partial]]
) -> None:
    behind = db.execute(
        "SELECT stream FROM rollup_windows WHERE length = ? AND first_hour <> ?", (length, first)
    ).fetchall()
    touched = set(deltas) | {int(r[0]) for r in behind}
    if (
        db.execute("SELECT 1 FROM rollup_windows WHERE length = ? LIMIT 1", (length,)).fetchone()
        is None
    ):
        # a newly configured window: build it once for every stream with stored hours
        stored = db.execute("SELECT DISTINCT stream FROM rollup_hours WHERE hour >= ?", (first,))
        touched |= {int(r[0]) for r in stored}
    states = load_window_states(db, length, sorted(touched))
    for sid in sorted(touched):
        state = states.get(sid)
        fresh = fresh_part(deltas.get(sid, {}), first)
        if state is None or needs_rebuild(state, first):
            new = rebuild(first, stored_hours(db, sid, first), fresh)
        else:
            span = expired_hours(state, first)
            expired = stored_hours(db, sid, *span) if span else EMPTY_PARTIAL
            new = slide(state, first, expired, fresh)
        db.execute(
            "INSERT OR REPLACE INTO rollup_windows (stream, length, first_hour, "  # noqa: S608
            f"{PARTIAL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (sid, length, new.first, *partial_params(new.partial)),
        )


def _store_hours(db: sqlite3.Connection, deltas: dict[int, dict[int, Partial]]) -> int:
    written = 0
    for sid, hours in deltas.items():
        for hour, delta in hours.items():
            row = db.execute(
                f"SELECT {PARTIAL_COLUMNS} FROM rollup_hours"  # noqa: S608
                " WHERE stream = ? AND hour = ?",
                (sid, hour),
            ).fetchone()
            merged = delta if row is None else merge(partial_row(row), delta)
            db.execute(
                f"INSERT OR REPLACE INTO rollup_hours (stream, hour, {PARTIAL_COLUMNS})"  # noqa: S608
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (sid, hour, *partial_params(merged)),
            )
            written += 1
    return written


def _forget(db: sqlite3.Connection, now: int, windows: Sequence[int]) -> None:
    """Drop hours no window reaches and the states of windows no longer configured."""
    if not windows:
        return
    db.execute("DELETE FROM rollup_hours WHERE hour < ?", (first_hour(max(windows), now),))
    marks = ", ".join("?" for _ in windows)
    db.execute(
        f"DELETE FROM rollup_windows WHERE length NOT IN ({marks})",  # noqa: S608
        tuple(windows),
    )
