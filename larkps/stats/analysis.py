"""The aggregate half of a cycle: points -> statistics, quality, forecasts, estimates, alarms.

With a state store the cycle's new points go into the rollups and every window is
read back from them, sites mapped by the site map in force now (and alarm
hysteresis persists, except for alarms naming a site that map no longer yields:
their figures are re-judged under the new names); without one, every window is
computed directly from the points handed in, and windows longer than what was
fetched show it in their completeness. The stages called here are pure; this
module only wires them and touches the store through the rollups and alarm_state.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from larkps.config.calibration import CalibrationPolicy
from larkps.config.settings import Settings
from larkps.model import (
    EGRESS,
    INGRESS,
    Alarm,
    AlarmPolicy,
    BandwidthEstimate,
    Forecast,
    Metric,
    ModelPolicy,
    PathHealth,
    PathKey,
    PathStats,
    Point,
    Series,
    SiteStats,
)
from larkps.stats.aggregate import QualityPolicy
from larkps.stats.aggregate.history import History, point_histories
from larkps.stats.aggregate.paths import path_stats, path_stats_windows
from larkps.stats.aggregate.series_summaries import SummaryStats, raw_first
from larkps.stats.aggregate.sites import path_health, site_stats
from larkps.stats.alarm_state import load_alarms, save_alarms
from larkps.stats.alarms import AlarmRecord, evaluate, to_alarm
from larkps.stats.calibration_cycle import calibrate_estimates, pair_calibrations
from larkps.stats.estimates import bandwidth_estimates
from larkps.stats.forecast import Prediction, forecast
from larkps.stats.rollups import StreamKind
from larkps.stats.rollups.store import RollupUpdate, update_rollups
from larkps.stats.rollups.views import SiteOf, histories, no_site_map, stream_sites, window_stats
from larkps.store.db import Store

FORECAST_METRICS = (Metric.THROUGHPUT, Metric.OWDELAY, Metric.RTT)


@dataclass(frozen=True, slots=True)
class Analysis:
    """Everything the aggregate half of one cycle produced."""

    windows: tuple[PathStats, ...]  # every configured window, per site path
    host_pairs: tuple[PathStats, ...]  # the default window, per host pair
    sites: tuple[SiteStats, ...]  # every configured window
    health: tuple[PathHealth, ...]  # every configured window
    forecasts: tuple[Forecast, ...]
    estimates: tuple[BandwidthEstimate, ...]
    alarms: tuple[Alarm, ...]
    rollups: RollupUpdate | None = None

    def window(self, length: int) -> list[PathStats]:
        return [s for s in self.windows if s.window == length]


@dataclass(frozen=True, slots=True)
class RawWindow:
    """Raw points of ``(start, end]``, to cut rollup windows exactly at their old end."""

    data: Sequence[tuple[Series, Sequence[Point]]]
    start: int
    end: int

    def loader(self, start: int, end: int) -> list[tuple[Series, list[Point]]] | None:
        if start < self.start or end > self.end:
            return None
        return [(s, [p for p in points if start < p.ts <= end]) for s, points in self.data]


@dataclass(frozen=True, slots=True)
class Policies:
    """The parts of the settings the aggregate half reads."""

    windows: tuple[int, ...]
    default: int
    quality: QualityPolicy
    alarms: AlarmPolicy
    model: ModelPolicy
    capacities: Mapping[tuple[str, str], float]  # ThrottleSettings.capacities
    calibration: CalibrationPolicy | None = None  # [calibration] enabled: its rules
    commit_calibration: bool = True  # publishing cycles keep the applied ratios

    @classmethod
    def from_settings(cls, settings: Settings, default: int | None = None) -> Policies:
        windows = settings.windows
        chosen = default or windows.default
        return cls(
            windows=tuple(sorted({*windows.windows, chosen})),
            default=chosen,
            quality=QualityPolicy(windows.stale_after, **dataclasses.asdict(settings.quality)),
            alarms=settings.alarms,
            model=settings.model,
            capacities=settings.throttle.capacities,
            calibration=settings.calibration.policy if settings.calibration.enabled else None,
        )

    def capacity(self, path: PathKey) -> float:
        """Model cap: the path capacity, or less where the sites' capacities say so."""
        return min(
            self.model.path_capacity_bps,
            self.capacities.get((path.source_site, EGRESS), math.inf),
            self.capacities.get((path.destination_site, INGRESS), math.inf),
        )

    @property
    def needed(self) -> tuple[int, ...]:
        """Windows to compute: the configured ones and those the alarm rules read."""
        return tuple(sorted({*self.windows, *self.alarms.windows}))


