"""Alarm rules at their thresholds, hysteresis, persistence, and their effect on health."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from larkps.model import (
    AlarmKind,
    AlarmPolicy,
    Family,
    LossSummary,
    PathKey,
    PathStats,
    Quality,
    Summary,
)
from larkps.stats.aggregate.sites import ALARM_FACTORS, path_health, site_stats
from larkps.stats.alarm_state import load_alarms, save_alarms
from larkps.stats.alarms import (
    bandwidth_finding,
    clock_findings,
    delay_finding,
    evaluate,
    loss_findings,
    site_findings,
    step,
    to_alarm,
)
from larkps.store.db import Store

NOW = 1_700_000_000
DAY = 86400
POLICY = AlarmPolicy()
FRESH = Quality(samples=60, expected=60, completeness=1.0, age=30, stale=False)


def stats(
    src: str = "A",
    dst: str = "B",
    window: int = DAY,
    owd: Summary | None = None,
    loss: tuple[int, int] = (0, 0),
    throughput: Summary | None = None,
) -> PathStats:
    return PathStats(
        path=PathKey(src, dst, Family.IPV4),
        window=window,
        window_end=NOW,
        throughput=throughput or Summary(count=0, quality=FRESH),
        owdelay=owd or Summary(count=0),
        rtt=Summary(count=0),
        loss=LossSummary(
            count=60 if loss[1] else 0, packets_sent=loss[1], packets_lost=loss[0], quality=FRESH
        ),
    )


def history(values: list[float], step_s: int = 7200) -> tuple[np.ndarray, np.ndarray]:
    ts = NOW - step_s * np.arange(len(values))[::-1]
    return ts.astype(np.int64), np.asarray(values, dtype=float)


def test_bandwidth_drop_needs_both_the_z_score_and_half_the_mean():
    path = PathKey("A", "B", Family.IPV4)
    rng = np.random.default_rng(3)
    base = list(9e9 + rng.normal(0, 2e8, 240))  # 20 days every 2 h
    dropped = base + [3e9] * 12  # the last day at a third
    finding = bandwidth_finding(path, history(dropped), NOW, POLICY)
    values = np.asarray(dropped)
    current = values[-12:].mean()
    z = (current - values.mean()) / values.std()
    assert finding is not None and finding.bad
    assert finding.value == pytest.approx(current) and finding.threshold == pytest.approx(
        values.mean()
    )
    assert f"z {z:.2f}" in finding.detail
    mild = base + [6e9] * 12  # z is far below -2, but only a third below the mean
    assert not bandwidth_finding(path, history(mild), NOW, POLICY).bad
    assert bandwidth_finding(path, history([9e9, 9e9]), NOW, POLICY) is None  # too few tests


def test_loss_thresholds_and_complete_loss():
    def kinds(lost: int, sent: int) -> set[AlarmKind]:
        return {f.kind for f in loss_findings(stats(loss=(lost, sent)), POLICY) if f.bad}

    assert kinds(199, 10000) == set()
    assert kinds(200, 10000) == {AlarmKind.LOSS}
    assert kinds(10000, 10000) == {AlarmKind.COMPLETE_LOSS}
    assert loss_findings(stats(), POLICY) == []  # nothing sent: cannot be judged


def owd(p95: float, mean: float, p25: float, p75: float, count: int = 60, clock: bool = False):
    quality = replace(FRESH, clock_error=clock)
    return Summary(count=count, p95=p95, mean=mean, p25=p25, p75=p75, median=mean, quality=quality)


def test_high_delay_threshold_is_the_larger_of_the_two_rules():
    baseline = stats(window=7 * DAY, owd=owd(p95=20.0, mean=12.0, p25=11.0, p75=16.0))
    limit = max(1.5 * 20.0, 12.0 + 2 * (16.0 - 11.0))  # 30 vs 22
    below = delay_finding(stats(window=3600, owd=owd(29.9, 14, 12, 15)), baseline, POLICY)
    above = delay_finding(stats(window=3600, owd=owd(30.1, 14, 12, 15)), baseline, POLICY)
    assert below is not None and not below.bad and below.threshold == limit
    assert above is not None and above.bad
    wide = stats(window=7 * DAY, owd=owd(p95=20.0, mean=12.0, p25=5.0, p75=20.0))  # IQR rule: 42
    assert delay_finding(stats(window=3600, owd=owd(35, 14, 12, 15)), wide, POLICY).threshold == 42
    few = stats(window=3600, owd=owd(99, 14, 12, 15, count=5))
    assert delay_finding(few, baseline, POLICY) is None
    clocked = stats(window=3600, owd=owd(99, 14, 12, 15, clock=True))
    assert delay_finding(clocked, baseline, POLICY) is None


def test_clock_offset_is_a_median_over_partners():
    true_ms, offset = 10.0, 150.0  # site A's clock is 150 ms ahead
    means = {
        ("A", "B"): true_ms - offset,
        ("B", "A"): true_ms + offset,
        ("A", "C"): true_ms - offset,
        ("C", "A"): true_ms + offset,
        ("B", "C"): true_ms,
        ("C", "B"): true_ms,
    }
    paths = [stats(s, d, owd=Summary(count=60, mean=m)) for (s, d), m in means.items()]
    found = {f.subject: f for f in clock_findings(paths, POLICY)}
    assert found["A"].bad and found["A"].value == pytest.approx(-offset)
    assert not found["B"].bad and found["B"].value == pytest.approx(offset / 2)  # median of 150, 0


def test_a_site_alarm_needs_five_partner_paths():
    records = step(
        {},
        [
            f
            for i in range(5)
            for f in loss_findings(stats("HUB", f"P{i}", loss=(500, 1000)), POLICY)
        ],
        NOW,
        POLICY,
    )
    assert {f.subject for f in site_findings(records.values(), ["HUB"], POLICY) if f.bad} == {"HUB"}
    fewer = {k: r for k, r in records.items() if r.peer != "P4"}
    assert not any(f.bad for f in site_findings(fewer.values(), ["HUB"], POLICY))


def test_hysteresis_raises_at_once_and_clears_after_n_good_windows():
    bad = loss_findings(stats(loss=(500, 10000)), POLICY)
    good = loss_findings(stats(loss=(0, 10000)), POLICY)
    key = (AlarmKind.LOSS.value, "A->B/ipv4")
    records = step({}, bad, NOW, POLICY)
    assert records[key].since == NOW and not to_alarm(records[key]).clearing
    records = step(records, good, NOW + 300, POLICY)
    records = step(records, good, NOW + 600, POLICY)
    assert records[key].good == 2 and to_alarm(records[key]).clearing
    records = step(records, bad, NOW + 900, POLICY)  # flaps back: the count starts again
    assert records[key].good == 0 and records[key].since == NOW
    for k in range(3):
        assert key in records
        records = step(records, good, NOW + 1200 + 300 * k, POLICY)
    assert key not in records
    quiet = step(step({}, bad, NOW, POLICY), [], NOW + POLICY.forget_after + 1, POLICY)
    assert quiet == {}  # never judged again: forgotten


def test_evaluate_reads_each_rule_from_its_window_and_state_persists(tmp_path: Path):
    windows = {
        DAY: [stats("A", "B", loss=(300, 10000)), stats("B", "A", loss=(0, 10000))],
        3600: [stats("A", "B", window=3600, owd=owd(50, 14, 12, 15))],
        7 * DAY: [stats("A", "B", window=7 * DAY, owd=owd(20, 12, 11, 16))],
    }
    records = evaluate(windows, {}, {}, NOW, POLICY)
    kinds = {(r.kind, r.subject) for r in records.values()}
    assert kinds == {(AlarmKind.LOSS, "A->B/ipv4"), (AlarmKind.HIGH_DELAY, "A->B/ipv4")}
    with Store(tmp_path / "s.sqlite") as store:
        save_alarms(store, records)
        assert load_alarms(store) == records
        save_alarms(store, {})
        assert load_alarms(store) == {}


def test_alarms_lower_path_and_site_health():
    tp = Summary(count=12, median=5e9, quality=FRESH)
    paths = [stats("A", p, throughput=tp, loss=(0, 1000)) for p in ("B", "C")]
    healthy = path_health(paths, [])
    assert [h.health for h in healthy] == [1.0, 1.0]
    records = step({}, loss_findings(stats("A", "B", loss=(100, 1000)), POLICY), NOW, POLICY)
    alarms = [to_alarm(r) for r in records.values()]
    hurt = path_health(paths, alarms)
    assert hurt[0].health == ALARM_FACTORS[AlarmKind.LOSS] and hurt[0].alarms == (AlarmKind.LOSS,)
    assert hurt[1].health == 1.0
    (site_a, *_) = site_stats(paths, hurt, alarms)
    assert site_a.site == "A" and site_a.health == pytest.approx(np.median([0.5, 1.0]))
    site_alarm = replace(alarms[0], kind=AlarmKind.SITE_PATHS, subject="A")
    (flagged, *_) = site_stats(paths, hurt, [*alarms, site_alarm])
    assert flagged.health == pytest.approx(site_a.health * ALARM_FACTORS[AlarmKind.SITE_PATHS])
    assert flagged.alarms == (AlarmKind.SITE_PATHS,)
