"""Statistics against independent numpy computations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from larkps.aggregate import histogram_summary, loss_summary, path_stats, weighted_percentiles
from larkps.model import Endpoint, Family, Metric, Point, Series, SeriesKey

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
    first = ((10.0, 3), (11.0, 1))
    second = ((9.5, 2), (12.0, 4))
    summary = histogram_summary([(100, first), (160, second)])
    samples = np.repeat([10.0, 11.0, 9.5, 12.0], [3, 1, 2, 4])
    assert summary.count == 2
    assert summary.median == pytest.approx(np.median(samples))
    assert summary.p10 == pytest.approx(np.percentile(samples, 10))
    assert summary.mean == pytest.approx(samples.mean())
    assert (summary.minimum, summary.maximum, summary.latest_ts) == (9.5, 12.0, 160)


def test_empty_histograms_give_count_zero():
    assert histogram_summary([]).count == 0
    assert histogram_summary([(1, ())]).median is None


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
    owd = [Point(NOW - 60 * i, histogram=((5.0 + i, 600),)) for i in range(10)]
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