def analyse(
    data: Sequence[tuple[Series, Sequence[Point]]],
    now: int,
    policies: Policies,
    store: Store | None = None,
    all_new: bool = False,
    raw: RawWindow | None = None,
    summarised: SummaryStats | None = None,
    sites: SiteOf = no_site_map,
) -> Analysis:
    """One cycle's aggregate half (see the module docstring).

    ``raw``: points of a recent window at hand (say the published window loaded back
    from the store); rollup windows whose oldest hour lies inside it are exact.
    ``summarised``: statistics of summary-mode archives, merged in (a path the raw
    data has keeps its raw figures); they have no history, so no forecast.
    ``sites``: the site of a stored endpoint now (the sources' site maps).
    """
    update = None
    if store is not None:
        update = update_rollups(store, data, now, policies.needed, all_new=all_new)
        edge = raw.loader if raw is not None else None
        quality = policies.quality
        stats = window_stats(store, policies.needed, now, quality, boundary=edge, sites=sites)
        hosts = window_stats(
            store, (policies.default,), now, quality, by_host=True, boundary=edge, sites=sites
        )
        kinds = (StreamKind.THROUGHPUT, StreamKind.OWDELAY, StreamKind.RTT)
        history = histories(store, now, kinds, sites=sites)
        previous, known = load_alarms(store), stream_sites(store, sites)
    else:
        by_window = path_stats_windows(data, policies.needed, now, policies.quality)
        stats = [s for w in policies.needed for s in by_window[w]]
        hosts = path_stats(data, policies.default, now, policies.quality, by_host=True)
        history = point_histories(data, now)
        previous, known = {}, set()
    if summarised is not None:
        stats = raw_first(stats, summarised.windows)
        hosts = raw_first(hosts, summarised.host_pairs)
    known |= {end for s in stats for end in (s.path.source_site, s.path.destination_site)}
    previous = current_alarms(previous, known)
    records = _alarms(stats, history, previous, now, policies)
    if store is not None:
        save_alarms(store, records)
    results = _results(stats, hosts, history, records, now, policies, update)
    if store is None or policies.calibration is None:
        return results
    return _calibrated(results, store, now, policies, sites)


def _calibrated(
    results: Analysis, store: Store, now: int, policies: Policies, sites: SiteOf
) -> Analysis:
    """The analysis with each estimate calibrated by its pair's achieved transfers."""

    def site_of(host: str) -> str | None:
        site = sites("", host, "")
        return None if site == host else site

    assert policies.calibration is not None
    found = pair_calibrations(
        store, results.estimates, now, policies.calibration, site_of, policies.commit_calibration
    )
    estimates = calibrate_estimates(results.estimates, found)
    return dataclasses.replace(results, estimates=estimates)


def current_alarms(
    records: Mapping[tuple[str, str], AlarmRecord], sites: set[str]
) -> dict[tuple[str, str], AlarmRecord]:
    """The records whose sites (and peer, for a path) are all among ``sites``."""
    return {
        key: r for key, r in records.items() if r.site in sites and (not r.peer or r.peer in sites)
    }


def _alarms(
    stats: Iterable[PathStats],
    history: Mapping[tuple[PathKey, Metric], History],
    previous: Mapping[tuple[str, str], AlarmRecord],
    now: int,
    policies: Policies,
) -> dict[tuple[str, str], AlarmRecord]:
    by_window: dict[int, list[PathStats]] = defaultdict(list)
    for s in stats:
        by_window[s.window].append(s)
    throughput = {path: h for (path, metric), h in history.items() if metric is Metric.THROUGHPUT}
    return evaluate(by_window, throughput, previous, now, policies.alarms)


def forecasts(history: Mapping[tuple[PathKey, Metric], History]) -> list[Forecast]:
    """NWS forecast of every path's throughput, OWD and RTT with enough history."""
    out = []
    for (path, metric), (ts, values) in sorted(history.items(), key=_history_order):
        if metric not in FORECAST_METRICS:
            continue
        prediction = forecast(values)
        if prediction is not None:
            latest = int(ts[np.isfinite(values)][-1])
            out.append(_as_forecast(path, metric, prediction, latest))
    return out


def _history_order(item: tuple[tuple[PathKey, Metric], History]) -> tuple[str, str]:
    return (item[0][0].name, item[0][1].value)


def _as_forecast(path: PathKey, metric: Metric, p: Prediction, latest: int) -> Forecast:
    return Forecast(path, metric, p.value, p.error, p.method, p.samples, latest)


def _results(
    stats: list[PathStats],
    hosts: list[PathStats],
    history: Mapping[tuple[PathKey, Metric], History],
    records: Mapping[tuple[str, str], AlarmRecord],
    now: int,
    policies: Policies,
    update: RollupUpdate | None,
) -> Analysis:
    alarms = [to_alarm(r) for r in sorted(records.values(), key=lambda r: r.key)]
    published = [s for s in stats if s.window in policies.windows]
    health: list[PathHealth] = []
    sites: list[SiteStats] = []
    for length in policies.windows:
        window = [s for s in published if s.window == length]
        scores = path_health(window, alarms)
        health.extend(scores)
        sites.extend(site_stats(window, scores, alarms))
    predicted = forecasts(history)
    throughput = {f.path: f for f in predicted if f.metric is Metric.THROUGHPUT}
    longest = max(policies.windows)
    estimates = bandwidth_estimates(
        [s for s in published if s.window == policies.default],
        [s for s in stats if s.window == longest],
        {k: Prediction(f.value, f.error, f.method, f.samples) for k, f in throughput.items()},
        policies.model,
        policies.capacity,
        policies.quality.stale_after,
    )
    return Analysis(
        windows=tuple(published),
        host_pairs=tuple(hosts),
        sites=tuple(sites),
        health=tuple(health),
        forecasts=tuple(predicted),
        estimates=tuple(estimates),
        alarms=tuple(alarms),
        rollups=update,
    )
