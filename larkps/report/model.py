"""The report's own small input model: what the page and the PNGs show, nothing more.

Built by one adapter (:func:`larkps.report.adapter.report_input`) from what a
cycle produced; the renderers read only these types. Fields that a cycle cannot
supply yet (forecast bands, alarms, throttle advice, site health) are optional and
rendered when present.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from larkps.model import Calibration, Family, PathKey
from larkps.stats.hourly import PathHistory


class Level(StrEnum):
    """The colour class of one figure."""

    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"
    STALE = "stale"  # too old, or untrusted (clock error): grey
    MISSING = "missing"  # no data in the window: grey


class ReportMetric(StrEnum):
    """The three metrics the grid can be coloured by."""

    THROUGHPUT = "throughput"  # bits/s
    LOSS = "loss"  # fraction
    OWDELAY = "owdelay"  # ms


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Warning and critical limits of one metric; ``higher_is_better`` for bandwidth."""

    warning: float
    critical: float
    higher_is_better: bool

    def level(self, value: float) -> Level:
        """OK, WARNING or CRITICAL for a figure (a NaN figure is MISSING)."""
        if math.isnan(value):
            return Level.MISSING
        if self.higher_is_better:
            if value < self.critical:
                return Level.CRITICAL
            return Level.WARNING if value < self.warning else Level.OK
        if value >= self.critical:
            return Level.CRITICAL
        return Level.WARNING if value >= self.warning else Level.OK


@dataclass(frozen=True, slots=True)
class ReportFigure:
    """One metric of one directed path as the grid shows it."""

    value: float | None  # window figure in the metric's unit; None without data
    level: Level
    reason: str  # hover text: the figure and its basis, or why it is grey
    count: int = 0  # tests behind it
    latest_ts: int | None = None


@dataclass(frozen=True, slots=True)
class Band:
    """A forecast with its error bar: the band value - error .. value + error."""

    value: float
    error: float
    method: str


@dataclass(frozen=True, slots=True)
class AlarmMark:
    """An alarm on a path, marked at ``ts`` (when it was raised) on its history."""

    ts: int
    kind: str
    text: str
    metric: ReportMetric | None = None  # the plot it belongs on; None: every plot


@dataclass(frozen=True, slots=True)
class ReportAdvice:
    """The current throttle advice for transfers over one path."""

    jobs: int
    per_job_bps: float
    bottleneck: str
    held: bool
    rationale: str
    demand: str  # what each job needs, e.g. "2GB per job in 10m = 26.67Mbit/s"


@dataclass(frozen=True, slots=True)
class ReportPath:
    """Everything the report shows about one directed path."""

    path: PathKey
    figures: Mapping[ReportMetric, ReportFigure]
    hosts: tuple[str, ...] = ()
    history: PathHistory | None = None
    bands: Mapping[ReportMetric, Band] = field(default_factory=dict)
    alarms: tuple[AlarmMark, ...] = ()
    advice: ReportAdvice | None = None
    health: float | None = None  # 0..1 when the statistics provide it
    calibration: Calibration | None = None  # achieved/predicted of its site pair


@dataclass(frozen=True, slots=True)
class SiteRow:
    """One line of the per-site table."""

    site: str
    families: tuple[Family, ...]
    partners_out: int  # destination sites with any path from this site
    fresh_out: int  # of those, with a fresh figure of some metric
    partners_in: int
    fresh_in: int
    median_out_bps: float | None = None  # median over partner paths of their medians
    median_in_bps: float | None = None
    health: float | None = None  # 0..1 when the statistics provide it
    alarms: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ReportInput:
    """The whole report: grid, per-path details, per-site rows, legend inputs."""

    generated: int  # Unix seconds
    window: int  # seconds
    window_end: int
    sites: tuple[str, ...]
    families: tuple[Family, ...]
    paths: tuple[ReportPath, ...]
    site_rows: tuple[SiteRow, ...]
    thresholds: Mapping[ReportMetric, Thresholds]
    colours: Mapping[Level, str]
    archives: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    def view(self, path: PathKey) -> ReportPath | None:
        """The view of one path, or None when the report has no such path."""
        for view in self.paths:
            if view.path == path:
                return view
        return None
