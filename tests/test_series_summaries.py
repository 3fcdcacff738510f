"""Archive summaries -> PathStats (larkps.stats.aggregate.series_summaries), pure."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from larkps.model import (
    Basis,
    Endpoint,
    Family,
    LossSummary,
    Metric,
    PathKey,
    PathStats,
    Series,
    SeriesKey,
    SeriesSummary,
    Summary,
)
from larkps.stats.aggregate import QualityPolicy
from larkps.stats.aggregate.mixture import mixture_quantiles
from larkps.stats.aggregate.series_summaries import (
    raw_first,
    series_cadences,
    summary_path_stats,
    summary_stats,
)

NOW = 1_735_775_999
DAY = 86400
POLICY = QualityPolicy(stale_after=6 * 3600, min_completeness=0.5, clock_error_ms=10.0)
PATH = PathKey("SITE-A", "SITE-B", Family.IPV4)
PCTS = ((0.1, 10.0), (0.25, 25.0), (0.5, 50.0), (0.75, 75.0), (0.9, 90.0), (0.95, 95.0))


def series(metric: Metric, pair: str = "p1", source: str = "ps.a.example") -> Series:
    return Series(
        SeriesKey("os", pair, metric.value),
        Endpoint(source, "192.0.2.1", "SITE-A"),
        Endpoint("ps.b.example", "198.51.100.1", "SITE-B"),
        Family.IPV4,
        metric,
        "pscheduler/x",
        "index",
    )


def summary(metric: Metric, count: int = 4, window: int = DAY, **fields: Any) -> SeriesSummary:
    defaults: dict[str, Any] = {"latest_ts": NOW - 600}
    pair = str(fields.pop("pair", "p1"))
    source = str(fields.pop("source", "ps.a.example"))
    return SeriesSummary(
        series(metric, pair, source),
        NOW - window + 1,
        NOW,
        count,
        **{**defaults, **fields},
    )


def one(summaries: list[SeriesSummary], window: int = DAY, **kwargs: Any) -> PathStats:
    (stats,) = summary_path_stats(summaries, window, NOW, POLICY, **kwargs)
    return stats


def test_one_series_takes_the_clusters_figures_as_they_are():
    made = summary(Metric.THROUGHPUT, 4, mean=48.0, minimum=1.0, maximum=99.0, percentiles=PCTS)
    stats = one([made])
    tp = stats.throughput
    assert (tp.count, tp.mean, tp.minimum, tp.maximum) == (4, 48.0, 1.0, 99.0)
    assert (tp.p10, tp.p25, tp.median, tp.p75, tp.p90, tp.p95) == tuple(v for _, v in PCTS)
    assert tp.std is None and tp.latest_value is None
    assert (tp.latest_ts, tp.age) == (NOW - 600, 600)
    assert tp.quality is not None and not tp.quality.stale
    assert tp.quality.completeness is None  # no cadence known
    assert (stats.path, stats.window, stats.window_end) == (PATH, DAY, NOW)
    assert stats.hosts == ("ps.a.example", "ps.b.example")
    assert stats.owdelay.count == 0 and stats.loss.count == 0


def test_no_summaries_give_no_paths_and_a_path_known_elsewhere_is_empty_and_stale():
    assert summary_path_stats([], DAY, NOW, POLICY) == []
    week = summary(Metric.THROUGHPUT, 3, window=7 * DAY, percentiles=PCTS, latest_ts=NOW - DAY)
    stats = one([], 3600, known=[week])
    assert stats.throughput.count == 0 and stats.throughput.median is None
    assert stats.throughput.quality is not None and stats.throughput.quality.stale
    assert stats.failures == 0


def test_missing_percentiles_leave_them_unknown_but_keep_the_rest():
    partial = summary(
        Metric.CLOCK_ERROR, 2, mean=0.325, minimum=0.32, maximum=0.33, percentiles=((0.5, 0.325),)
    )
    bare = summary(Metric.THROUGHPUT, 2, mean=5.0, minimum=4.0, maximum=6.0)
    stats = one([partial, bare])
    assert stats.clock_error.median == 0.325 and stats.clock_error.p90 is None
    tp = stats.throughput
    assert (tp.median, tp.p10, tp.p95) == (None, None, None)
    assert (tp.count, tp.mean, tp.minimum, tp.maximum) == (2, 5.0, 4.0, 6.0)


def test_loss_is_sum_lost_over_sum_sent_and_zero_sent_is_no_loss_figure():
    lost = summary(Metric.PACKETS_LOST, 2, total=2.0)
    sent = summary(Metric.PACKETS_SENT, 2, total=1200.0)
    other_lost = summary(Metric.PACKETS_LOST, 1, total=900.0, pair="p2")  # capped at sent
    other_sent = summary(Metric.PACKETS_SENT, 1, total=600.0, pair="p2")
    loss = one([lost, sent, other_lost, other_sent]).loss
    assert (loss.count, loss.packets_lost, loss.packets_sent) == (3, 2 + 600, 1800)
    assert loss.fraction == pytest.approx(602 / 1800)
    nothing_sent = one([lost, replace(sent, total=0.0)]).loss
    assert nothing_sent.count == 0 and nothing_sent.fraction is None
    assert nothing_sent == LossSummary(count=0, quality=nothing_sent.quality)
    unpaired = one([lost]).loss  # a lost count without its sent count says nothing
    assert unpaired.count == 0


def test_loss_falls_back_to_round_trip_counts_then_to_mean_loss_fractions():
    bidir = [
        summary(Metric.PACKETS_LOST_BIDIR, 2, total=5.0, pair="rtt"),
        summary(Metric.PACKETS_SENT, 2, total=100.0, pair="rtt"),
    ]
    counted = one(bidir).loss
    assert (counted.fraction, counted.basis) == (0.05, Basis.COUNTS_BIDIR)
    one_way = [
        summary(Metric.PACKETS_LOST, 1, total=1.0),
        summary(Metric.PACKETS_SENT, 1, total=600.0),
    ]
    assert one([*one_way, *bidir]).loss.basis is Basis.COUNTS  # one-way counts first
    rates = [
        summary(Metric.LOSS_RATE, 3, mean=0.01, pair="p1"),
        summary(Metric.LOSS_RATE, 1, mean=0.05, pair="p2"),
    ]
    rated = one(rates).loss
    assert rated.fraction == pytest.approx((3 * 0.01 + 1 * 0.05) / 4)
    assert (rated.count, rated.packets_sent, rated.basis) == (4, 0, Basis.RATES)
    assert one([*bidir, *rates]).loss.basis is Basis.COUNTS_BIDIR


def test_a_pair_older_than_the_stale_limit_is_stale_and_a_fresh_one_is_not():
    old = summary(Metric.THROUGHPUT, 1, percentiles=PCTS, latest_ts=NOW - 6 * 3600 - 1)
    fresh = summary(Metric.THROUGHPUT, 1, percentiles=PCTS, latest_ts=NOW - 6 * 3600)
    old_q = one([old]).throughput.quality
    fresh_q = one([fresh]).throughput.quality
    assert old_q is not None and old_q.stale and old_q.age == 6 * 3600 + 1
    assert fresh_q is not None and not fresh_q.stale


def test_cadence_is_the_mean_gap_between_a_pairs_documents_in_the_widest_window():
    week = summary(
        Metric.THROUGHPUT,
        20,
        window=7 * DAY,
        percentiles=PCTS,
        first_ts=NOW - 7 * DAY + 100,
        latest_ts=NOW - 100,
        documents=28,
    )
    day = summary(
        Metric.THROUGHPUT,
        3,
        percentiles=PCTS,
        first_ts=NOW - DAY + 100,
        latest_ts=NOW - 100,
        documents=4,
    )
    gap = round((7 * DAY - 200) / 27)
    assert series_cadences([day, week]) == {week.series.key: gap}
    quality = one([day], cadences=series_cadences([day, week])).throughput.quality
    assert quality is not None and quality.cadence == gap
    assert quality.expected == pytest.approx(DAY / gap, abs=1e-3)
    assert quality.completeness == pytest.approx(3 / (DAY / gap))
    assert quality.low == (3 / (DAY / gap) < 0.5)
    lone = summary(Metric.THROUGHPUT, 1, first_ts=NOW - 100, latest_ts=NOW - 100, documents=1)
    assert series_cadences([lone]) == {}


def test_a_one_way_delay_above_the_round_trip_flags_the_clock_in_summaries_too():
    owd = summary(Metric.OWDELAY_MEDIAN, 3, minimum=30.0, percentiles=((0.5, 31.0),))
    rtt = summary(Metric.RTT_MEAN, 3, percentiles=((0.5, 24.0),))
    flagged = one([owd, rtt]).owdelay
    assert flagged.median == 31.0 and flagged.quality is not None and flagged.quality.clock_error
    calm = one([replace(owd, percentiles=((0.5, 12.0),)), rtt]).owdelay
    assert calm.quality is not None and not calm.quality.clock_error


def test_one_way_delay_prefers_per_test_medians_and_flags_clock_trouble():
    median = summary(Metric.OWDELAY_MEDIAN, 3, minimum=2.0, percentiles=((0.5, 12.38),))
    mean = summary(Metric.OWDELAY_MEAN, 3, minimum=2.0, percentiles=((0.5, 12.41),))
    stats = one([mean, median])
    assert stats.owdelay.median == 12.38
    assert stats.owdelay.quality is not None and not stats.owdelay.quality.clock_error
    negative = one([replace(median, minimum=-0.42)]).owdelay
    assert negative.quality is not None and negative.quality.clock_error
    errors = summary(Metric.CLOCK_ERROR, 3, maximum=10.5)
    flagged = one([median, errors]).owdelay
    assert flagged.quality is not None and flagged.quality.clock_error
    assert stats.owdelay.basis is Basis.TEST_MEDIANS
    assert one([mean]).owdelay.basis is Basis.TEST_MEANS
    rtt_min = summary(Metric.RTT_MIN, 2, percentiles=((0.5, 3.0),))
    rtt_mean = summary(Metric.RTT_MEAN, 2, percentiles=((0.5, 4.0),))
    assert one([rtt_min, rtt_mean]).rtt.median == 4.0
    assert one([rtt_min, rtt_mean]).rtt.basis is Basis.TEST_MEANS
    assert one([rtt_min]).rtt.count == 0  # a minimum is no delay distribution


def test_failures_are_counted_and_host_pairs_kept_apart_when_asked():
    a = summary(Metric.THROUGHPUT, 2, percentiles=PCTS)
    b = summary(Metric.THROUGHPUT, 2, percentiles=PCTS, pair="p2", source="ps2.a.example")
    failed = summary(Metric.FAILURE, 1)
    path = one([a, b, failed])
    assert (path.failures, path.throughput.count) == (1, 4)
    pairs = summary_path_stats([a, b, failed], DAY, NOW, POLICY, by_host=True)
    assert [(p.source_host, p.throughput.count, p.failures) for p in pairs] == [
        ("ps.a.example", 2, 1),
        ("ps2.a.example", 2, 0),
    ]


def percentiles_of(samples: np.ndarray) -> tuple[tuple[float, float], ...]:
    return tuple((q, float(np.percentile(samples, 100 * q))) for q, _ in PCTS)


def test_several_host_pairs_mix_their_distributions_by_count():
    rng = np.random.default_rng(7)
    low, high = rng.uniform(0, 10, 3000), rng.uniform(10, 20, 1000)
    parts = [
        summary(
            Metric.THROUGHPUT,
            s.size,
            mean=float(s.mean()),
            minimum=float(s.min()),
            maximum=float(s.max()),
            percentiles=percentiles_of(s),
            pair=name,
        )
        for name, s in (("p1", low), ("p2", high))
    ]
    tp = one(parts).throughput
    both = np.concatenate([low, high])
    assert tp.count == both.size
    assert tp.mean == pytest.approx(float(both.mean()))
    assert (tp.minimum, tp.maximum) == (float(both.min()), float(both.max()))
    for q, value in percentiles_of(both):
        assert getattr(tp, {0.5: "median"}.get(q, f"p{round(q * 100)}")) == pytest.approx(
            value, abs=0.25
        )


def test_mixture_of_point_masses_is_the_smallest_value_reaching_each_level():
    at = {
        v: summary(
            Metric.THROUGHPUT,
            5,
            minimum=v,
            maximum=v,
            pair=str(v),
            percentiles=tuple((q, v) for q, _ in PCTS),
        )
        for v in (100.0, 200.0)
    }
    mixed = mixture_quantiles(list(at.values()))
    assert mixed[0.1] == 100.0 and mixed[0.5] == 100.0
    assert 100.0 < mixed[0.75] < 200.0 and mixed[0.95] <= 200.0


def test_raw_statistics_win_on_a_path_both_kinds_have():
    empty = Summary(count=0)
    raw = PathStats(PATH, DAY, NOW, Summary(count=9, median=1.0), empty, empty, LossSummary(0))
    other = PathKey("SITE-A", "SITE-C", Family.IPV4)
    from_summary = replace(raw, throughput=Summary(count=2, median=2.0))
    merged = raw_first([raw], [from_summary, replace(from_summary, path=other)])
    assert [(s.path, s.throughput.median) for s in merged] == [(PATH, 1.0), (other, 2.0)]
    assert raw_first([raw], []) == [raw]


def test_summary_stats_builds_every_window_and_the_host_pairs_of_one():
    day = summary(Metric.THROUGHPUT, 2, percentiles=PCTS)
    week = replace(day, start=NOW - 7 * DAY + 1, count=5)
    made = summary_stats({3600: [], DAY: [day], 7 * DAY: [week]}, NOW, POLICY, DAY)
    assert [(s.window, s.throughput.count) for s in made.windows] == [
        (3600, 0),
        (DAY, 2),
        (7 * DAY, 5),
    ]
    assert [(s.source_host, s.window) for s in made.host_pairs] == [("ps.a.example", DAY)]
