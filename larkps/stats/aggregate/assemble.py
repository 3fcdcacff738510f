"""Figures -> PathStats: the one place a path's summaries and their quality are built.

Direct windows (points) and rollups (hourly partials) both reduce a path to one
:class:`Figure` per metric and a :class:`LossFigure` per kind of packet count, then
call :func:`assemble`. Delay and loss have several bases (histograms or per-test
scalars; packet counts or per-test rates): :func:`assemble` takes, per path and
window, the first basis with a test in the window (docs/statistics.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from larkps.model import Basis, LossSummary, Metric, PathKey, PathStats, Quality, Summary
from larkps.stats.aggregate.quality import QualityPolicy, figure_quality
from larkps.stats.aggregate.summaries import summary_of
from larkps.stats.aggregate.weighted import Described

FIGURE_METRICS = (Metric.THROUGHPUT, Metric.RETRANSMITS, Metric.CLOCK_ERROR)
#: per delay figure, its bases best first: the metric's histograms, then per-test scalars
DELAY_BASES: dict[Metric, tuple[tuple[Metric, Basis], ...]] = {
    Metric.OWDELAY: (
        (Metric.OWDELAY, Basis.HISTOGRAMS),
        (Metric.OWDELAY_MEDIAN, Basis.TEST_MEDIANS),
        (Metric.OWDELAY_MEAN, Basis.TEST_MEANS),
    ),
    Metric.RTT: ((Metric.RTT, Basis.HISTOGRAMS), (Metric.RTT_MEAN, Basis.TEST_MEANS)),
}
#: per-test loss fractions, the loss bases after the packet counts
RATE_BASES = ((Metric.LOSS_RATE, Basis.RATES), (Metric.LOSS_RATE_BIDIR, Basis.RATES_BIDIR))


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
    """Everything :func:`assemble` needs for one path (or host pair).

    ``figures`` holds a Figure for every metric the path has series of (with or
    without tests in the window); a LossFigure with no cadences has no series.
    """

    figures: dict[Metric, Figure] = field(default_factory=dict)
    loss: LossFigure = field(default_factory=LossFigure)  # one-way packet counts
    loss_bidir: LossFigure = field(default_factory=LossFigure)  # round-trip packet counts
    failures: int = 0
    hosts: set[str] = field(default_factory=set)

    def figure(self, metric: Metric) -> Figure:
        return self.figures.setdefault(metric, Figure())

    def counts(self, metric: Metric) -> LossFigure:
        """The LossFigure of the packet counts paired with ``metric`` (a lost count)."""
        return self.loss_bidir if metric is Metric.PACKETS_LOST_BIDIR else self.loss


@dataclass(frozen=True, slots=True)
class Span:
    """The window a path is assembled for."""

    window: int
    end: int
    start: int  # exclusive; end - window unless a rollup widened it

    @property
    def seconds(self) -> int:
        return self.end - self.start


def _quality(
    tests: int,
    cadences: list[tuple[int | None, int]],
    latest_ts: int | None,
    span: Span,
    policy: QualityPolicy,
    clock_error: bool = False,
    rejected: int = 0,
) -> Quality:
    return figure_quality(
        tests,
        cadences,
        latest_ts,
        span.seconds,
        span.end,
        policy,
        clock_error=clock_error,
        rejected=rejected,
    )


def _summary(
    fig: Figure,
    span: Span,
    policy: QualityPolicy,
    clock_error: bool = False,
    basis: Basis | None = None,
) -> Summary:
    latest_ts = fig.latest[0] if fig.latest else None
    quality = _quality(fig.tests, fig.cadences, latest_ts, span, policy, clock_error, fig.rejected)
    return summary_of(fig.described, fig.tests, fig.latest, span.end, quality, basis)


def delay_figure(figures: PathFigures, metric: Metric) -> tuple[Figure, Basis | None]:
    """The basis of a delay figure: the first with a test in the window, else the first
    the path has series of (for its quality), else none."""
    present: list[tuple[Figure, Basis | None]] = [
        (figures.figures[m], b) for m, b in DELAY_BASES[metric] if m in figures.figures
    ]
    with_tests = [(fig, basis) for fig, basis in present if fig.tests > 0]
    return (with_tests or present or [(Figure(), None)])[0]


def _counted(fig: LossFigure, span: Span, policy: QualityPolicy, basis: Basis) -> LossSummary:
    quality = _quality(fig.tests, fig.cadences, fig.latest_ts, span, policy)
    if fig.tests == 0 or fig.sent <= 0:
        return LossSummary(count=0, quality=quality)
    lost = min(fig.lost, fig.sent)
    return LossSummary(fig.tests, fig.sent, lost, fig.latest_ts, quality, basis=basis)


def _rated(fig: Figure, span: Span, policy: QualityPolicy, basis: Basis) -> LossSummary:
    latest_ts = fig.latest[0] if fig.latest else None
    quality = _quality(fig.tests, fig.cadences, latest_ts, span, policy, rejected=fig.rejected)
    if fig.tests == 0 or fig.described is None:
        return LossSummary(count=0, quality=quality)
    return LossSummary(
        fig.tests, latest_ts=latest_ts, quality=quality, rate=fig.described.mean, basis=basis
    )


def path_loss_summary(figures: PathFigures, span: Span, policy: QualityPolicy) -> LossSummary:
    """Loss from the first basis with a test in the window: one-way counts, round-trip
    counts, one-way rates, round-trip rates; else the quality of the first present."""
    counted = [
        (fig, basis)
        for fig, basis in ((figures.loss, Basis.COUNTS), (figures.loss_bidir, Basis.COUNTS_BIDIR))
        if fig.cadences
    ]
    rated = [(figures.figures[m], b) for m, b in RATE_BASES if m in figures.figures]
    for fig, basis in counted:
        if fig.tests > 0 and fig.sent > 0:
            return _counted(fig, span, policy, basis)
    for rate, basis in rated:
        if rate.tests > 0:
            return _rated(rate, span, policy, basis)
    if counted:  # no test in the window: empty, with the quality of the first basis
        return _counted(counted[0][0], span, policy, counted[0][1])
    if rated:
        return _rated(rated[0][0], span, policy, rated[0][1])
    return _counted(LossFigure(), span, policy, Basis.COUNTS)


def clock_trouble(
    owd: Figure, figures: PathFigures, policy: QualityPolicy, rtt: Figure | None = None
) -> bool:
    """Negative one-way delays, time-error estimates above the policy limit, or a median
    one-way delay above the path's median round trip (no clock estimates needed)."""
    errors = figures.figures.get(Metric.CLOCK_ERROR)
    negative = owd.described is not None and owd.described.minimum < 0
    large = (
        errors is not None
        and errors.described is not None
        and errors.described.maximum > policy.clock_error_ms
    )
    return negative or large or _beyond_round_trip(owd, rtt)


def _beyond_round_trip(owd: Figure, rtt: Figure | None) -> bool:
    """One way cannot take longer than there and back: such a delay is a clock offset."""
    if owd.described is None or rtt is None or rtt.described is None:
        return False
    return owd.described.at(0.5) > rtt.described.at(0.5)


def assemble(
    key: PathKey,
    figures: PathFigures,
    span: Span,
    policy: QualityPolicy,
    hosts: tuple[str | None, str | None] = (None, None),
) -> PathStats:
    """PathStats of one path (or host pair when ``hosts`` is given)."""
    owd, owd_basis = delay_figure(figures, Metric.OWDELAY)
    rtt, rtt_basis = delay_figure(figures, Metric.RTT)
    summaries = {m: _summary(figures.figure(m), span, policy) for m in FIGURE_METRICS}
    return PathStats(
        path=key,
        window=span.window,
        window_end=span.end,
        throughput=summaries[Metric.THROUGHPUT],
        owdelay=_summary(owd, span, policy, clock_trouble(owd, figures, policy, rtt), owd_basis),
        rtt=_summary(rtt, span, policy, basis=rtt_basis),
        loss=path_loss_summary(figures, span, policy),
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
