"""Per-site views: medians over partner paths, pooled loss, fresh partners, health."""

from __future__ import annotations

import statistics

import pytest

from larkps.model import Family, LossSummary, PathKey, PathStats, Quality, Summary
from larkps.stats.aggregate.sites import data_term, path_health, site_stats

NOW = 1_700_000_000
FRESH = Quality(samples=12, expected=12.0, completeness=1.0, age=60, stale=False)
HALF = Quality(samples=6, expected=12.0, completeness=0.5, age=60, stale=False)
STALE = Quality(samples=2, expected=12.0, completeness=2 / 12, age=86400, stale=True)


def path(
    src: str, dst: str, bps: float, owd: float, lost: int, sent: int, q: Quality, fam=Family.IPV4
):
    return PathStats(
        path=PathKey(src, dst, fam),
        window=86400,
        window_end=NOW,
        throughput=Summary(count=q.samples, median=bps, quality=q),
        owdelay=Summary(count=q.samples, median=owd, quality=q),
        rtt=Summary(count=0, quality=Quality()),  # no RTT series: not counted
        loss=LossSummary(count=q.samples, packets_sent=sent, packets_lost=lost, quality=q),
    )


def test_site_figures_are_medians_over_partners_and_pooled_loss():
    paths = [
        path("A", "B", 1e9, 10.0, 10, 1000, FRESH),
        path("A", "C", 3e9, 20.0, 0, 3000, FRESH),
        path("A", "C", 5e9, 22.0, 0, 1000, STALE, Family.IPV6),
        path("B", "A", 2e9, 11.0, 5, 500, FRESH),
        path("C", "A", 4e9, 19.0, 0, 500, STALE),
    ]
    health = path_health(paths, [])
    a, b, c = site_stats(paths, health, [])
    assert a.site == "A" and a.partners == 2 and a.fresh_partners == 2
    assert a.outbound_bps == statistics.median([1e9, 3e9, 5e9])
    assert a.inbound_bps == statistics.median([2e9, 4e9])
    assert a.outbound_loss == pytest.approx(10 / 5000) and a.inbound_loss == pytest.approx(5 / 1000)
    assert a.outbound_owdelay_ms == 20.0 and a.inbound_owdelay_ms == 15.0
    assert a.health == pytest.approx(statistics.median([h.health for h in health]))
    assert (c.partners, c.fresh_partners) == (1, 1)  # A->C/ipv4 is fresh although C->A is not
    assert b.outbound_bps == 2e9 and b.inbound_bps == 1e9


def test_path_health_data_term():
    assert data_term(path("A", "B", 1e9, 1.0, 0, 10, FRESH)) == 1.0
    assert data_term(path("A", "B", 1e9, 1.0, 0, 10, HALF)) == 0.5
    assert data_term(path("A", "B", 1e9, 1.0, 0, 10, STALE)) == 0.0
    clocked = path("A", "B", 1e9, -1.0, 0, 10, FRESH)
    clocked = PathStats(
        **{
            **{f: getattr(clocked, f) for f in clocked.__slots__},
            "owdelay": Summary(
                count=12,
                median=-1.0,
                quality=Quality(
                    samples=12,
                    expected=12.0,
                    completeness=1.0,
                    age=60,
                    stale=False,
                    clock_error=True,
                ),
            ),
        }
    )
    assert data_term(clocked) == pytest.approx((1.0 + 0.5 + 1.0) / 3)
    nothing = PathStats(
        PathKey("A", "B", Family.IPV4),
        3600,
        NOW,
        Summary(0),
        Summary(0),
        Summary(0),
        LossSummary(0),
    )
    assert data_term(nothing) == 0.0
