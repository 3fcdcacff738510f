"""Health of paths and per-site views, from PathStats and the cycle's alarms.

Path health (docs/statistics.md) = data term x alarm factor, where

* data term = mean, over the path's figures that have series (throughput, one-way
  delay, RTT, loss), of 0 when stale else completeness (1 when unknown), halved
  for a one-way delay figure with the clock-error flag; 0 with no figure at all;
* alarm factor = product of ALARM_FACTORS over the path's alarms.

Site health = median path health over the site's partner paths (both directions,
both families) x the product of ALARM_FACTORS over the site's own alarms; 0 with
no partner path.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from larkps.model import (
    Alarm,
    AlarmKind,
    LossSummary,
    PathHealth,
    PathKey,
    PathStats,
    Quality,
    SiteStats,
    Summary,
)

ALARM_FACTORS: dict[AlarmKind, float] = {
    AlarmKind.COMPLETE_LOSS: 0.0,
    AlarmKind.LOSS: 0.5,
    AlarmKind.BANDWIDTH_DROP: 0.5,
    AlarmKind.HIGH_DELAY: 0.75,
    AlarmKind.CLOCK_OFFSET: 0.9,
    AlarmKind.SITE_PATHS: 0.5,
}


def _term(quality: Quality | None, count: int) -> float | None:
    """A figure's contribution; None when the path has no series of it."""
    if quality is None or (count == 0 and quality.expected is None):
        return None
    if quality.stale:
        return 0.0
    term = 1.0 if quality.completeness is None else quality.completeness
    return term * (0.5 if quality.clock_error else 1.0)


def data_term(stats: PathStats) -> float:
    figures: list[Summary | LossSummary] = [
        stats.throughput,
        stats.owdelay,
        stats.rtt,
        stats.loss,
    ]
    terms = [t for f in figures if (t := _term(f.quality, f.count)) is not None]
    return sum(terms) / len(terms) if terms else 0.0


def alarm_factor(kinds: Iterable[AlarmKind]) -> float:
    factor = 1.0
    for kind in kinds:
        factor *= ALARM_FACTORS[kind]
    return factor


def path_health(stats: Iterable[PathStats], alarms: Iterable[Alarm]) -> list[PathHealth]:
    """Health of every path of one window."""
    by_path: dict[str, list[AlarmKind]] = defaultdict(list)
    for alarm in alarms:
        by_path[alarm.subject].append(alarm.kind)
    out = []
    for s in stats:
        kinds = tuple(sorted(set(by_path.get(s.path.name, ())), key=lambda k: k.value))
        health = round(data_term(s) * alarm_factor(kinds), 4)
        out.append(PathHealth(s.path, s.window, health, kinds))
    return out


def _fresh(stats: PathStats) -> bool:
    figures: list[Summary | LossSummary] = [stats.throughput, stats.owdelay, stats.rtt, stats.loss]
    return any(f.count and f.quality is not None and not f.quality.stale for f in figures)


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _pooled_loss(paths: Sequence[PathStats]) -> float | None:
    """Σlost / Σsent over the paths with packet counts; with none, the mean per-test
    rate over the paths with rates only (weighted by their tests)."""
    sent = sum(p.loss.packets_sent for p in paths)
    lost = sum(p.loss.packets_lost for p in paths)
    if sent > 0:
        return lost / sent
    rated = [(p.loss.rate, p.loss.count) for p in paths if p.loss.rate is not None]
    tests = sum(count for _, count in rated)
    return sum(rate * count for rate, count in rated) / tests if tests > 0 else None


def site_stats(
    stats: Sequence[PathStats],
    health: Iterable[PathHealth],
    alarms: Iterable[Alarm],
) -> list[SiteStats]:
    """One SiteStats per site seen in ``stats`` (one window), sorted by site."""
    outbound: dict[str, list[PathStats]] = defaultdict(list)
    inbound: dict[str, list[PathStats]] = defaultdict(list)
    for s in stats:
        outbound[s.path.source_site].append(s)
        inbound[s.path.destination_site].append(s)
    scores: Mapping[PathKey, float] = {h.path: h.health for h in health}
    site_kinds: dict[str, list[AlarmKind]] = defaultdict(list)
    for alarm in alarms:
        if alarm.kind in (AlarmKind.SITE_PATHS, AlarmKind.CLOCK_OFFSET):
            site_kinds[alarm.subject].append(alarm.kind)
    window = stats[0].window if stats else 0
    end = stats[0].window_end if stats else 0
    return [
        _site(site, outbound[site], inbound[site], scores, site_kinds[site], window, end)
        for site in sorted(set(outbound) | set(inbound))
    ]


def _site(
    site: str,
    out: list[PathStats],
    into: list[PathStats],
    scores: Mapping[PathKey, float],
    kinds: list[AlarmKind],
    window: int,
    end: int,
) -> SiteStats:
    partners: dict[str, bool] = {}
    ends = [(s.path.destination_site, s) for s in out] + [(s.path.source_site, s) for s in into]
    for partner, s in ends:
        partners[partner] = partners.get(partner, False) or _fresh(s)
    path_scores = [scores[s.path] for s in out + into if s.path in scores]
    base = statistics.median(path_scores) if path_scores else 0.0
    return SiteStats(
        site=site,
        window=window,
        window_end=end,
        outbound_bps=_median([s.throughput.median for s in out]),
        inbound_bps=_median([s.throughput.median for s in into]),
        outbound_loss=_pooled_loss(out),
        inbound_loss=_pooled_loss(into),
        outbound_owdelay_ms=_median([s.owdelay.median for s in out]),
        inbound_owdelay_ms=_median([s.owdelay.median for s in into]),
        partners=len(partners),
        fresh_partners=sum(partners.values()),
        health=round(base * alarm_factor(sorted(set(kinds), key=lambda k: k.value)), 4),
        alarms=tuple(sorted(set(kinds), key=lambda k: k.value)),
    )
