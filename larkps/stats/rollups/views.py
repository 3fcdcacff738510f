"""Read the rollups back: PathStats per window and forecast histories per path.

A window ``(now - w, now]`` is the running partial of the hours wholly inside it
plus the part of the oldest hour after ``now - w``. That part comes from raw points
when the caller can give them (``boundary``), so the window is exact; otherwise the
whole oldest hour is taken, the window starts up to an hour early, and
``PathStats.window_start`` says where it really starts (completeness is computed
over that span).

Sites are not stored: each stream's endpoints (host, IP) are mapped through
``sites`` when read, so the site map in force now decides every window's paths
(a renamed, merged, split or removed site shows at once, its tests all kept).
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from larkps.config.sites import SiteMap
from larkps.model import Family, Metric, PathKey, PathStats, Point, Series
from larkps.stats.aggregate.assemble import PathFigures, Span, assemble, sort_key
from larkps.stats.aggregate.clean import clean_series
from larkps.stats.aggregate.paths import GroupKey
from larkps.stats.aggregate.quality import QualityPolicy, cadence_of
from larkps.stats.aggregate.weighted import FloatArray, IntArray, describe
from larkps.stats.rollups import (
    HISTORY,
    HOUR,
    LOSS_KINDS,
    METRIC_OF_KIND,
    Partial,
    StreamKey,
    StreamKind,
    StreamState,
    expired_hours,
    full_first_hour,
    hourly,
    merge,
    merge_all,
    stream_tests,
    subtract,
)
from larkps.stats.rollups.store import (
    PARTIAL_COLUMNS,
    load_window_states,
    partial_row,
    state_from_row,
    stored_hours,
)
from larkps.store.db import Store

#: the site of an endpoint (archive, host, IP) under the configuration in force now
SiteOf = Callable[[str, str, str], str]
#: raw points with start < ts <= end for the boundary hour, or None if not at hand
Boundary = Callable[[int, int], Iterable[tuple[Series, Sequence[Point]]] | None]


@dataclass(frozen=True, slots=True, eq=False)
class StreamInfo:
    """A stream's identity and its state between cycles."""

    id: int
    key: StreamKey
    kind: StreamKind
    path: PathKey
    source_host: str
    destination_host: str
    state: StreamState

    def group(self, by_host: bool) -> GroupKey:
        if by_host:
            return (self.path, self.source_host, self.destination_host)
        return (self.path, None, None)


def no_site_map(archive: str, host: str, ip: str) -> str:
    """Without a site map every host is its own site (as :class:`SiteMap` says)."""
    return _NO_SITES.site_for(host, ip)


_NO_SITES = SiteMap()


def sites_of(maps: Mapping[str, SiteMap], default: SiteMap) -> SiteOf:
    """A :data:`SiteOf` from each archive's site map (``default`` for the others)."""

    def site(archive: str, host: str, ip: str) -> str:
        return maps.get(archive, default).site_for(host, ip)

    return site


def sites_as_mapped(series: Iterable[Series]) -> SiteOf:
    """The sites ``series`` carry, by (archive, host, IP) of each endpoint (others: no
    site map): for callers whose series were mapped already (benchmarks, tests)."""
    known = {
        (s.key.archive, end.host, end.ip): end.site
        for s in series
        for end in (s.source, s.destination)
    }

    def site(archive: str, host: str, ip: str) -> str:
        return known.get((archive, host, ip)) or no_site_map(archive, host, ip)

    return site


def load_streams(db: sqlite3.Connection, since: int, sites: SiteOf) -> list[StreamInfo]:
    """Streams with a test after ``since``, their endpoints mapped by ``sites`` now."""
    rows = db.execute(
        "SELECT id, kind, archive, source_host, source_ip, destination_host, destination_ip,"
        " family, metadata_key, hwm, gaps, history_ts, history"
        " FROM rollup_streams WHERE hwm > ? ORDER BY id",
        (since,),
    ).fetchall()
    return [
        StreamInfo(
            id=int(r[0]),
            key=(r[2], r[8], StreamKind(r[1])),
            kind=StreamKind(r[1]),
            path=PathKey(sites(r[2], r[3], r[4]), sites(r[2], r[5], r[6]), Family(r[7])),
            source_host=r[3],
            destination_host=r[5],
            state=state_from_row(r[9:]),
        )
        for r in rows
    ]


def stream_sites(store: Store, sites: SiteOf) -> set[str]:
    """Every site the stored streams' endpoints map to under ``sites``."""
    rows = store.connection.execute(
        "SELECT DISTINCT archive, source_host, source_ip, destination_host, destination_ip"
        " FROM rollup_streams"
    )
    return {site for a, *ends in rows for site in (sites(a, *ends[:2]), sites(a, *ends[2:]))}


def window_stats(
    store: Store,
    windows: Sequence[int],
    now: int,
    policy: QualityPolicy | None = None,
    by_host: bool = False,
    boundary: Boundary | None = None,
    sites: SiteOf = no_site_map,
) -> list[PathStats]:
    """PathStats of every path (or host pair) with recent tests, for each window,
    sites mapped by ``sites``."""
    policy = policy or QualityPolicy()
    db = store.connection
    # paths (or host pairs) with a test in the longest window, with all their streams:
    # an older stream still says how many tests the path should have had
    every = load_streams(db, -(2**62), sites)
    cutoff = now - max(windows, default=0)
    recent = {i.group(by_host) for i in every if i.state.hwm is not None and i.state.hwm > cutoff}
    streams = [i for i in every if i.group(by_host) in recent]
    out: list[PathStats] = []
    for length in windows:
        first = full_first_hour(length, now)
        partials = window_partials(db, length, first, [s.id for s in streams])
        start = now - length
        if start < first * HOUR:
            start = _add_boundary(db, partials, streams, (start, first * HOUR), boundary)
        out.extend(_assemble(streams, partials, Span(length, now, start), policy, by_host))
    return out


