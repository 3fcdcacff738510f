"""The one adapter: what a cycle produced (and the settings) -> :class:`ReportInput`.

It reads the cycle's window statistics and, where the statistics provide them,
forecasts (NWS), bandwidth estimates, alarms and path and site health; when the
statistics learn more, only this module has to follow. The renderers read the
report model alone.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace

from larkps.config.settings import Settings
from larkps.model import Alarm, AlarmKind, BandwidthEstimate, Calibration, Metric, PathKey
from larkps.pipeline import CycleResult
from larkps.report.advice import path_advice
from larkps.report.figures import GREY, path_figures, thresholds
from larkps.report.model import (
    AlarmMark,
    Band,
    Level,
    ReportInput,
    ReportMetric,
    ReportPath,
    SiteRow,
)
from larkps.stats.estimates import window_estimates

REPORT_FORECASTS = {
    Metric.THROUGHPUT: ReportMetric.THROUGHPUT,
    Metric.OWDELAY: ReportMetric.OWDELAY,
}
ALARM_METRICS = {
    AlarmKind.BANDWIDTH_DROP: ReportMetric.THROUGHPUT,
    AlarmKind.LOSS: ReportMetric.LOSS,
    AlarmKind.COMPLETE_LOSS: ReportMetric.LOSS,
    AlarmKind.HIGH_DELAY: ReportMetric.OWDELAY,
    AlarmKind.CLOCK_OFFSET: ReportMetric.OWDELAY,
}


def report_input(result: CycleResult, settings: Settings, generated: int) -> ReportInput:
    """The report of one cycle (run with ``history=True`` for the path plots)."""
    window = result.report.window
    stale_after = settings.windows.stale_after
    estimates = _estimates(result, stale_after)
    advice = path_advice(result.stats, settings, estimates)
    bands = _bands(result, estimates)
    alarms = _alarm_marks(result.alarms)
    health = {h.path: h.health for h in result.health if h.window == window}
    limits = thresholds(settings.report)
    views = tuple(
        ReportPath(
            path=s.path,
            figures=path_figures(s, stale_after, limits),
            hosts=s.hosts,
            history=result.history.get(s.path),
            bands=bands.get(s.path, {}),
            alarms=tuple(alarms.get(s.path.name, ())),
            advice=advice.get(s.path),
            health=health.get(s.path),
            calibration=_calibration(estimates.get(s.path)),
        )
        for s in result.stats
    )
    sites = sorted({v.path.source_site for v in views} | {v.path.destination_site for v in views})
    return ReportInput(
        generated=generated,
        window=window,
        window_end=result.report.started,
        sites=tuple(sites),
        families=tuple(sorted({v.path.family for v in views}, key=lambda f: f.value)),
        paths=views,
        site_rows=tuple(_site_rows(sites, views, result)),
        thresholds=limits,
        colours={level: getattr(settings.report.colours, level.value) for level in Level},
        archives=result.report.archives,
        problems=tuple(f"{p.archive}: {p.what}: {p.problem}" for p in result.report.problems)
        + tuple(f"publish to {p.target}: {p.problem}" for p in result.report.publish_problems),
    )


def _calibration(estimate: BandwidthEstimate | None) -> Calibration | None:
    return None if estimate is None else estimate.calibration


def _estimates(result: CycleResult, stale_after: int) -> dict[PathKey, BandwidthEstimate]:
    """The cycle's bandwidth estimates; the window median where it has none."""
    return window_estimates(result.stats, result.estimates, stale_after)


def _bands(
    result: CycleResult, estimates: dict[PathKey, BandwidthEstimate]
) -> dict[PathKey, dict[ReportMetric, Band]]:
    """NWS forecasts of throughput and delay; bandwidth estimates where no forecast is."""
    bands: dict[PathKey, dict[ReportMetric, Band]] = defaultdict(dict)
    for path, estimate in estimates.items():
        if estimate.forecast_bps is not None:
            method = f"{estimate.provenance.value} {estimate.method}".strip()
            bands[path][ReportMetric.THROUGHPUT] = Band(
                estimate.forecast_bps, estimate.error_bps, method
            )
    for forecast in result.forecasts:
        metric = REPORT_FORECASTS.get(forecast.metric)
        if metric is not None:
            method = f"forecast {forecast.method}, {forecast.samples} values"
            bands[forecast.path][metric] = Band(forecast.value, forecast.error, method)
    return bands


def _alarm_marks(alarms: Iterable[Alarm]) -> dict[str, list[AlarmMark]]:
    """Alarms by subject (a path name or a site)."""
    marks: dict[str, list[AlarmMark]] = defaultdict(list)
    for alarm in alarms:
        state = "clearing" if alarm.clearing else "raised"
        text = f"{state}: {alarm.value:.4g} against {alarm.threshold:.4g}"
        if alarm.detail:
            text += f"; {alarm.detail}"
        marks[alarm.subject].append(
            AlarmMark(alarm.since, alarm.kind.value, text, ALARM_METRICS.get(alarm.kind))
        )
    return marks


def _site_rows(
    sites: Sequence[str], views: Sequence[ReportPath], result: CycleResult
) -> list[SiteRow]:
    """Partners and bandwidth from the paths; health and alarms from the statistics."""
    window = result.report.window
    stats = {s.site: s for s in result.site_stats if s.window == window}
    marks = _alarm_marks(result.alarms)
    rows = []
    for site in sites:
        own = marks.get(site, [])
        texts = [f"{m.kind} ({m.text})" for m in own]
        if site in stats:
            named = {m.kind for m in own}
            texts += [k.value for k in stats[site].alarms if k.value not in named]
        health = stats[site].health if site in stats else None
        rows.append(replace(_site_row(site, views), health=health, alarms=tuple(texts)))
    return rows


def _site_row(site: str, views: Sequence[ReportPath]) -> SiteRow:
    out = [v for v in views if v.path.source_site == site]
    into = [v for v in views if v.path.destination_site == site]
    return SiteRow(
        site=site,
        families=tuple(sorted({v.path.family for v in out + into}, key=lambda f: f.value)),
        partners_out=len({v.path.destination_site for v in out}),
        fresh_out=len({v.path.destination_site for v in out if _fresh(v)}),
        partners_in=len({v.path.source_site for v in into}),
        fresh_in=len({v.path.source_site for v in into if _fresh(v)}),
        median_out_bps=_median_bandwidth(out),
        median_in_bps=_median_bandwidth(into),
    )


def _fresh(view: ReportPath) -> bool:
    return any(f.level not in GREY for f in view.figures.values())


def _median_bandwidth(views: Iterable[ReportPath]) -> float | None:
    values = [
        f.value
        for v in views
        if (f := v.figures[ReportMetric.THROUGHPUT]).value is not None and f.level not in GREY
    ]
    return statistics.median(values) if values else None
