"""Each path's window figures classified by the ``[report]`` thresholds.

A figure is MISSING without data in the window, STALE when its newest test is older
than ``[windows] stale_after`` or (one-way delay) a host's clock is off; otherwise
OK, WARNING or CRITICAL by its thresholds. The reason becomes the grid's hover text.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from larkps.config.report import ReportSettings
from larkps.model import PathStats
from larkps.report.model import Level, ReportFigure, ReportMetric, Thresholds
from larkps.units import format_rate

GREY = (Level.STALE, Level.MISSING)


def thresholds(report: ReportSettings) -> dict[ReportMetric, Thresholds]:
    """The configured colour limits per metric."""
    return {
        ReportMetric.THROUGHPUT: Thresholds(
            report.bandwidth_warning, report.bandwidth_critical, higher_is_better=True
        ),
        ReportMetric.LOSS: Thresholds(report.loss_warning, report.loss_critical, False),
        ReportMetric.OWDELAY: Thresholds(report.delay_warning_ms, report.delay_critical_ms, False),
    }


@dataclass(frozen=True, slots=True)
class _Raw:
    """One window figure before classification."""

    value: float | None
    count: int
    latest: int | None
    what: str  # "throughput tests", ...: what is missing when there is none
    basis: str  # the figure and what it is made of, for the hover text


def path_figures(
    stats: PathStats, stale_after: int, limits: dict[ReportMetric, Thresholds]
) -> dict[ReportMetric, ReportFigure]:
    """Throughput, loss and one-way delay of one path, each with its level and reason."""
    tp, delay, loss = stats.throughput, stats.owdelay, stats.loss
    raw = {
        ReportMetric.THROUGHPUT: _Raw(
            tp.median,
            tp.count,
            tp.latest_ts,
            "throughput tests",
            f"median {_rate(tp.median)} of {tp.count} tests "
            f"(p10 {_rate(tp.p10)}, p90 {_rate(tp.p90)})",
        ),
        ReportMetric.LOSS: _Raw(
            loss.fraction,
            loss.count,
            loss.latest_ts,
            "loss measurements",
            f"loss {_percent(loss.fraction)} ({loss.packets_lost} of {loss.packets_sent} "
            f"packets in {loss.count} tests)"
            if loss.rate is None
            else f"loss {_percent(loss.fraction)} (mean rate of {loss.count} tests)",
        ),
        ReportMetric.OWDELAY: _Raw(
            delay.median,
            delay.count,
            delay.latest_ts,
            "one-way delay tests",
            f"one-way delay median {_ms(delay.median)} over {delay.count} tests "
            f"(p10 {_ms(delay.p10)}, p90 {_ms(delay.p90)})",
        ),
    }
    result = {
        metric: _classify(r, stats.window_end, stale_after, limits[metric])
        for metric, r in raw.items()
    }
    figure = result[ReportMetric.OWDELAY]
    clock_error = delay.quality is not None and delay.quality.clock_error
    if clock_error and figure.level not in GREY:
        reason = (
            f"untrusted: a host's clock error is above the limit; {raw[ReportMetric.OWDELAY].basis}"
        )
        result[ReportMetric.OWDELAY] = replace(figure, level=Level.STALE, reason=reason)
    return result


def _classify(raw: _Raw, end: int, stale_after: int, limit: Thresholds) -> ReportFigure:
    if raw.value is None or raw.count == 0:
        return ReportFigure(None, Level.MISSING, f"missing: no {raw.what} in the window", raw.count)
    if raw.latest is None or end - raw.latest > stale_after:
        age = None if raw.latest is None else end - raw.latest
        when = "no test time" if raw.latest is None else f"latest test {_time(raw.latest)}"
        reason = f"stale: {when}, {_ago(age)} ago (limit {_ago(stale_after)}); {raw.basis}"
        return ReportFigure(raw.value, Level.STALE, reason, raw.count, raw.latest)
    level = limit.level(raw.value)
    return ReportFigure(raw.value, level, f"{level.value}: {raw.basis}", raw.count, raw.latest)


def _rate(value: float | None) -> str:
    return "-" if value is None else format_rate(value)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.3g} %"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g} ms"


def _time(ts: int) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%MZ")


def _ago(seconds: int | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.3g}h"
    return f"{seconds / 86400:.3g}d"
