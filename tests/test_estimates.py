"""Bandwidth estimates from path statistics."""

from __future__ import annotations

from dataclasses import replace

import pytest

from larkps.model import Family, LossSummary, PathKey, PathStats, Provenance, Summary
from larkps.stats.estimates import measured_estimate

NOW = 1_700_000_000


def stats(throughput: Summary) -> PathStats:
    return PathStats(
        path=PathKey("A", "B", Family.IPV4),
        window=86400,
        window_end=NOW,
        throughput=throughput,
        owdelay=Summary(count=0),
        rtt=Summary(count=0),
        loss=LossSummary(count=0),
    )


def test_estimate_uses_median_and_half_spread():
    est = measured_estimate(
        stats(Summary(count=12, median=9e9, p10=7e9, p90=9.4e9, latest_ts=NOW - 600)), 3600
    )
    assert est.forecast_bps == 9e9
    assert est.error_bps == pytest.approx(1.2e9)
    assert est.lower_bound_bps == pytest.approx(7.8e9)
    assert est.provenance is Provenance.MEASURED
    assert not est.stale


def test_old_or_missing_data_is_stale_and_has_no_lower_bound():
    old = measured_estimate(stats(Summary(count=1, median=1e9, latest_ts=NOW - 7200)), 3600)
    assert old.stale
    empty = measured_estimate(stats(Summary(count=0)), 3600)
    assert empty.stale and empty.lower_bound_bps is None and empty.quality == 0.0


# --- issue #4: forecast, measured and modelled figures with provenance ---

import math  # noqa: E402

from larkps.model import (  # noqa: E402
    Metric,
    ModelPolicy,
    Quality,
)
from larkps.stats.estimates import (  # noqa: E402
    bandwidth_estimate,
    bandwidth_estimates,
    calibration,
    mathis_bps,
    mesh_calibration,
    model_bps,
)
from larkps.stats.forecast import Prediction  # noqa: E402

POLICY = ModelPolicy(mss_bytes=1448, mathis_constant=math.sqrt(1.5), path_capacity_bps=10e9)
FRESH = Quality(samples=12, expected=12, completeness=1.0, age=600, stale=False)
STALE = Quality(samples=3, expected=12, completeness=0.25, age=86400, stale=True)


def full_stats(throughput: Summary, rtt_ms: float | None, lost: int, sent: int) -> PathStats:
    rtt = Summary(count=0, quality=STALE)
    if rtt_ms is not None:
        rtt = Summary(count=144, median=rtt_ms, latest_ts=NOW - 60, quality=FRESH)
    return PathStats(
        path=PathKey("A", "B", Family.IPV4),
        window=86400,
        window_end=NOW,
        throughput=throughput,
        owdelay=Summary(count=0),
        rtt=rtt,
        loss=LossSummary(
            count=1440, packets_sent=sent, packets_lost=lost, latest_ts=NOW - 60, quality=FRESH
        ),
    )


def test_mathis_bound_and_its_loss_floor():
    # 1448-byte segments, 50 ms, 1e-4 loss: 1448*8/0.05 * 1.2247/0.01 bits/s
    expected = 1448 * 8 / 0.05 * math.sqrt(1.5) / math.sqrt(1e-4)
    assert mathis_bps(50.0, 1e-4, 10**6, POLICY) == pytest.approx(expected)
    # no loss at all: one lost packet in the 864000 sent is the floor
    floor = 1448 * 8 / 0.05 * math.sqrt(1.5) / math.sqrt(1 / 864000)
    assert mathis_bps(50.0, 0.0, 864000, POLICY) == pytest.approx(floor)
    assert mathis_bps(0.0, 0.01, 1000, POLICY) is None
    # per-test rates only (no packets counted): no floor, and no bound without loss
    unfloored = 1448 * 8 / 0.05 * math.sqrt(1.5) / math.sqrt(0.01)
    assert mathis_bps(50.0, 0.01, 0, POLICY) == pytest.approx(unfloored)
    assert mathis_bps(50.0, 0.0, 0, POLICY) is None


def test_model_is_capped_by_the_path_capacity_and_falls_back_to_twice_the_owd():
    lossless = full_stats(Summary(count=0), 1.0, 0, 864000)
    assert model_bps(lossless, POLICY, 1e9) == 1e9
    owd_only = replace(
        full_stats(Summary(count=0), None, 8640, 864000),
        owdelay=Summary(count=1440, median=25.0, quality=FRESH),
    )
    assert model_bps(owd_only, POLICY, 1e12) == pytest.approx(
        mathis_bps(50.0, 0.01, 864000, POLICY)
    )
    clocked = replace(
        owd_only, owdelay=Summary(count=1440, median=25.0, quality=replace(FRESH, clock_error=True))
    )
    assert model_bps(clocked, POLICY, 1e12) is None


def test_forecast_is_preferred_while_the_throughput_is_fresh():
    tp = Summary(count=12, median=9e9, p10=7e9, p90=9.4e9, latest_ts=NOW - 600, quality=FRESH)
    stats = full_stats(tp, 20.0, 50, 864000)
    est = bandwidth_estimate(stats, Prediction(8.5e9, 4e8, "ewma_0.30", 40), POLICY, 10e9, {})
    assert est.provenance is Provenance.FORECAST and est.method == "nws ewma_0.30"
    assert (est.forecast_bps, est.error_bps, est.stale, est.quality) == (8.5e9, 4e8, False, 1.0)
    measured = bandwidth_estimate(stats, None, POLICY, 10e9, {})
    assert measured.provenance is Provenance.MEASURED and measured.forecast_bps == 9e9


