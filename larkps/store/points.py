"""The fetch half of the state store: series, their high-water marks, and raw points.

Tables (declared in :mod:`larkps.store.schema`):

* ``series``: one row per (archive, metadata-key, event-type) with what is needed to
  rebuild a :class:`Series`, and its marks: the store holds every point the archive
  had in ``[covered_from, hwm]``. ``hwm`` is the newest stored timestamp.
* ``points``: ``(series_id, ts)`` primary key, so a point is stored once
  (``INSERT OR IGNORE``: what is stored is never overwritten). Histograms are
  packed little-endian: n float64 bucket values (ms), then n uint32 counts.
* ``discoveries``: when each archive's series were last listed, and with which
  query, so discovery runs once per ``discover_interval``, not every cycle.
* ``attempts``: when each archive was last asked for new points, so an archive with
  its own ``interval`` is not fetched early after a restart (larkps.ingest.cadence).

Points of a page and the marks that cover them are written in one transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from itertools import chain
from typing import Any

from larkps.config.sites import SiteMap
from larkps.model import Endpoint, Family, Histogram, Metric, Point, Series, SeriesKey
from larkps.store.db import Store

# The columns each kind of row binds: a page of one kind binds fewer parameters (and
# no NULLs, which sqlite3 adapts slowly); a mixed series takes the full row.
_COLUMNS = {
    "histogram": "series_id, ts, histogram",
    "value": "series_id, ts, value",
    "full": "series_id, ts, value, histogram, note",
}
_CHUNK_ROWS = 4096  # rows per INSERT statement, at most (a power of two)
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
    rows: PageRows | None = None  # the points' rows (made when absent; not for backfills)


Row = tuple[object, ...]


@dataclass(frozen=True, slots=True)
class PageRows:
    """One page's rows, ready to bind: their kind (a key of _COLUMNS) and their values
    flattened in column order. Fetch threads make them, so that the one committing
    thread, the busiest of a big cycle, only binds and steps."""

    kind: str
    flat: list[object]


def page_rows(series_id: int, points: Sequence[Point]) -> PageRows:
    """The rows of one page of one series, in page order."""
    n = len(points)
    values = [p.value for p in points]
    histograms = [p.histogram for p in points]
    plain = all(p.note is None for p in points)
    if plain and values.count(None) == n and all(histograms):
        return PageRows("histogram", _interleaved(series_id, [p.ts for p in points], histograms))
    if plain and histograms.count(None) == n and None not in values:
        return PageRows("value", _interleaved(series_id, [p.ts for p in points], values))
    return PageRows("full", list(chain.from_iterable(_full_row(series_id, p) for p in points)))


@dataclass(frozen=True, slots=True)
class RowCommit:
    """A :class:`Commit` as the writer needs it: rows, not points (cheap to pickle for
    a writer process). ``stamps``: each row's timestamp, when stored points must be
    looked for (a backfill); None when every row is new."""

    series_id: int
    rows: PageRows
    hwm: int | None = None
    covered_from: int | None = None
    stamps: list[int] | None = None


def row_commit(commit: Commit) -> RowCommit:
    """The rows of ``commit`` (made now unless a fetch thread made them)."""
    rows = commit.rows or page_rows(commit.series_id, commit.points)
    stamps = [p.ts for p in commit.points] if commit.check_existing else None
    return RowCommit(commit.series_id, rows, commit.hwm, commit.covered_from, stamps)


def fresh_points(commits: Sequence[Commit], fresh: Sequence[list[int] | None]) -> list[list[Point]]:
    """The new points of each commit, from :meth:`IngestStore.commit_rows`'s answer."""
    return [
        list(c.points) if kept is None else [c.points[i] for i in kept]
        for c, kept in zip(commits, fresh, strict=True)
    ]


def _subset(rows: PageRows, kept: Sequence[int]) -> PageRows:
    """The rows at the indices ``kept``, in their order."""
    width = _width(rows.kind)
    flat = rows.flat
    return PageRows(rows.kind, [x for i in kept for x in flat[i * width : (i + 1) * width]])


def _width(kind: str) -> int:
    """Values per row of ``kind``."""
    return _COLUMNS[kind].count(",") + 1


def _interleaved(series_id: int, ts: list[int], column: list[Any]) -> list[object]:
    """(series_id, ts, column) rows flattened, by slice assignment (no tuple a row)."""
    flat: list[object] = [series_id] * (3 * len(ts))
    flat[1::3] = ts
    flat[2::3] = column
    return flat


def _full_row(series_id: int, point: Point) -> Row:
    return (series_id, point.ts, point.value, point.histogram or None, point.note)


def _widened(page: PageRows) -> list[object]:
    """The flattened rows of ``page`` as full rows."""
    if page.kind == "full":
        return page.flat
    rows = zip(*[iter(page.flat)] * 3, strict=True)
    if page.kind == "histogram":
        return [x for sid, ts, blob in rows for x in (sid, ts, None, blob, None)]
    return [x for sid, ts, value in rows for x in (sid, ts, value, None, None)]


