"""ReportInput -> PNG pictures with matplotlib's Agg canvas (no display, no pyplot state).

matplotlib is imported inside the functions, so commands that draw nothing never
load it. Text from archives is drawn with ``parse_math=False``: a ``$`` in a
site name is a dollar sign, not mathtext.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from larkps.model import Family, PathKey
from larkps.report.model import Level, ReportInput, ReportMetric, ReportPath
from larkps.report.page import METRIC_LABELS
from larkps.stats.hourly import PathHistory
from larkps.units import format_duration

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

GRID_METRICS = (ReportMetric.THROUGHPUT, ReportMetric.LOSS, ReportMetric.OWDELAY)
PLOT_UNITS = {
    ReportMetric.THROUGHPUT: ("Mbit/s", 1e-6),
    ReportMetric.LOSS: ("%", 100.0),
    ReportMetric.OWDELAY: ("ms", 1.0),
}
NO_PATH = "#f2f2f2"
LABEL_CHARS = 24
GAP_BUCKETS = 3  # a gap of more than this many steps (3+ empty buckets) breaks the line
TICK_HOURS = (1, 2, 3, 6, 12, 24, 48, 168, 720)


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def grid_png(report: ReportInput, target: Path) -> None:
    """One panel per metric (columns) and address family (rows), MaDDash-style cells."""
    n = max(1, len(report.sites))
    families = report.families or (Family.IPV4,)
    side = min(14.0, 1.6 + 0.32 * n)
    labels = 0.3 + 0.08 * max((len(_label(s)) for s in report.sites), default=0)
    figure = _figure(side * len(GRID_METRICS), (side + labels) * len(families) + 0.9)
    views = {v.path: v for v in report.paths}
    for row, family in enumerate(families):
        for col, metric in enumerate(GRID_METRICS):
            axes = figure.add_subplot(
                len(families), len(GRID_METRICS), row * len(GRID_METRICS) + col + 1
            )
            _grid_panel(axes, report, views, family, metric)
    _legend(figure, report)
    figure.suptitle(
        f"larkps mesh report, {_utc(report.generated)}, window {format_duration(report.window)}"
        " (top half of a cell: row -> column)",
        parse_math=False,
    )
    figure.tight_layout(rect=(0, 0.05, 1, 0.96))
    figure.savefig(target, format="png")


def _grid_panel(
    axes: Axes,
    report: ReportInput,
    views: dict[PathKey, ReportPath],
    family: Family,
    metric: ReportMetric,
) -> None:
    from matplotlib.patches import Rectangle

    sites = sites_with(report, family)
    n = len(sites)
    for i, row in enumerate(sites):
        for j, col in enumerate(sites):
            if i == j:
                continue
            for offset, (src, dst) in ((0.0, (row, col)), (0.5, (col, row))):
                colour = _colour(report, views.get(PathKey(src, dst, family)), metric)
                axes.add_patch(
                    Rectangle((j, i + offset), 1, 0.5, facecolor=colour, edgecolor="white", lw=0.6)
                )
    axes.set_xlim(0, max(n, 1))
    axes.set_ylim(max(n, 1), 0)
    axes.set_aspect("equal")
    ticks = [k + 0.5 for k in range(n)]
    size = 9 if n <= 20 else max(4, 9 - n // 15)
    names = [_label(s) for s in sites]
    axes.set_xticks(ticks, names, rotation=90, fontsize=size, parse_math=False)
    axes.set_yticks(ticks, names, fontsize=size, parse_math=False)
    axes.tick_params(length=0)
    label = METRIC_LABELS[metric][0]
    axes.set_title(f"{label}, {family.value}", fontsize=11, parse_math=False)


def _label(site: str) -> str:
    """A site name short enough for a tick label (the page shows it in full)."""
    return site if len(site) <= LABEL_CHARS else site[: LABEL_CHARS - 1] + "\u2026"


def sites_with(report: ReportInput, family: Family) -> list[str]:
    """The sites with at least one path in ``family`` (the rows of its grid)."""
    ends = {
        s
        for v in report.paths
        if v.path.family is family
        for s in (v.path.source_site, v.path.destination_site)
    }
    return [s for s in report.sites if s in ends]


def _colour(report: ReportInput, view: ReportPath | None, metric: ReportMetric) -> str:
    if view is None:
        return NO_PATH
    return report.colours[view.figures[metric].level]


def _legend(figure: Figure, report: ReportInput) -> None:
    from matplotlib.patches import Patch

    labels = {
        Level.OK: "ok",
        Level.WARNING: "warning",
        Level.CRITICAL: "critical",
        Level.STALE: "stale / untrusted",
        Level.MISSING: "no data",
    }
    handles = [Patch(facecolor=report.colours[level], label=text) for level, text in labels.items()]
    handles.append(Patch(facecolor=NO_PATH, label="no tests"))
    figure.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)


def path_png(report: ReportInput, view: ReportPath, target: Path) -> None:
    """Bandwidth, loss and delay of one path over the window, with bands and alarms."""
    figure = _figure(8.0, 7.0)
    axes_list: Sequence[Axes] = figure.subplots(3, 1, sharex=True)
    start = _when(report.window_end - report.window)
    end = _when(report.window_end)
    for axes, metric in zip(axes_list, GRID_METRICS, strict=True):
        _history_panel(axes, view, metric)
        axes.set_xlim(start, end)
    ticks, labels = _time_ticks(report.window_end - report.window, report.window_end)
    axes_list[-1].set_xticks(ticks, labels)
    axes_list[-1].set_xlabel("UTC")
    figure.suptitle(
        f"{view.path.source_site} -> {view.path.destination_site} ({view.path.family.value}), "
        f"{format_duration(report.window)} to {_utc(report.window_end)}",
        parse_math=False,
    )
    figure.tight_layout()
    figure.savefig(target, format="png")


def _history_panel(axes: Axes, view: ReportPath, metric: ReportMetric) -> None:
    unit, scale = PLOT_UNITS[metric]
    axes.set_ylabel(f"{METRIC_LABELS[metric][0]} ({unit})", parse_math=False)
    axes.grid(True, color="#e6e6e6")
    history = view.history
    xs, ys = ([], []) if history is None else _line(history, metric, scale)
    if xs:
        axes.plot(xs, ys, "o-", color="#23395b", ms=3)
    else:
        axes.text(0.5, 0.5, "no data in the window", transform=axes.transAxes, ha="center")
    shown = [y for y in ys if y == y]  # without the NaN gaps
    band = view.bands.get(metric)
    if band is not None:
        # clipped to [0 (delay: the data's low), twice the data's high], as on the page
        centre = band.value * scale
        cap = 2 * max([abs(centre), *(abs(y) for y in shown)])
        floor = -cap if metric is ReportMetric.OWDELAY else 0.0
        low = max(floor, centre - band.error * scale)
        high = min(cap, centre + band.error * scale)
        axes.axhspan(low, high, color="#6baed6", alpha=0.25, label=band.method)
        axes.axhline(centre, color="#2171b5", ls="--", lw=1)
        axes.legend(loc="lower left", fontsize=8)
        shown += [low, high, centre]
    for alarm in view.alarms:
        if alarm.metric in (None, metric):
            axes.axvline(_when(alarm.ts), color="#d73027", lw=1.5)
    bottom = min([0.0, *shown])
    top = max([*shown, bottom + (0.1 if metric is ReportMetric.LOSS else 1.0)])
    axes.set_ylim(bottom - (top - bottom) * 0.05 * (bottom < 0), top + (top - bottom) * 0.1)


def _line(
    history: PathHistory, metric: ReportMetric, scale: float
) -> tuple[list[float], list[float]]:
    """Points at bucket middles; a NaN breaks the line at 3 or more empty buckets in a row."""
    xs: list[float] = []
    ys: list[float] = []
    previous = None
    for end, value in _series(history, metric):
        if previous is not None and end - previous > GAP_BUCKETS * history.step:
            xs.append(float("nan"))
            ys.append(float("nan"))
        xs.append(_when(end - history.step / 2))
        ys.append(value * scale)
        previous = end
    return xs, ys


def _series(history: PathHistory, metric: ReportMetric) -> list[tuple[int, float]]:
    values = {
        ReportMetric.THROUGHPUT: history.throughput_bps,
        ReportMetric.LOSS: history.loss,
        ReportMetric.OWDELAY: history.owdelay_ms,
    }[metric]
    return [(ts, v) for ts, v in zip(history.ends, values, strict=True) if v is not None]


def _when(ts: float) -> float:
    """The x coordinate of a time: Unix seconds (labelled by :func:`_time_ticks`)."""
    return float(ts)


def _time_ticks(start: int, end: int) -> tuple[list[float], list[str]]:
    """At most eight ticks on whole hours (or days) with HH:MM (or date) labels, UTC."""
    span = max(1, end - start)
    step = next((h * 3600 for h in TICK_HOURS if span / (h * 3600) <= 8), TICK_HOURS[-1] * 3600)
    first = -(-start // step) * step
    ticks = list(range(first, end + 1, step))
    pattern = "%H:%M" if step < 86400 else "%m-%d"
    labels = [datetime.fromtimestamp(t, tz=UTC).strftime(pattern) for t in ticks]
    return [float(t) for t in ticks], labels


def _utc(ts: int) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%MZ")
