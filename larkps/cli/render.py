"""Human- and tool-readable text renderings of statistics, settings and run reports."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from larkps.daemon.logs import problem_lines
from larkps.model import PathStats, RunReport
from larkps.units import format_duration

STATS_FORMATS = ("table", "json", "csv")  # json, csv: larkps.report.document


def stats_row(stats: PathStats) -> dict[str, Any]:
    """One flat record per path, in output units (Mbps, ms, fraction)."""
    tp, owd = stats.throughput, stats.owdelay
    return {
        "source_site": stats.path.source_site,
        "destination_site": stats.path.destination_site,
        "family": stats.path.family.value,
        "window_s": stats.window,
        "throughput_count": tp.count,
        "throughput_median_mbps": _scaled(tp.median, 1e-6),
        "throughput_p10_mbps": _scaled(tp.p10, 1e-6),
        "throughput_p90_mbps": _scaled(tp.p90, 1e-6),
        "throughput_latest_ts": tp.latest_ts,
        "loss_fraction": stats.loss.fraction,
        "loss_packets_sent": stats.loss.packets_sent,
        "owdelay_median_ms": owd.median,
        "owdelay_p10_ms": owd.p10,
        "owdelay_p90_ms": owd.p90,
        "owdelay_count": owd.count,
        "rtt_median_ms": stats.rtt.median,
        "failures": stats.failures,
    }


def _scaled(value: float | None, factor: float) -> float | None:
    return None if value is None else value * factor


def render_stats(stats: Sequence[PathStats]) -> str:
    """The per-path table (window, medians, spread, tests, loss, delays, failures)."""
    return _table([stats_row(s) for s in stats])


def _table(rows: list[dict[str, Any]]) -> str:
    header = (
        "path",
        "fam",
        "window",
        "Mbps p50",
        "p10-p90",
        "tests",
        "loss %",
        "owd ms",
        "rtt ms",
        "fail",
    )
    lines = [header] + [_table_cells(r) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    ]
    return "\n".join(text) + "\n"


def _table_cells(row: dict[str, Any]) -> tuple[str, ...]:
    loss = row["loss_fraction"]
    return (
        f"{_printable(row['source_site'])} -> {_printable(row['destination_site'])}",
        row["family"],
        format_duration(row["window_s"]),
        _fmt(row["throughput_median_mbps"], "{:.0f}"),
        _range(row["throughput_p10_mbps"], row["throughput_p90_mbps"]),
        str(row["throughput_count"]),
        "-" if loss is None else f"{100 * loss:.3f}",
        _fmt(row["owdelay_median_ms"], "{:.2f}"),
        _fmt(row["rtt_median_ms"], "{:.2f}"),
        str(row["failures"]),
    )


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def _range(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return "-"
    return f"{low:.0f}-{high:.0f}"


def summary_lines(report: RunReport) -> Iterable[str]:
    """A short account of one cycle."""
    yield (
        f"{report.paths} paths from {report.series} series ({report.points} points) "
        f"over {format_duration(report.window)} in {report.duration_s:.1f} s"
    )
    for output in report.outputs:
        yield f"wrote {report.ads_written} ads to {output}"
    if report.ads_spooled:
        yield f"not delivered: {report.ads_spooled} ads wait in the spool for the next cycle"
    for line in problem_lines(report.problems + report.publish_problems):
        yield line if line.startswith("partial: ") else f"warning: {line}"
