"""Rollups: merging hourly partials equals computing on all points, cycle after cycle."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from event_types import EVENTS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from larkps.histogram import histogram_of
from larkps.model import Endpoint, Family, Metric, PathStats, Point, Series, SeriesKey
from larkps.stats.aggregate import path_stats
from larkps.stats.aggregate.weighted import merge_weighted
from larkps.stats.rollups import Partial, first_hour, full_first_hour, merge, subtract
from larkps.stats.rollups.store import update_rollups
from larkps.stats.rollups.views import sites_as_mapped, window_stats
from larkps.store.db import Store

HOUR = 3600
T0 = 1_700_000_000 // HOUR * HOUR  # on the hour


def series(metric: Metric, key: str, src: str = "A", dst: str = "B") -> Series:
    return Series(
        key=SeriesKey("arch", key, EVENTS[metric]),
        source=Endpoint(f"ps.{src.lower()}.example", "192.0.2.1", src),
        destination=Endpoint(f"ps.{dst.lower()}.example", "192.0.2.2", dst),
        family=Family.IPV4,
        metric=metric,
        tool="pscheduler/test",
        data_uri="/x",
    )


#: the site map the series above were mapped by
SITES = sites_as_mapped([series(Metric.THROUGHPUT, "bw")])


def partial_of(values: list[float]) -> Partial:
    v, c = merge_weighted(np.array(values, dtype=float), np.ones(len(values), dtype=np.int64))
    return Partial(tests=len(values), values=v, counts=c, sent=len(values), lost=1)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(-5, 5).map(float), min_size=1, max_size=20),
    st.lists(st.integers(-5, 5).map(float), min_size=0, max_size=20),
)
def test_subtract_undoes_merge(a, b):
    first, second = partial_of(a), partial_of(b) if b else Partial()
    assert subtract(merge(first, second), second).same_as(first)
    assert merge(first, second).same_as(merge(second, first))


def test_subtracting_what_was_never_merged_is_an_error():
    with pytest.raises(ValueError, match="never merged"):
        subtract(partial_of([1.0, 2.0]), partial_of([3.0]))


def test_hours_and_window_edges():
    assert first_hour(HOUR, T0) == full_first_hour(HOUR, T0) == T0 // HOUR - 1
    assert first_hour(HOUR, T0 + 5) == T0 // HOUR - 1
    assert full_first_hour(HOUR, T0 + 5) == T0 // HOUR


# A small mesh of points: throughput every ~2 h, delay histograms, loss counts,
# failures, on two paths, over three days ending at T0; and the per-test scalars of
# archives without histograms or packet counts (ps_owd medians and means, ps_packetloss
# rates, OpenSearch rtt means and round-trip counts) on A->B and on C->D.
point_ts = st.integers(T0 - 3 * 86400 + 1, T0)
scalars = st.lists(st.tuples(point_ts, st.integers(-20, 400)), max_size=25)
fractions = st.lists(st.tuples(point_ts, st.integers(0, 600)), max_size=25)


def scalar_points(pairs: list[tuple[int, int]], scale: float) -> list[Point]:
    return [Point(ts, value=v * scale) for ts, v in pairs]


def fallback_data(draw: st.DrawFn) -> list[tuple[Series, list[Point]]]:
    """Series that only reach delay and loss through the scalar fallbacks."""
    medians, means, rates = draw(scalars), draw(scalars), draw(fractions)
    rtt = draw(st.lists(st.tuples(point_ts, st.integers(1, 400)), max_size=25))
    bidir = draw(
        st.lists(st.tuples(point_ts, st.integers(0, 10)), max_size=25, unique_by=lambda x: x[0])
    )
    return [
        (series(Metric.OWDELAY_MEDIAN, "owd"), scalar_points(medians, 0.1)),
        (series(Metric.OWDELAY_MEAN, "owd"), scalar_points(means, 0.1)),
        (series(Metric.LOSS_RATE, "pl"), scalar_points(rates, 1 / 600)),
        (series(Metric.OWDELAY_MEAN, "owd2", "C", "D"), scalar_points(means, 0.1)),
        (series(Metric.RTT_MEAN, "rtt", "C", "D"), scalar_points(rtt, 0.5)),
        (series(Metric.RTT_MIN, "rtt", "C", "D"), scalar_points(rtt, 0.25)),
        (series(Metric.LOSS_RATE_BIDIR, "rtt", "C", "D"), scalar_points(rates, 1 / 600)),
        (
            series(Metric.PACKETS_LOST_BIDIR, "rtt", "C", "D"),
            [Point(ts, value=float(lost)) for ts, lost in bidir],
        ),
        (series(Metric.PACKETS_SENT, "rtt", "C", "D"), [Point(ts, value=10.0) for ts, _ in bidir]),
    ]


def mesh_data(draw: st.DrawFn) -> list[tuple[Series, list[Point]]]:
    tp = draw(st.lists(st.tuples(point_ts, st.floats(1e8, 1e10)), max_size=40))
    owd = draw(
        st.lists(
            st.tuples(
                point_ts,
                st.lists(
                    st.tuples(st.integers(-50, 3000), st.integers(1, 9)), min_size=1, max_size=6
                ),
            ),
            max_size=40,
        )
    )
    loss = draw(
        st.lists(st.tuples(point_ts, st.integers(0, 600)), max_size=40, unique_by=lambda x: x[0])
    )
    fails = draw(st.lists(point_ts, max_size=5))
    hist = [
        Point(ts, histogram=histogram_of({v / 100.0: c for v, c in buckets}.items()))
        for ts, buckets in owd
    ]
    return [
        (series(Metric.THROUGHPUT, "bw"), [Point(ts, value=v) for ts, v in tp]),
        (series(Metric.FAILURE, "bw"), [Point(ts, note="x") for ts in fails]),
        (series(Metric.OWDELAY, "lat"), hist),
        (series(Metric.PACKETS_LOST, "lat"), [Point(ts, value=float(lost)) for ts, lost in loss]),
        (series(Metric.PACKETS_SENT, "lat"), [Point(ts, value=600.0) for ts, _ in loss]),
        (
            series(Metric.THROUGHPUT, "bw2", src="B", dst="A"),
            [Point(ts, value=v) for ts, v in tp[:7]],
        ),
        *fallback_data(draw),
    ]


def close(x: float | None, y: float | None) -> bool:
    if x is None or y is None:
        return x is y
    return x == pytest.approx(y, rel=1e-9, abs=1e-9)


def same_figures(a: PathStats, b: PathStats) -> None:
    assert a.path == b.path
    for name in ("throughput", "owdelay", "rtt"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x.count, x.latest_ts, x.minimum, x.maximum, x.basis) == (
            y.count,
            y.latest_ts,
            y.minimum,
            y.maximum,
            y.basis,
        ), name
        for stat in ("median", "p10", "p25", "p75", "p90", "p95", "mean", "std", "latest_value"):
            assert close(getattr(x, stat), getattr(y, stat)), (name, stat)
        if x.count:
            assert close(x.quality.completeness, y.quality.completeness), name
        else:  # nothing in the window: rollups know the cadence from older hours (0.0),
            # the direct path may not (None); both say "none of the expected tests"
            assert (x.quality.completeness or 0.0) == (y.quality.completeness or 0.0), name
            assert x.quality.stale and y.quality.stale, name
    assert (a.loss.count, a.loss.packets_sent, a.loss.packets_lost, a.loss.latest_ts) == (
        b.loss.count,
        b.loss.packets_sent,
        b.loss.packets_lost,
        b.loss.latest_ts,
    )
    assert a.loss.basis == b.loss.basis and close(a.loss.rate, b.loss.rate)
    assert a.owdelay.quality.clock_error == b.owdelay.quality.clock_error
    assert a.failures == b.failures


def feed(store: Store, data, cuts: list[int], windows) -> None:
    """One update per cycle ending at each cut, with the points of that cycle."""
    previous = T0 - 4 * 86400
    for end in [*sorted(set(cuts)), T0]:
        batch = [(s, [p for p in pts if previous < p.ts <= end]) for s, pts in data]
        update_rollups(store, batch, end, windows)
        previous = end


WINDOWS = (HOUR, 86400, 2 * 86400)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.lists(point_ts, max_size=6), st.integers(0, HOUR - 1))
def test_rollups_equal_direct_statistics_on_all_points(data, cuts, offset):
    points = mesh_data(data.draw)
    now = T0 + offset  # off the hour: the oldest hour comes from raw points
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "s.sqlite") as store:
        feed(store, points, cuts, WINDOWS)
        update_rollups(store, [], now, WINDOWS)

        def boundary(start: int, end: int):
            return [(s, [p for p in pts if start < p.ts <= end]) for s, pts in points]

        rolled = window_stats(
            store, WINDOWS, now, boundary=boundary, sites=sites_as_mapped(s for s, _ in points)
        )
    for length in WINDOWS:
        direct = path_stats(points, length, now)
        mine = [s for s in rolled if s.window == length]
        got = {s.path: s for s in mine}
        for one in direct:
            if one.path in got:
                same_figures(got[one.path], one)
            else:  # rollups list only paths with a test; direct lists every given series
                assert one.throughput.count == one.owdelay.count == one.loss.count == 0
                assert one.rtt.count == 0


def test_feeding_the_same_window_twice_counts_it_once(tmp_path: Path):
    data = [
        (
            series(Metric.THROUGHPUT, "bw"),
            [Point(T0 - 7200 * i, value=1e9 * (i + 1)) for i in range(6)],
        )
    ]
    with Store(tmp_path / "s.sqlite") as store:
        first = update_rollups(store, data, T0, WINDOWS)
        again = update_rollups(store, data, T0, WINDOWS)
        (stats,) = window_stats(store, (86400,), T0, sites=SITES)
    assert (first.tests, again.tests) == (6, 0)
    assert stats.throughput.count == 6 and stats.throughput.median == pytest.approx(3.5e9)


def test_late_points_are_taken_when_the_caller_says_all_are_new(tmp_path: Path):
    s = series(Metric.THROUGHPUT, "bw")
    with Store(tmp_path / "s.sqlite") as store:
        update_rollups(store, [(s, [Point(T0 - 60, value=1e9)])], T0, WINDOWS)
        update_rollups(store, [(s, [Point(T0 - 7200, value=3e9)])], T0, WINDOWS)  # skipped
        (skipped,) = window_stats(store, (86400,), T0, sites=SITES)
        update_rollups(store, [(s, [Point(T0 - 7200, value=3e9)])], T0, WINDOWS, all_new=True)
        (taken,) = window_stats(store, (86400,), T0, sites=SITES)
    assert skipped.throughput.count == 1
    assert taken.throughput.count == 2 and taken.throughput.latest_value == 1e9


def test_without_raw_points_the_oldest_hour_is_taken_whole_and_said_so(tmp_path: Path):
    s = series(Metric.THROUGHPUT, "bw")
    points = [Point(T0 - 600 * i, value=1e9 + i) for i in range(20)]
    now = T0 + 1200
    with Store(tmp_path / "s.sqlite") as store:
        update_rollups(store, [(s, points)], now, (HOUR,))
        (stats,) = window_stats(store, (HOUR,), now, sites=SITES)
    assert stats.window_start == T0 - HOUR and stats.start == T0 - HOUR
    (expected,) = path_stats([(s, points)], now - (T0 - HOUR), now)
    assert stats.throughput.count == expected.throughput.count == 6
    assert stats.throughput.median == expected.throughput.median


def test_a_steady_cycle_takes_only_new_tests_and_windows_slide(tmp_path: Path):
    s = series(Metric.THROUGHPUT, "bw")
    points = [Point(T0 - 300 * i, value=float(i + 1)) for i in range(0, 2 * 288)]  # 2 days, 5 min
    with Store(tmp_path / "s.sqlite") as store:
        update_rollups(
            store, [(s, [p for p in points if p.ts <= T0 - 3 * HOUR])], T0 - 3 * HOUR, WINDOWS
        )
        for k in range(1, 37):  # 36 five-minute cycles over three hours
            end = T0 - 3 * HOUR + 300 * k
            batch = [p for p in points if end - 300 < p.ts <= end]
            done = update_rollups(store, [(s, batch)], end, WINDOWS)
            assert done.tests == len(batch) == 1
        rolled = {x.window: x for x in window_stats(store, WINDOWS, T0, sites=SITES)}
    for length in WINDOWS:
        (direct,) = path_stats([(s, points)], length, T0)
        same_figures(rolled[length], direct)
    rows = store_rows(tmp_path / "s.sqlite")
    assert rows["rollup_hours"] <= 2 * 24 + 2  # nothing older than the longest window


def store_rows(path: Path) -> dict[str, int]:
    with Store(path) as store:
        return {
            table: store.connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("rollup_streams", "rollup_hours", "rollup_windows")
        }


def test_windows_no_longer_configured_are_forgotten_and_new_ones_built(tmp_path: Path):
    s = series(Metric.THROUGHPUT, "bw")
    points = [Point(T0 - 1800 * i, value=float(i)) for i in range(96)]
    with Store(tmp_path / "s.sqlite") as store:
        update_rollups(store, [(s, points)], T0, (HOUR, 2 * 86400))
        update_rollups(store, [], T0, (HOUR, 86400))  # 1 day: built from the stored hours
        lengths = {r[0] for r in store.connection.execute("SELECT length FROM rollup_windows")}
        (one_day,) = window_stats(store, (86400,), T0, sites=SITES)
    assert lengths == {HOUR, 86400}
    (direct,) = path_stats([(s, points)], 86400, T0)
    same_figures(one_day, direct)