def _add_boundary(
    db: sqlite3.Connection,
    partials: dict[int, Partial],
    streams: list[StreamInfo],
    edge: tuple[int, int],
    boundary: Boundary | None,
) -> int:
    """Merge in the oldest, partly covered hour ``(edge[0], edge[1]]``; returns the start."""
    start, end = edge
    points = boundary(start, end) if boundary is not None else None
    if points is None:
        hour = end // HOUR - 1
        for info in streams:
            extra = stored_hours(db, info.id, hour, hour)
            partials[info.id] = merge(partials.get(info.id, Partial()), extra)
        return hour * HOUR
    ids = {info.key: info.id for info in streams}
    for tests in stream_tests(clean_series(s, p, end) for s, p in points):
        sid = ids.get(tests.key)
        if sid is not None:
            extra = merge_all(hourly(tests.after(start)).values())
            partials[sid] = merge(partials.get(sid, Partial()), extra)
    return start


def window_partials(
    db: sqlite3.Connection, length: int, first: int, ids: Sequence[int]
) -> dict[int, Partial]:
    """Each stream's partial over the hours from ``first`` on (read-only)."""
    states = load_window_states(db, length)
    wanted = set(ids)
    out: dict[int, Partial] = {}
    for sid, state in states.items():
        if sid not in wanted or state.first > first:
            continue
        span = expired_hours(state, first)
        out[sid] = subtract(state.partial, stored_hours(db, sid, *span)) if span else state.partial
    missing = wanted - set(out)
    if missing:
        out.update(_from_hours(db, first, missing))
    return out


def _from_hours(db: sqlite3.Connection, first: int, ids: set[int]) -> dict[int, Partial]:
    """Partials merged from the stored hours, for windows that keep no running state."""
    rows = db.execute(
        f"SELECT stream, {PARTIAL_COLUMNS} FROM rollup_hours WHERE hour >= ?",  # noqa: S608
        (first,),
    ).fetchall()
    parts: dict[int, list[Partial]] = defaultdict(list)
    for row in rows:
        if int(row[0]) in ids:
            parts[int(row[0])].append(partial_row(row[1:]))
    return {sid: merge_all(p) for sid, p in parts.items()}


def _assemble(
    streams: list[StreamInfo],
    partials: dict[int, Partial],
    span: Span,
    policy: QualityPolicy,
    by_host: bool,
) -> list[PathStats]:
    groups: dict[GroupKey, PathFigures] = defaultdict(PathFigures)
    members: dict[tuple[GroupKey, StreamKind], list[StreamInfo]] = defaultdict(list)
    for info in streams:
        key = info.group(by_host)
        groups[key].hosts.update((info.source_host, info.destination_host))
        members[(key, info.kind)].append(info)
    for (key, kind), infos in members.items():
        _add(groups[key], kind, infos, partials)
    ordered = sorted(groups, key=lambda k: (*sort_key(k[0]), k[1] or "", k[2] or ""))
    return [assemble(k[0], groups[k], span, policy, (k[1], k[2])) for k in ordered]


def _add(
    figures: PathFigures, kind: StreamKind, infos: list[StreamInfo], partials: dict[int, Partial]
) -> None:
    merged = merge_all(partials.get(i.id, Partial()) for i in infos)
    cadences = [(cadence_of(i.state.gaps), partials.get(i.id, Partial()).tests) for i in infos]
    if kind is StreamKind.FAILURE:
        figures.failures += merged.tests
        return
    if kind in LOSS_KINDS:
        loss = figures.loss if kind is StreamKind.LOSS else figures.loss_bidir
        loss.tests, loss.sent, loss.lost = merged.tests, merged.sent, merged.lost
        loss.latest_ts = merged.latest_ts if merged.tests else None
        loss.cadences.extend(cadences)
        return
    figure = figures.figure(METRIC_OF_KIND[kind])
    figure.cadences.extend(cadences)
    if merged.tests:
        figure.described = describe(merged.values, merged.counts)
        figure.tests = merged.tests
        assert merged.latest_ts is not None
        figure.latest = (merged.latest_ts, merged.latest_value)


def histories(
    store: Store,
    now: int,
    kinds: Sequence[StreamKind] = (StreamKind.THROUGHPUT,),
    sites: SiteOf = no_site_map,
) -> dict[tuple[PathKey, Metric], tuple[IntArray, FloatArray]]:
    """Per path (sites mapped by ``sites``) and metric: the newest per-test values of
    its streams, merged by ts."""
    found: dict[tuple[PathKey, Metric], list[StreamState]] = defaultdict(list)
    for info in load_streams(store.connection, -(2**62), sites):
        if info.kind in kinds:
            found[(info.path, METRIC_OF_KIND[info.kind])].append(info.state)
    out = {}
    for key, states in found.items():
        ts = np.concatenate([s.history_ts for s in states])
        values = np.concatenate([s.history for s in states])
        keep = ts <= now
        order = np.argsort(ts[keep], kind="stable")[-HISTORY:]
        out[key] = (ts[keep][order], values[keep][order])
    return out