def _rows_by_kind(pages: Sequence[tuple[int, PageRows]]) -> dict[str, list[object]]:
    """The flattened rows of many pages by kind. A series whose pages are of more than
    one kind goes whole into the full rows, so each series' rows stay in page order
    (for INSERT OR IGNORE, the first row of a (series, ts) wins)."""
    kinds: dict[int, set[str]] = {}
    for series_id, page in pages:
        if page.flat:
            kinds.setdefault(series_id, set()).add(page.kind)
    groups: dict[str, list[object]] = {kind: [] for kind in _COLUMNS}
    for series_id, page in pages:
        if page.flat and len(kinds[series_id]) > 1:
            groups["full"].extend(_widened(page))
        elif page.flat:
            groups[page.kind].extend(page.flat)
    return groups


@lru_cache(maxsize=64)
def _insert_sql(kind: str, rows: int) -> str:
    columns = _COLUMNS[kind]
    one_row = "(" + ",".join("?" * _width(kind)) + ")"
    head = f"INSERT OR IGNORE INTO points ({columns}) VALUES "  # noqa: S608 (fixed columns)
    return head + ",".join([one_row] * rows)


@lru_cache(maxsize=32)
def _marks_sql(rows: int) -> str:
    values = ",".join(["(?,?,?)"] * rows)
    return (
        f"WITH marks (new_hwm, new_from, sid) AS (VALUES {values}) "  # noqa: S608 (only ?s)
        "UPDATE series SET hwm = max(coalesce(hwm, new_hwm), coalesce(new_hwm, hwm)), "
        "covered_from = coalesce(new_from, covered_from) FROM marks WHERE id = sid"
    )


def _in_chunks(
    db: sqlite3.Connection, sql: Callable[[int], str], flat: list[object], width: int, most: int
) -> None:
    """Run ``sql(n)`` over the rows in ``flat`` (``width`` values each), n rows at a time.

    One statement binds many rows: sqlite3 lets go of the GIL for every statement it
    steps, and while fetch threads parse, getting it back can take milliseconds, so
    ``executemany`` (a step per row) stalls an ingest (docs/benchmarks.md). n is
    ``most`` or, for the rest, the next power of two, padded with copies of the last
    row (an INSERT OR IGNORE or a mark update that repeats a row changes nothing), so
    a batch takes a statement or two per kind and few distinct statements are cached.
    """
    rows = len(flat) // width
    done = 0
    while done < rows:
        size = min(most, 1 << (rows - done - 1).bit_length())
        part = flat[done * width : (done + size) * width]
        part += flat[-width:] * (size - len(part) // width)
        db.execute(sql(size), part)
        done += size


def _merged_marks(commits: Sequence[RowCommit]) -> list[object]:
    """One (hwm, covered_from, series id) per series: the largest hwm and the last
    covered_from, as applying the commits' marks in order would leave them."""
    merged: dict[int, tuple[int | None, int | None]] = {}
    for item in commits:
        if item.hwm is None and item.covered_from is None:
            continue
        hwm, covered_from = merged.get(item.series_id, (None, None))
        if item.hwm is not None:
            hwm = item.hwm if hwm is None else max(hwm, item.hwm)
        if item.covered_from is not None:
            covered_from = item.covered_from
        merged[item.series_id] = (hwm, covered_from)
    return [x for sid, (hwm, cover) in merged.items() for x in (hwm, cover, sid)]


def _point(ts: int, value: float | None, blob: bytes | None, note: str | None) -> Point:
    return Point(ts, value, None if blob is None else Histogram(blob), note)


class IngestStore:
    """Series, marks and points on top of a :class:`Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.connection
        variables = self.db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        self.chunk_rows = _power_of_two_at_most(min(_CHUNK_ROWS, variables // 5))

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

    def series_ids(self, archive: str) -> list[int]:
        """Row ids of every series of one archive (no Series built: pruning needs ids)."""
        rows = self.db.execute("SELECT id FROM series WHERE archive = ? ORDER BY id", (archive,))
        return [int(i) for (i,) in rows]

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
        return fresh_points(commits, self.commit_rows([row_commit(c) for c in commits]))

    def commit_rows(self, batch: Sequence[RowCommit]) -> list[list[int] | None]:
        """Write every page's rows and its marks in one transaction. For each commit
        that checks for stored points, the indices of its rows that were new (the
        others were all new: None)."""
        fresh = []
        pages = []
        with self.store.transaction() as db:
            for item in batch:
                rows, kept = item.rows, None
                if item.stamps is not None:
                    kept = self._new_indices(item.series_id, item.stamps)
                    rows = _subset(rows, kept)
                pages.append((item.series_id, rows))
                fresh.append(kept)
            for kind, flat in _rows_by_kind(pages).items():
                _in_chunks(db, partial(_insert_sql, kind), flat, _width(kind), self.chunk_rows)
            _in_chunks(db, _marks_sql, _merged_marks(batch), 3, self.chunk_rows)
        return fresh

    def _new_indices(self, series_id: int, stamps: Sequence[int]) -> list[int]:
        if not stamps:
            return []
        stored = {
            int(ts)
            for (ts,) in self.db.execute(
                "SELECT ts FROM points WHERE series_id = ? AND ts BETWEEN ? AND ?",
                (series_id, min(stamps), max(stamps)),
            )
        }
        return [i for i, ts in enumerate(stamps) if ts not in stored]

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


def _power_of_two_at_most(n: int) -> int:
    return 1 << (max(1, n).bit_length() - 1)


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
