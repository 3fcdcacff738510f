"""Statistics against independent numpy computations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from larkps.histogram import EMPTY, histogram_of
from larkps.model import Endpoint, Family, Metric, Point, Series, SeriesKey
from larkps.stats.aggregate import histogram_summary, loss_summary, path_stats, weighted_percentiles

NOW = 1_700_086_400
DAY = 86400


def series(metric: Metric, key: str = "k1", src: str = "A", dst: str = "B") -> Series:
    event = {Metric.THROUGHPUT: "throughput", Metric.OWDELAY: "histogram-owdelay"}.get(
        metric, metric.value
    )
    return Series(
        key=SeriesKey("arch", key, event),
        source=Endpoint(f"ps.{src.lower()}.example", "192.0.2.1", src),
        destination=Endpoint(f"ps.{dst.lower()}.example", "192.0.2.2", dst),
        family=Family.IPV4,
        metric=metric,
        tool="pscheduler/test",
        data_uri="/x",
    )


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(-50, 500, allow_nan=False), st.integers(1, 40)),
        min_size=1,
        max_size=30,
    ),
    st.lists(st.floats(0, 1), min_size=1, max_size=5),
)
def test_weighted_percentiles_equal_numpy_on_expanded_samples(buckets, quantiles):
    values = np.array([v for v, _ in buckets])
    counts = np.array([c for _, c in buckets])
    expected = np.percentile(np.repeat(values, counts), [100 * q for q in quantiles])
    got = weighted_percentiles(values, counts, quantiles)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_histogram_summary_merges_histograms():
    first = histogram_of([(10.0, 3), (11.0, 1)])
    second = histogram_of([(9.5, 2), (12.0, 4)])
    summary = histogram_summary([(100, first), (160, second)])
    samples = np.repeat([10.0, 11.0, 9.5, 12.0], [3, 1, 2, 4])
    assert summary.count == 2
    assert summary.median == pytest.approx(np.median(samples))
    assert summary.p10 == pytest.approx(np.percentile(samples, 10))
    assert summary.mean == pytest.approx(samples.mean())
    assert (summary.minimum, summary.maximum, summary.latest_ts) == (9.5, 12.0, 160)


def test_empty_histograms_give_count_zero():
    assert histogram_summary([]).count == 0
    assert histogram_summary([(1, EMPTY)]).median is None


def test_loss_is_sum_of_lost_over_sum_of_sent_not_mean_of_fractions():
    counts = {("k", 1): [0.0, 1000.0], ("k", 2): [10.0, 10.0], ("k", 3): [5.0, None]}
    loss = loss_summary(counts)
    assert loss.count == 2
    assert loss.fraction == pytest.approx(10 / 1010)
    assert loss.latest_ts == 2


def test_path_stats_window_is_exclusive_at_start_inclusive_at_end():
    points = [
        Point(NOW - DAY, value=1e9),
        Point(NOW - DAY + 1, value=2e9),
        Point(NOW, value=4e9),
        Point(NOW + 1, value=8e9),
    ]
    (stats,) = path_stats([(series(Metric.THROUGHPUT), points)], DAY, NOW)
    assert stats.throughput.count == 2
    assert stats.throughput.median == pytest.approx(3e9)
    assert stats.throughput.latest_ts == NOW


def test_path_stats_group_series_of_a_site_pair_and_count_failures():
    tp = [Point(NOW - 3600 * i, value=float(i) * 1e8) for i in range(1, 7)]
    owd = [Point(NOW - 60 * i, histogram=histogram_of([(5.0 + i, 600)])) for i in range(10)]
    lost = [Point(NOW - 60 * i, value=float(i % 2)) for i in range(10)]
    sent = [Point(NOW - 60 * i, value=600.0) for i in range(10)]
    data = [
        (series(Metric.THROUGHPUT, "bw"), tp),
        (series(Metric.FAILURE, "bw"), [Point(NOW - 10, note="boom")]),
        (series(Metric.OWDELAY, "lat"), owd),
        (series(Metric.PACKETS_LOST, "lat"), lost),
        (series(Metric.PACKETS_SENT, "lat"), sent),
        (series(Metric.THROUGHPUT, "other", src="B", dst="A"), tp[:1]),
    ]
    first, second = path_stats(data, DAY, NOW)
    assert (first.path.source_site, second.path.source_site) == ("A", "B")
    assert first.throughput.median == pytest.approx(np.median([i * 1e8 for i in range(1, 7)]))
    assert first.throughput.p90 == pytest.approx(np.percentile([i * 1e8 for i in range(1, 7)], 90))
    assert first.owdelay.median == pytest.approx(np.median(np.repeat(np.arange(5.0, 15.0), 600)))
    assert first.loss.fraction == pytest.approx(5 / 6000)
    assert first.failures == 1
    assert second.owdelay.count == 0 and second.loss.fraction is None


def test_no_points_gives_empty_statistics_not_an_error():
    (stats,) = path_stats([(series(Metric.THROUGHPUT), [])], DAY, NOW)
    assert stats.throughput.count == 0
    assert stats.throughput.median is None


# --- issue #4: more statistics, the columnar core, CSR percentiles, quality, edge cases ---

from larkps.stats.aggregate import (  # noqa: E402
    QualityPolicy,
    columnar,
    describe,
    grouped_stats,
    merge_weighted,
)
from larkps.stats.aggregate.clean import clean_series  # noqa: E402
from larkps.stats.aggregate.weighted import QUANTILES, csr_percentile  # noqa: E402

buckets_strategy = st.lists(
    st.tuples(st.floats(-50, 500, allow_nan=False), st.integers(1, 40)), min_size=1, max_size=30
)


@settings(max_examples=200, deadline=None)
@given(buckets_strategy)
def test_describe_equals_numpy_on_expanded_samples(buckets):
    values, counts = merge_weighted(
        np.array([v for v, _ in buckets]), np.array([c for _, c in buckets])
    )
    samples = np.repeat(values, counts)
    described = describe(values, counts)
    assert described is not None
    expected = np.percentile(samples, [100 * q for q in QUANTILES])
    assert described.quantiles == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert described.std == pytest.approx(samples.std(), rel=1e-9, abs=1e-9)
    assert described.mean == pytest.approx(samples.mean(), rel=1e-12, abs=1e-9)
    assert (described.minimum, described.maximum) == (samples.min(), samples.max())
    assert described.samples == samples.size


@settings(max_examples=100, deadline=None)
@given(st.lists(buckets_strategy, min_size=1, max_size=8), st.floats(0, 1))
def test_csr_percentile_equals_numpy_per_histogram(histograms, q):
    sorted_hists = [sorted(h) for h in histograms]
    values = np.array([v for h in sorted_hists for v, _ in h])
    counts = np.array([c for h in sorted_hists for _, c in h])
    offsets = np.cumsum([0] + [len(h) for h in sorted_hists])
    got = csr_percentile(values, counts, offsets, q)
    for i, h in enumerate(sorted_hists):
        samples = np.repeat([v for v, _ in h], [c for _, c in h])
        assert got[i] == pytest.approx(np.percentile(samples, 100 * q), rel=1e-9, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.integers(-20, 20), st.floats(-1e6, 1e6)),
        min_size=0,
        max_size=80,
    ),
    st.integers(-10, 10),
    st.integers(0, 30),
)
def test_grouped_stats_equal_numpy_per_group(rows, start, length):
    rows = sorted(rows, key=lambda r: r[0]) if rows and rows[0][0] % 2 else rows  # both orders
    group = np.array([g for g, _, _ in rows], dtype=np.int64)
    ts = np.array([t for _, t, _ in rows], dtype=np.int64)
    value = np.array([v for _, _, v in rows], dtype=np.float64)
    end = start + length
    stats = grouped_stats(group, ts, value, start, end)
    expected_groups = sorted({g for g, t, _ in rows if start < t <= end})
    assert stats.groups.tolist() == expected_groups
    for row, g in enumerate(expected_groups):
        inside = [(t, v) for gg, t, v in rows if gg == g and start < t <= end]
        values = np.array([v for _, v in inside])
        assert stats.count[row] == len(inside)
        assert stats.quantiles[row] == pytest.approx(
            np.percentile(values, [100 * q for q in QUANTILES]), rel=1e-9, abs=1e-6
        )
        assert stats.mean[row] == pytest.approx(values.mean(), rel=1e-9, abs=1e-6)
        assert stats.std[row] == pytest.approx(values.std(), rel=1e-6, abs=1e-6)
        newest = max(t for t, _ in inside)
        assert stats.latest_ts[row] == newest
        assert stats.latest_value[row] == [v for t, v in inside if t == newest][-1]


def test_summary_carries_p95_std_latest_value_and_age():
    values = [float(v) for v in range(1, 21)]
    points = [Point(NOW - 3600 * (19 - i), value=v * 1e8) for i, v in enumerate(values)]
    (stats,) = path_stats([(series(Metric.THROUGHPUT), points)], DAY, NOW)
    tp = stats.throughput
    samples = np.array(values) * 1e8
    assert tp.p95 == pytest.approx(np.percentile(samples, 95))
    assert tp.std == pytest.approx(samples.std())
    assert (tp.p25, tp.p75) == pytest.approx(tuple(np.percentile(samples, [25, 75])))
    assert tp.latest_value == 20e8 and tp.latest_ts == NOW and tp.age == 0


def test_histogram_latest_value_is_the_newest_tests_median():
    owd = [
        Point(NOW - 60, histogram=histogram_of([(5.0, 3), (9.0, 1)])),
        Point(NOW, histogram=histogram_of([(7.0, 2)])),
    ]
    (stats,) = path_stats([(series(Metric.OWDELAY), owd)], 3600, NOW)
    assert stats.owdelay.latest_value == 7.0
    assert stats.owdelay.count == 2


def cadence_points(n: int, step: int, end: int = NOW) -> list[Point]:
    return [Point(end - step * i, value=1e9 + i) for i in range(n)]


def test_completeness_comes_from_the_cadence_and_age_marks_staleness():
    policy = QualityPolicy(stale_after=3 * 3600, min_completeness=0.5)
    full = cadence_points(12, 7200)  # every 2 h over a day
    (stats,) = path_stats([(series(Metric.THROUGHPUT), full)], DAY, NOW, policy)
    q = stats.throughput.quality
    assert q.cadence == 7200 and q.expected == 12 and q.completeness == 1.0
    assert not q.stale and not q.low and q.trusted
    # the same series, but the last 8 tests missing: 4 of 12 expected, 16 h old
    old = [p for p in full if p.ts <= NOW - 8 * 7200]
    (stats,) = path_stats([(series(Metric.THROUGHPUT), old)], DAY, NOW, policy)
    q = stats.throughput.quality
    assert q.completeness == pytest.approx(4 / 12)
    assert q.age == 8 * 7200 and q.stale and q.low and not q.trusted
    assert stats.throughput.count == 4  # marked, never dropped


def test_empty_window_is_stale_with_no_figures():
    points = cadence_points(5, 7200, end=NOW - 2 * DAY)
    (stats,) = path_stats([(series(Metric.THROUGHPUT), points)], DAY, NOW)
    assert stats.throughput.count == 0 and stats.throughput.median is None
    q = stats.throughput.quality
    assert q.stale and q.samples == 0 and q.completeness == 0.0 and q.cadence == 7200


def test_one_point_has_every_statistic_and_unknown_cadence():
    (stats,) = path_stats([(series(Metric.THROUGHPUT), [Point(NOW - 5, value=3e9)])], DAY, NOW)
    tp = stats.throughput
    assert (tp.count, tp.median, tp.p10, tp.p95, tp.minimum, tp.maximum) == (
        1,
        3e9,
        3e9,
        3e9,
        3e9,
        3e9,
    )
    assert tp.std == 0.0 and tp.quality.completeness is None and tp.quality.cadence is None


def test_all_nan_and_absurd_values_are_rejected_and_counted():
    points = [Point(NOW - i, value=float("nan")) for i in range(3)]
    points += [Point(NOW - 10, value=-5.0), Point(NOW - 11, value=float("inf"))]
    points += [Point(NOW - 12, value=1e20)]  # 100 Ebit/s
    (stats,) = path_stats([(series(Metric.THROUGHPUT), points)], DAY, NOW)
    assert stats.throughput.count == 0 and stats.throughput.quality.rejected == 6
    good = [*points, Point(NOW - 20, value=2e9)]
    (stats,) = path_stats([(series(Metric.THROUGHPUT), good)], DAY, NOW)
    assert stats.throughput.count == 1 and stats.throughput.median == 2e9


def test_garbage_histogram_buckets_are_dropped():
    bad = ((float("nan"), 3), (5.0, 10), (2e6, 4), (6.0, 0), (7.0, -2))
    (stats,) = path_stats(
        [(series(Metric.OWDELAY), [Point(NOW, histogram=histogram_of(bad))])], 3600, NOW
    )
    assert stats.owdelay.count == 1 and stats.owdelay.median == 5.0
    assert stats.owdelay.quality.rejected == 7  # 3 NaN + 4 beyond 100 s


def test_duplicate_timestamps_are_one_test_the_last_reported_wins():
    points = [Point(NOW - 60, value=1e9), Point(NOW - 60, value=3e9), Point(NOW, value=5e9)]
    (stats,) = path_stats([(series(Metric.THROUGHPUT), points)], DAY, NOW)
    assert stats.throughput.count == 2
    assert stats.throughput.median == pytest.approx(4e9)


def test_negative_delays_are_kept_and_flag_clock_error():
    owd = [Point(NOW - 60 * i, histogram=histogram_of([(-3.0, 500), (1.0, 100)])) for i in range(5)]
    (stats,) = path_stats([(series(Metric.OWDELAY), owd)], 3600, NOW)
    assert stats.owdelay.median == -3.0 and stats.owdelay.minimum == -3.0
    assert stats.owdelay.quality.clock_error


def test_large_time_error_estimates_flag_the_delays_not_the_rtt():
    owd = [Point(NOW - 60 * i, histogram=histogram_of([(12.0, 600)])) for i in range(5)]
    terr = [Point(NOW - 60 * i, value=30.0) for i in range(5)]
    rtt = [Point(NOW - 60 * i, histogram=histogram_of([(24.0, 10)])) for i in range(5)]
    data = [
        (series(Metric.OWDELAY, "lat"), owd),
        (series(Metric.CLOCK_ERROR, "lat"), terr),
        (series(Metric.RTT, "rtt"), rtt),
    ]
    policy = QualityPolicy(clock_error_ms=10.0)
    (stats,) = path_stats(data, 3600, NOW, policy)
    assert stats.owdelay.quality.clock_error and not stats.rtt.quality.clock_error
    assert stats.clock_error.maximum == 30.0
    (calm,) = path_stats(data, 3600, NOW, QualityPolicy(clock_error_ms=50.0))
    assert not calm.owdelay.quality.clock_error


@pytest.mark.parametrize(
    ("one_way", "round_trip", "flagged"), [(30.0, 24.0, True), (12.0, 24.0, False)]
)
def test_a_one_way_delay_above_the_round_trip_flags_the_clock_without_estimates(
    one_way: float, round_trip: float, flagged: bool
):
    """No time-error-estimates series at all: one way longer than there and back is a
    clock offset (the sender's clock behind the receiver's)."""
    owd = [Point(NOW - 60 * i, histogram=histogram_of([(one_way, 600)])) for i in range(5)]
    rtt = [Point(NOW - 60 * i, histogram=histogram_of([(round_trip, 10)])) for i in range(5)]
    data = [(series(Metric.OWDELAY, "lat"), owd), (series(Metric.RTT, "rtt"), rtt)]
    (stats,) = path_stats(data, 3600, NOW, QualityPolicy(clock_error_ms=10.0))
    assert stats.owdelay.median == one_way and stats.rtt.median == round_trip
    assert stats.owdelay.quality.clock_error is flagged
    assert not stats.rtt.quality.clock_error
    (alone,) = path_stats(data[:1], 3600, NOW)  # no RTT to compare with: no verdict
    assert not alone.owdelay.quality.clock_error


def test_a_path_that_vanishes_mid_window_is_kept_stale_and_incomplete():
    policy = QualityPolicy(stale_after=2 * 3600)
    gone = cadence_points(12, 7200, end=NOW - DAY // 2)  # stopped 12 h ago
    appeared = cadence_points(3, 7200, end=NOW)  # started 5 h ago
    data = [
        (series(Metric.THROUGHPUT, "gone", src="A", dst="B"), gone),
        (series(Metric.THROUGHPUT, "new", src="C", dst="D"), appeared),
    ]
    vanished, fresh = path_stats(data, DAY, NOW, policy)
    assert vanished.throughput.count == 6 and vanished.throughput.quality.stale
    assert vanished.throughput.quality.completeness == pytest.approx(0.5)
    assert fresh.throughput.count == 3 and not fresh.throughput.quality.stale
    assert fresh.throughput.quality.completeness == pytest.approx(3 / 12)


def test_retransmits_per_test_and_per_host_pair_statistics():
    retrans = [Point(NOW - 7200 * i, value=float(i)) for i in range(5)]
    other = series(Metric.THROUGHPUT, "bw2")
    other = Series(
        other.key,
        other.source,
        Endpoint("ps2.b.example", "192.0.2.9", "B"),
        other.family,
        other.metric,
        other.tool,
        other.data_uri,
    )
    data = [
        (series(Metric.RETRANSMITS, "bw"), retrans),
        (series(Metric.THROUGHPUT, "bw"), [Point(NOW - 10, value=1e9)]),
        (other, [Point(NOW - 20, value=3e9)]),
    ]
    (site,) = path_stats(data, DAY, NOW)
    assert site.retransmits.count == 5 and site.retransmits.median == 2.0
    assert site.throughput.count == 2 and site.source_host is None
    pairs = path_stats(data, DAY, NOW, by_host=True)
    assert [(p.source_host, p.destination_host) for p in pairs] == [
        ("ps.a.example", "ps.b.example"),
        ("ps.a.example", "ps2.b.example"),
    ]
    assert [p.throughput.median for p in pairs] == [1e9, 3e9]


def test_clean_series_keeps_histograms_sorted_per_test():
    h = ((9.0, 1), (3.0, 2))  # unsorted input
    clean = clean_series(series(Metric.OWDELAY), [Point(NOW, histogram=histogram_of(h))], NOW)
    assert clean.bucket_values.tolist() == [3.0, 9.0] and clean.values.tolist() == [3.0]


@pytest.mark.parametrize("rows", [5_000, 250_000])
def test_grouped_stats_on_several_threads_equal_one_thread(rows, monkeypatch):
    """Split into runs of whole groups (also where one group spans the middle), the
    statistics are the same arrays, bit for bit."""
    monkeypatch.setattr(columnar, "PARALLEL_MIN_ROWS", 1)
    rng = np.random.default_rng(rows)
    group = rng.integers(0, 60, rows)
    group[rows // 3 : rows // 3 * 2] = 7  # one group across the middle cut
    ts = rng.integers(0, 1000, rows)
    value = rng.normal(10, 3, rows)
    value[::97] = np.nan
    one = grouped_stats(group, ts, value, 100, 900, threads=1)
    for threads in (2, 3):
        many = grouped_stats(group, ts, value, 100, 900, threads=threads)
        for name in ("groups", "count", "mean", "std", "minimum", "maximum", "quantiles"):
            assert np.array_equal(getattr(one, name), getattr(many, name)), name
        assert np.array_equal(one.latest_ts, many.latest_ts)
        assert np.array_equal(one.latest_value, many.latest_value)
    assert int(one.count.sum()) == int((~np.isnan(value) & (ts > 100) & (ts <= 900)).sum())
