"""The fetch half of the state store: series, their high-water marks, and raw points.

Tables (in the one SQLite file of :class:`larkps.store.Store`):

* ``series``: one row per (archive, metadata-key, event-type) with what is needed to
  rebuild a :class:`Series`, and its marks: the store holds every point the archive
  had in ``[covered_from, hwm]``. ``hwm`` is the newest stored timestamp.
* ``points``: ``(series_id, ts)`` primary key, so a point is stored once
  (``INSERT OR IGNORE``: what is stored is never overwritten). Histograms are
  packed little-endian: n float64 bucket values (ms), then n uint32 counts.
* ``discoveries``: when each archive's series were last listed, and with which
  query, so discovery runs once per ``discover_interval``, not every cycle.
* ``attempts``: when each archive was last asked for new points, so an archive with
  its own ``interval`` is not fetched early after a restart (larkps.cadence).

Points of a page and the marks that cover them are written in one transaction.
"""

from __future__ import annotations

import sqlite3
import struct
import sys
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from larkps.model import Endpoint, Family, Histogram, Metric, Point, Series, SeriesKey
from larkps.sites import SiteMap
from larkps.store import Store

SCHEMA = """
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
_MAX_COUNT = 2**32 - 1
_UINT32 = next(code for code in "IL" if array(code).itemsize == 4)
_INSERT = "INSERT OR IGNORE INTO points VALUES (?, ?, ?, ?, ?)"
# Rows of one kind bind fewer parameters (and no NULLs, which sqlite3 adapts slowly).
_INSERT_HISTOGRAM = "INSERT OR IGNORE INTO points (series_id, ts, histogram) VALUES (?, ?, ?)"
_INSERT_VALUE = "INSERT OR IGNORE INTO points (series_id, ts, value) VALUES (?, ?, ?)"
_UPDATE_MARKS = (
    "UPDATE series SET hwm = max(coalesce(hwm, ?1), coalesce(?1, hwm)), "
    "covered_from = coalesce(?2, covered_from) WHERE id = ?3"
)
_SELECT_SERIES = (
    "SELECT id, archive, metadata_key, event_type, source_host, source_ip, destination_host, "
    "destination_ip, family, metric, tool, data_uri, bucket_width, hwm, covered_from, seen_at "
    "FROM series WHERE archive = ? AND seen_at >= ? ORDER BY id"
)


@dataclass(frozen=True, slots=True)
class StoredSeries:
    """A series as the store knows it: its row id and marks."""

    id: int
    series: Series
    hwm: int | None
    covered_from: int | None
    seen_at: int = 0  # when discovery last listed it


@dataclass(frozen=True, slots=True)
class Commit:
    """Points of one page of one series, and the marks they justify.

    ``hwm``: the page's newest timestamp (forward pages); ``covered_from``: the new
    start of the covered range (first page, or a finished backfill).
    """

    series_id: int
    points: Sequence[Point]
    hwm: int | None = None
    covered_from: int | None = None
    check_existing: bool = False  # backfill: some points may be stored already


def encode_histogram(histogram: Histogram) -> bytes:
    values, counts = zip(*histogram, strict=True)
    try:  # arrays pack a column in one call; counts out of uint32 range take struct
        packed_values, packed_counts = array("d", values), array(_UINT32, counts)
    except OverflowError:
        return _encode_slowly(values, counts)
    if sys.byteorder != "little":
        packed_values.byteswap()
        packed_counts.byteswap()
    return packed_values.tobytes() + packed_counts.tobytes()


def _encode_slowly(values: tuple[float, ...], counts: tuple[int, ...]) -> bytes:
    if max(counts) > _MAX_COUNT:
        counts = tuple(min(c, _MAX_COUNT) for c in counts)
    return struct.pack(f"<{len(values)}d{len(values)}I", *values, *counts)


def decode_histogram(blob: bytes) -> Histogram:
    n = len(blob) // 12
    numbers = struct.unpack(f"<{n}d{n}I", blob)
    return tuple(zip(numbers[:n], numbers[n:], strict=True))


def _insert(db: sqlite3.Connection, series_id: int, points: Sequence[Point]) -> None:
    """INSERT OR IGNORE the points of one series, in order (the first of a ts wins).

    A page of one kind (histograms only, or values only) binds three parameters a row
    and no NULL (sqlite3 adapts None slowly); a mixed page takes the full row."""
    histograms, values = [], []
    for point in points:
        if point.note is not None:
            break
        if point.histogram and point.value is None:
            histograms.append((series_id, point.ts, encode_histogram(point.histogram)))
        elif point.histogram is None and point.value is not None:
            values.append((series_id, point.ts, point.value))
        else:
            break
    else:
        if not (histograms and values):
            rows = histograms or values
            if rows:
                db.executemany(_INSERT_HISTOGRAM if histograms else _INSERT_VALUE, rows)
            return
    db.executemany(_INSERT, [_row(series_id, p) for p in points])


def _row(series_id: int, point: Point) -> tuple[int, int, float | None, bytes | None, str | None]:
    blob = encode_histogram(point.histogram) if point.histogram else None
    return (series_id, point.ts, point.value, blob, point.note)


def _point(ts: int, value: float | None, blob: bytes | None, note: str | None) -> Point:
    return Point(ts, value, decode_histogram(blob) if blob is not None else None, note)


class IngestStore:
    """Series, marks and points on top of a :class:`Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.ensure_schema(SCHEMA)
        self.db = store.connection

    # -- discovery ---------------------------------------------------------------------
    def last_discovery(self, archive: str, query: str) -> int | None:
        row = self.db.execute(
            "SELECT at FROM discoveries WHERE archive = ? AND query = ?", (archive, query)
        ).fetchone()
        return None if row is None else int(row[0])

    def save_discovery(self, archive: str, query: str, now: int, found: Iterable[Series]) -> None:
        """Upsert the listed series (marks untouched) and remember the discovery."""
        rows = [_series_row(s, now) for s in found]
        with self.store.transaction() as db:
            db.executemany(
                "INSERT INTO series (archive, metadata_key, event_type, source_host, source_ip, "
                "destination_host, destination_ip, family, metric, tool, data_uri, bucket_width, "
                "seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (archive, metadata_key, event_type) DO UPDATE SET "
                "source_host = excluded.source_host, source_ip = excluded.source_ip, "
                "destination_host = excluded.destination_host, "
                "destination_ip = excluded.destination_ip, family = excluded.family, "
                "metric = excluded.metric, tool = excluded.tool, data_uri = excluded.data_uri, "
                "bucket_width = excluded.bucket_width, seen_at = excluded.seen_at",
                rows,
            )
            db.execute(
                "INSERT INTO discoveries (archive, at, query) VALUES (?, ?, ?) "
                "ON CONFLICT (archive) DO UPDATE SET at = excluded.at, query = excluded.query",
                (archive, now, query),
            )

    def series(
        self, archive: str, sites: SiteMap, seen_since: int | None = None
    ) -> list[StoredSeries]:
        """Series of one archive (listed at or after ``seen_since``), sites mapped now."""
        rows = self.db.execute(
            _SELECT_SERIES, (archive, -(2**62) if seen_since is None else seen_since)
        )
        return [_stored(row, sites) for row in rows]

    # -- fetch attempts ----------------------------------------------------------------
    def attempts(self) -> dict[str, int]:
        """When each archive was last asked for new points."""
        return {str(a): int(at) for a, at in self.db.execute("SELECT archive, at FROM attempts")}

    def save_attempts(self, archives: Iterable[str], now: int) -> None:
        """Record an attempted fetch of each archive at ``now`` (a clock that went back
        overwrites a later time)."""
        with self.store.transaction() as db:
            db.executemany(
                "INSERT INTO attempts (archive, at) VALUES (?, ?) "
                "ON CONFLICT (archive) DO UPDATE SET at = excluded.at",
                [(name, now) for name in archives],
            )

    # -- points ------------------------------------------------------------------------
    def commit(self, commits: Sequence[Commit]) -> list[list[Point]]:
        """Write every page and its marks in one transaction; return the points that
        were new to the store, per commit."""
        fresh_per_commit = []
        marks = [
            (item.hwm, item.covered_from, item.series_id)
            for item in commits
            if item.hwm is not None or item.covered_from is not None
        ]
        with self.store.transaction() as db:
            for item in commits:
                fresh = self._new_points(item) if item.check_existing else list(item.points)
                _insert(db, item.series_id, fresh)
                fresh_per_commit.append(fresh)
            db.executemany(_UPDATE_MARKS, marks)  # in commit order, in the same transaction
        return fresh_per_commit

    def _new_points(self, item: Commit) -> list[Point]:
        if not item.points:
            return []
        low = min(p.ts for p in item.points)
        high = max(p.ts for p in item.points)
        stored = {
            int(ts)
            for (ts,) in self.db.execute(
                "SELECT ts FROM points WHERE series_id = ? AND ts BETWEEN ? AND ?",
                (item.series_id, low, high),
            )
        }
        return [p for p in item.points if p.ts not in stored]

    def points(self, series_id: int, start: int, end: int) -> list[Point]:
        """Stored points with start < ts <= end, by ts."""
        return [
            _point(*row)
            for row in self.db.execute(
                "SELECT ts, value, histogram, note FROM points "
                "WHERE series_id = ? AND ts > ? AND ts <= ? ORDER BY ts",
                (series_id, start, end),
            )
        ]

    def prune(self, series_ids: Sequence[int], cutoff: int) -> int:
        """Delete points older than ``cutoff``; return how many."""
        with self.store.transaction() as db:
            before = db.total_changes
            db.executemany(
                "DELETE FROM points WHERE series_id = ? AND ts < ?",
                [(i, cutoff) for i in series_ids],
            )
            deleted = db.total_changes - before
            db.executemany(
                "UPDATE series SET covered_from = max(covered_from, ?) WHERE id = ?",
                [(cutoff, i) for i in series_ids],
            )
        return deleted

    def meta(self, name: str) -> int | None:
        row = self.db.execute("SELECT value FROM ingest_meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else int(row[0])

    def set_meta(self, name: str, value: int) -> None:
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO ingest_meta VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value),
            )


def _series_row(s: Series, now: int) -> tuple[object, ...]:
    return (
        s.key.archive,
        s.key.metadata_key,
        s.key.event_type,
        s.source.host,
        s.source.ip,
        s.destination.host,
        s.destination.ip,
        s.family.value,
        s.metric.value,
        s.tool,
        s.data_uri,
        s.bucket_width,
        now,
    )


def _stored(row: tuple[object, ...], sites: SiteMap) -> StoredSeries:
    (
        sid,
        archive,
        key,
        event,
        shost,
        sip,
        dhost,
        dip,
        fam,
        metric,
        tool,
        uri,
        width,
        hwm,
        cov,
        seen,
    ) = row
    source = Endpoint(str(shost), str(sip), sites.site_for(str(shost), str(sip)))
    destination = Endpoint(str(dhost), str(dip), sites.site_for(str(dhost), str(dip)))
    series = Series(
        SeriesKey(str(archive), str(key), str(event)),
        source,
        destination,
        Family(str(fam)),
        Metric(str(metric)),
        str(tool),
        str(uri),
        None if width is None else float(str(width)),
    )
    return StoredSeries(
        int(str(sid)),
        series,
        None if hwm is None else int(str(hwm)),
        None if cov is None else int(str(cov)),
        int(str(seen)),
    )
