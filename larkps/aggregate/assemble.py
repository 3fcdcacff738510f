"""Figures -> PathStats: the one place a path's summaries and their quality are built.

Direct windows (points) and rollups (hourly partials) both reduce a path to one
:class:`Figure` per metric and a :class:`LossFigure`, then call :func:`assemble`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from larkps.aggregate.quality import QualityPolicy, assess, expected_tests
from larkps.aggregate.summaries import summary_of
from larkps.aggregate.weighted import Described
from larkps.model import LossSummary, Metric, PathKey, PathStats, Summary

FIGURE_METRICS = (
    Metric.THROUGHPUT,
    Metric.RETRANSMITS,
    Metric.OWDELAY,
    Metric.RTT,
    Metric.CLOCK_ERROR,
)


@dataclass
class Figure:
    """What one metric of one path holds in a window."""

    described: Described | None = None
    tests: int = 0
    latest: tuple[int, float | None] | None = None
    cadences: list[tuple[int | None, int]] = field(default_factory=list)  # per series
    rejected: int = 0


@dataclass
class LossFigure:
    """Packet counts of one path in a window (tests that reported lost and sent)."""

    tests: int = 0
    sent: int = 0
    lost: int = 0
    latest_ts: int | None = None
    cadences: list[tuple[int | None, int]] = field(default_factory=list)


@dataclass
class PathFigures:
    """Everything :func:`assemble` needs for one path (or host pair)."""

    figures: dict[Metric, Figure] = field(default_factory=dict)
    loss: LossFigure = field(default_factory=LossFigure)
    failures: int = 0
    hosts: set[str] = field(default_factory=set)

    def figure(self, metric: Metric) -> Figure:
        return self.figures.setdefault(metric, Figure())


@dataclass(frozen=True, slots=True)
class Span:
    """The window a path is assembled for."""

    window: int
    end: int
    start: int  # exclusive; end - window unless a rollup widened it

    @property
    def seconds(self) -> int:
        return self.end - self.start


def _summary(fig: Figure, span: Span, policy: QualityPolicy, clock_error: bool) -> Summary:
    latest_ts = fig.latest[0] if fig.latest else None
    cadences = [c for c, _ in fig.cadences if c is not None]
    quality = assess(
        fig.tests,
        expected_tests(span.seconds, fig.cadences),
        latest_ts if fig.tests else None,
        span.end,
        policy,
        clock_error=clock_error,
        cadence=min(cadences) if cadences else None,
        rejected=fig.rejected,
    )
    return summary_of(fig.described, fig.tests, fig.latest, span.end, quality)


def _loss(fig: LossFigure, span: Span, policy: QualityPolicy) -> LossSummary:
    cadences = [c for c, _ in fig.cadences if c is not None]
    quality = assess(
        fig.tests,
        expected_tests(span.seconds, fig.cadences),
        fig.latest_ts if fig.tests else None,
        span.end,
        policy,
        cadence=min(cadences) if cadences else None,
    )
    if fig.tests == 0 or fig.sent <= 0:
        return LossSummary(count=0, quality=quality)
    return LossSummary(fig.tests, fig.sent, min(fig.lost, fig.sent), fig.latest_ts, quality)


def clock_trouble(figures: PathFigures, policy: QualityPolicy) -> bool:
    """Negative one-way delays, or time-error estimates above the policy limit."""
    owd = figures.figures.get(Metric.OWDELAY)
    errors = figures.figures.get(Metric.CLOCK_ERROR)
    negative = owd is not None and owd.described is not None and owd.described.minimum < 0
    large = (
        errors is not None
        and errors.described is not None
        and errors.described.maximum > policy.clock_error_ms
    )
    return negative or large


def assemble(
    key: PathKey,
    figures: PathFigures,
    span: Span,
    policy: QualityPolicy,
    hosts: tuple[str | None, str | None] = (None, None),
) -> PathStats:
    """PathStats of one path (or host pair when ``hosts`` is given)."""
    clock = clock_trouble(figures, policy)
    summaries = {
        m: _summary(figures.figure(m), span, policy, clock and m is Metric.OWDELAY)
        for m in FIGURE_METRICS
    }
    return PathStats(
        path=key,
        window=span.window,
        window_end=span.end,
        throughput=summaries[Metric.THROUGHPUT],
        owdelay=summaries[Metric.OWDELAY],
        rtt=summaries[Metric.RTT],
        loss=_loss(figures.loss, span, policy),
        failures=figures.failures,
        hosts=tuple(sorted(figures.hosts)),
        retransmits=summaries[Metric.RETRANSMITS],
        clock_error=summaries[Metric.CLOCK_ERROR],
        window_start=None if span.start == span.end - span.window else span.start,
        source_host=hosts[0],
        destination_host=hosts[1],
    )


def sort_key(key: PathKey) -> tuple[str, str, str]:
    return (key.source_site, key.destination_site, key.family.value)
