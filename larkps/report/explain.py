"""Pure: one path's published figures in words: each with its inputs, quality and rule.

``larkps explain A->B`` prints these lines; every figure is named by the ad attribute
that carries it (docs/classads.md) and the rule is the one docs/statistics.md states.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from larkps.model import (
    Alarm,
    BandwidthEstimate,
    Forecast,
    LossSummary,
    Metric,
    ModelPolicy,
    PathHealth,
    PathStats,
    Provenance,
    Quality,
    Summary,
)
from larkps.stats.aggregate.sites import ALARM_FACTORS, data_term
from larkps.stats.estimates import model_bps
from larkps.stats.expected import rationale
from larkps.units import format_duration, format_rate


@dataclass(frozen=True, slots=True)
class Rules:
    """The settings the rules quote."""

    stale_after: int
    min_completeness: float
    clock_error_ms: float
    min_quality: float
    model: ModelPolicy
    capacity_bps: float  # the model's cap on this path


@dataclass(frozen=True, slots=True)
class PathFacts:
    """Everything one cycle knows about one path (one address family)."""

    windows: Sequence[PathStats]  # every window, the main one included
    main_window: int
    estimate: BandwidthEstimate | None
    forecasts: Sequence[Forecast]
    health: PathHealth | None
    alarms: Sequence[Alarm]


def explain_path(facts: PathFacts, rules: Rules, now: int) -> list[str]:
    """The lines for one path."""
    main = next(s for s in facts.windows if s.window == facts.main_window)
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [
        f"{main.path.name}: cycle at {stamp}, main window {format_duration(main.window)},"
        f" hosts {', '.join(main.hosts) or 'none'}",
        *_expected(facts, main, rules, now),
    ]
    for stats in sorted(facts.windows, key=lambda s: s.window):
        lines.extend(_window(stats, rules))
    lines.extend(_health(facts, main))
    lines.extend(_alarms(facts.alarms, now))
    return lines


def _ago(ts: int | None, now: int) -> str:
    if ts is None:
        return "no test"
    return f"newest test {format_duration(max(0, now - ts) // 60 * 60 or 60)} ago"


def _expected(facts: PathFacts, main: PathStats, rules: Rules, now: int) -> Iterator[str]:
    estimate = facts.estimate
    if estimate is None or estimate.lower_bound_bps is None:
        yield "LarkPS_ExpectedLowerMbps: none (no throughput test, no RTT and loss to model)"
        return
    yield f"LarkPS_ExpectedLowerMbps = {estimate.lower_bound_bps * 1e-6:.6g} Mbps"
    yield "  figure: " + rationale(
        estimate.forecast_bps,
        estimate.error_bps,
        estimate.provenance.value,
        estimate.method,
        estimate.quality,
        estimate.calibration,
    )
    fresh = "fresh" if not _stale(main.throughput) else "stale"
    yield (
        f"  rule: the NWS forecast while the throughput figure is fresh (it is {fresh}:"
        f" {_ago(main.throughput.latest_ts, now)}, stale after"
        f" {format_duration(rules.stale_after)}); else the window median; else the"
        " Mathis model from RTT and loss; with nothing fresh, the first of these, stale"
    )
    yield "  inputs: " + _inputs(estimate, facts.forecasts, main, rules)
    yield "  trust: " + _trust(estimate, rules)
    yield from _calibration(estimate)


def _calibration(estimate: BandwidthEstimate) -> Iterator[str]:
    found = estimate.calibration
    if found is None:
        return
    applied = "applied" if found.applied else "not applied"
    yield (
        f"LarkPS_CalibrationRatio = {found.ratio:.4g} ({applied}),"
        f" LarkPS_CalibrationCount = {found.count}, spread {found.spread:.3g}"
    )
    yield f"  calibration: {found.note}"
    yield (
        "  rule: achieved/predicted of completed jobs on this site pair, weighted by a"
        " half-life, clamped, at most one bounded step a cycle; with too few jobs, 1"
    )


def _stale(summary: Summary) -> bool:
    return summary.quality is None or summary.quality.stale


def _inputs(
    estimate: BandwidthEstimate, forecasts: Iterable[Forecast], main: PathStats, rules: Rules
) -> str:
    label = format_duration(main.window)
    if estimate.provenance is Provenance.FORECAST:
        nws = next((f for f in forecasts if f.metric is Metric.THROUGHPUT), None)
        if nws is not None:
            return (
                f"NWS over {_tests(nws.samples)} of throughput history: predictor"
                f" {nws.method}, next {format_rate(nws.value)}, recent MAE {format_rate(nws.error)}"
            )
    if estimate.provenance is Provenance.MEASURED:
        tp = main.throughput
        spread = "-" if tp.p10 is None or tp.p90 is None else (
            f"{format_rate(tp.p10)}-{format_rate(tp.p90)}"
        )  # fmt: skip
        return f"{_tests(tp.count)} of throughput in {label}: p10-p90 {spread}"
    model = model_bps(main, rules.model, rules.capacity_bps)
    rtt = main.rtt.median
    return (
        f"RTT median {_number(rtt, 'ms')} in {label}, loss {_number(main.loss.fraction, '')}"
        f" over {main.loss.packets_sent} packets sent; Mathis bound"
        f" {'-' if model is None else format_rate(model)} (capped at"
        f" {format_rate(rules.capacity_bps)}), {estimate.method}"
    )


def _tests(count: int) -> str:
    return f"{count} test" if count == 1 else f"{count} tests"


def _number(value: float | None, unit: str) -> str:
    return "-" if value is None else f"{value:.4g}{(' ' + unit) if unit else ''}"


def _trust(estimate: BandwidthEstimate, rules: Rules) -> str:
    if estimate.stale:
        return "untrusted: stale (throttles hold their previous N; advise does not rank it)"
    if estimate.quality < rules.min_quality:
        return (
            f"untrusted: quality {estimate.quality:.2f} below min_quality {rules.min_quality:.2f}"
        )
    return f"trusted (fresh; quality {estimate.quality:.2f} >= min_quality {rules.min_quality:.2f})"


FIGURES = (
    ("throughput", "ThroughputMbps", 1e-6, "Mbps"),
    ("owdelay", "OneWayDelayMs", 1.0, "ms"),
    ("rtt", "RttMs", 1.0, "ms"),
)


def _window(stats: PathStats, rules: Rules) -> Iterator[str]:
    label = format_duration(stats.window)
    for field, group, scale, unit in FIGURES:
        summary: Summary = getattr(stats, field)
        median = None if summary.median is None else summary.median * scale
        yield f"LarkPS_{group}_{label}_Median = {_number(median, unit)} ({_tests(summary.count)})"
        yield "  quality: " + _quality(summary.quality, rules)
        if field == "owdelay":
            yield "  clock: " + _clock(stats, rules)
    yield f"LarkPS_Loss_{label}_Fraction = {_loss(stats.loss)}"
    yield "  quality: " + _quality(stats.loss.quality, rules)
    yield f"LarkPS_Failures_{label}_Count = {stats.failures}"


def _quality(quality: Quality | None, rules: Rules) -> str:
    if quality is None:
        return "unknown (no series of this figure)"
    if quality.completeness is None:
        completeness = f"{quality.samples} tests, cadence unknown"
    else:
        cadence = (
            "" if quality.cadence is None else f" at a {format_duration(quality.cadence)} cadence"
        )
        completeness = (
            f"{quality.samples} of {round(quality.expected or 0.0, 1):g} expected tests{cadence}:"
            f" completeness {quality.completeness:.2f}"
            f"{' LOW' if quality.low else ''} (low below {rules.min_completeness:g})"
        )
    age = (
        "no test"
        if quality.age is None
        else f"newest {format_duration(quality.age // 60 * 60 or 60)} ago"
    )
    stale = "STALE" if quality.stale else "fresh"
    return f"{completeness}; {age}, {stale} (stale after {format_duration(rules.stale_after)})"


def _clock(stats: PathStats, rules: Rules) -> str:
    """Which clock rule fired, with the figures it compared."""
    owd, rtt, errors = stats.owdelay, stats.rtt, stats.clock_error
    reasons = []
    if owd.minimum is not None and owd.minimum < 0:
        reasons.append(f"a negative one-way delay (min {owd.minimum:.4g} ms)")
    if errors is not None and errors.maximum is not None and errors.maximum > rules.clock_error_ms:
        reasons.append(
            f"time-error-estimates up to {errors.maximum:.4g} ms > clock_error_ms"
            f" {rules.clock_error_ms:g}"
        )
    if owd.median is not None and rtt.median is not None and owd.median > rtt.median:
        reasons.append(f"median one-way delay {owd.median:.4g} ms > median RTT {rtt.median:.4g} ms")
    flagged = owd.quality is not None and owd.quality.clock_error
    if flagged:
        return "ERROR (..._ClockError = true): " + ("; ".join(reasons) or "flagged")
    return (
        "ok: no negative delay, no time-error estimate above"
        f" {rules.clock_error_ms:g} ms, median delay not above the median RTT"
    )


def _loss(loss: LossSummary) -> str:
    if loss.fraction is None:
        return f"none ({_tests(loss.count)} of loss)"
    if loss.rate is not None:
        return f"{loss.fraction:.4g} (mean of {loss.count} per-test rates; no packet counts)"
    return (
        f"{loss.fraction:.4g} ({loss.packets_lost} lost / {loss.packets_sent} sent"
        f" in {_tests(loss.count)})"
    )


def _health(facts: PathFacts, main: PathStats) -> Iterator[str]:
    if facts.health is None:
        yield "LarkPS_Health: none"
        return
    factors = [f"{k.value} x{ALARM_FACTORS[k]:g}" for k in facts.health.alarms]
    yield f"LarkPS_Health = {facts.health.health:.4g}"
    yield (
        f"  rule: data term {data_term(main):.4g} (mean over throughput, one-way delay, RTT"
        " and loss of: 0 when stale, else completeness, halved with a clock error) x alarm"
        f" factors ({', '.join(factors) or 'none'})"
    )


def _alarms(alarms: Sequence[Alarm], now: int) -> Iterator[str]:
    if not alarms:
        yield "LarkPS_Alarms = {} (no rule fired; docs/statistics.md, Alarms)"
        return
    yield "LarkPS_Alarms = {" + ", ".join(f'"{a.kind.value}"' for a in alarms) + "}"
    for alarm in alarms:
        state = "clearing" if alarm.clearing else "raised"
        since = format_duration(max(60, (now - alarm.since) // 60 * 60))
        detail = f"; {alarm.detail}" if alarm.detail else ""
        yield (
            f"  {alarm.kind.value}: {state} {since} ago, {alarm.value:.4g} against"
            f" {alarm.threshold:.4g}{detail}"
        )