def test_stale_throughput_gives_way_to_a_calibrated_model():
    tp = Summary(count=3, median=2e9, p10=1.8e9, p90=2.2e9, latest_ts=NOW - 86400, quality=STALE)
    stats = full_stats(tp, 20.0, 86, 864000)
    model = mathis_bps(20.0, 86 / 864000, 864000, POLICY)
    ratio = calibration(stats, POLICY, 10e9)
    assert ratio == pytest.approx(2e9 / min(model, 10e9))
    est = bandwidth_estimate(
        stats, Prediction(2e9, 1e8, "last", 3), POLICY, 10e9, {stats.path: 0.5}
    )
    assert est.provenance is Provenance.MODELLED and not est.stale
    assert est.forecast_bps == pytest.approx(min(model * 0.5, 10e9))
    assert est.method == "mathis (path-calibrated)"
    # no calibration at all: the bare bound, with an error bar as large as itself
    bare = bandwidth_estimate(stats, None, POLICY, 10e9, {})
    assert bare.method == "mathis (uncalibrated)" and bare.lower_bound_bps == 0.0


def test_with_nothing_fresh_the_best_stale_figure_is_marked_stale():
    tp = Summary(count=3, median=2e9, latest_ts=NOW - 86400, quality=STALE)
    stats = full_stats(tp, None, 0, 0)
    stats = replace(stats, loss=LossSummary(count=0))
    est = bandwidth_estimate(stats, Prediction(2.1e9, 1e8, "last", 3), POLICY, 10e9, {})
    assert est.provenance is Provenance.FORECAST and est.stale
    nothing = bandwidth_estimate(full_stats(Summary(count=0), None, 0, 0), None, POLICY, 10e9, {})
    assert nothing.forecast_bps is None and nothing.stale and nothing.quality == 0.0


def test_paths_without_throughput_tests_use_the_mesh_calibration():
    measured = Summary(count=12, median=4e9, p10=3e9, p90=5e9, latest_ts=NOW - 60, quality=FRESH)
    calibrating = [
        replace(full_stats(measured, rtt, 86, 864000), path=PathKey(f"S{i}", "B", Family.IPV4))
        for i, rtt in enumerate((10.0, 20.0, 40.0, 80.0))
    ]
    untested = replace(
        full_stats(Summary(count=0), 30.0, 86, 864000), path=PathKey("X", "B", Family.IPV4)
    )
    ratios = [calibration(s, POLICY, 10e9) for s in calibrating]
    median, spread = mesh_calibration(ratios)
    (est,) = bandwidth_estimates([untested], calibrating, {}, POLICY, lambda path: 10e9)
    model = min(mathis_bps(30.0, 86 / 864000, 864000, POLICY), 10e9)
    assert est.provenance is Provenance.MODELLED and est.method == "mathis (mesh-calibrated)"
    assert est.forecast_bps == pytest.approx(min(model * median, 10e9))
    assert est.error_bps == pytest.approx(est.forecast_bps * spread)


# --- a window with one test ---

from larkps.model import Endpoint, Point, Series, SeriesKey  # noqa: E402
from larkps.stats.aggregate import QualityPolicy  # noqa: E402
from larkps.stats.aggregate.paths import path_stats  # noqa: E402
from larkps.stats.estimates import SINGLE_TEST_ERROR, SINGLE_TEST_QUALITY  # noqa: E402


def throughput_series() -> Series:
    return Series(
        key=SeriesKey("arch", "k1", "throughput"),
        source=Endpoint("ps.a.example", "192.0.2.1", "A"),
        destination=Endpoint("ps.b.example", "192.0.2.2", "B"),
        family=Family.IPV4,
        metric=Metric.THROUGHPUT,
        tool="pscheduler/test",
        data_uri="/x",
    )


def test_a_window_with_one_test_has_an_error_bar_and_no_full_quality():
    """Tests every 2 h: the 1 h window holds one, which is all it can expect (completeness 1)."""
    points = [Point(NOW - 7200 * i - 60, value=4e9 + 1e8 * i) for i in range(12)]
    windows = {
        w: path_stats([(throughput_series(), points)], w, NOW, QualityPolicy())[0]
        for w in (3600, 86400)
    }
    one, day = windows[3600], windows[86400]
    assert one.throughput.count == 1 and one.throughput.quality.completeness == 1.0
    assert day.throughput.count == 12
    est = measured_estimate(one, 6 * 3600)
    assert est.forecast_bps == 4e9 and est.error_bps == SINGLE_TEST_ERROR * 4e9
    assert est.quality == SINGLE_TEST_QUALITY and est.lower_bound_bps == 2e9
    bare = measured_estimate(replace(one, throughput=replace(one.throughput, quality=None)), 3600)
    assert bare.quality == SINGLE_TEST_QUALITY and bare.error_bps > 0
    # a forecast over history whose recent errors happen to be zero: still an error bar
    flat = bandwidth_estimate(one, Prediction(4e9, 0.0, "last", 3), POLICY, 10e9, {})
    assert flat.provenance is Provenance.FORECAST
    assert flat.error_bps == SINGLE_TEST_ERROR * 4e9 and flat.quality == SINGLE_TEST_QUALITY
    # twelve tests: the window's own spread and completeness, as before
    full = measured_estimate(day, 6 * 3600)
    assert full.error_bps == pytest.approx((day.throughput.p90 - day.throughput.p10) / 2)
    assert full.quality == day.throughput.quality.completeness
