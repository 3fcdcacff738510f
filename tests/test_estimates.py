"""Bandwidth estimates from path statistics."""

from __future__ import annotations

import pytest

from larkps.estimates import measured_estimate
from larkps.model import Family, LossSummary, PathKey, PathStats, Provenance, Summary

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
