"""ReportInput -> one self-contained HTML page (no network: CSS and JS are inlined).

The data travel as JSON inside ``<script type="application/json">`` with every
``<``, ``>`` and ``&`` written as a ``\\u`` escape, so no text from an archive can
end the element; the script builds the page from it with ``textContent`` and
``setAttribute`` only. The little static text is HTML-escaped.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from larkps.report.model import Level, ReportInput, ReportMetric, ReportPath, SiteRow
from larkps.units import format_duration

METRIC_LABELS = {
    ReportMetric.THROUGHPUT: ("Bandwidth", "bit/s"),
    ReportMetric.LOSS: ("Loss", "fraction"),
    ReportMetric.OWDELAY: ("One-way delay", "ms"),
}


def render_page(report: ReportInput, pictures: Mapping[str, str] | None = None) -> str:
    """The page; ``pictures`` maps path names to their PNG's relative file name."""
    document = page_document(report, pictures or {})
    generated = _utc(report.generated)
    title = f"larkps mesh report, {generated}"
    return _TEMPLATE.format(
        title=html.escape(title),
        css=_asset("report.css"),
        js=_asset("report.js"),
        data=embed_json(document),
        generated=html.escape(generated),
        window=html.escape(format_duration(report.window)),
        window_end=html.escape(_utc(report.window_end)),
        archives=html.escape(", ".join(report.archives) or "none"),
    )


def embed_json(document: object) -> str:
    """JSON that is safe inside a script element (no ``</``, no ``<!--``)."""
    text = json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def page_document(report: ReportInput, pictures: Mapping[str, str]) -> dict[str, Any]:
    """Everything the script needs, as plain JSON types."""
    return {
        "generated": report.generated,
        "window": report.window,
        "window_end": report.window_end,
        "sites": list(report.sites),
        "families": [f.value for f in report.families],
        "metrics": [_metric(m, report) for m in ReportMetric],
        "colours": {level.value: report.colours[level] for level in Level},
        "paths": {v.path.name: _path(v, pictures.get(v.path.name)) for v in report.paths},
        "site_rows": [_site_row(row) for row in report.site_rows],
        "archives": list(report.archives),
        "problems": list(report.problems),
    }


def _metric(metric: ReportMetric, report: ReportInput) -> dict[str, Any]:
    label, unit = METRIC_LABELS[metric]
    limit = report.thresholds[metric]
    return {
        "id": metric.value,
        "label": label,
        "unit": unit,
        "warning": limit.warning,
        "critical": limit.critical,
        "higher_is_better": limit.higher_is_better,
    }


def _path(view: ReportPath, picture: str | None) -> dict[str, Any]:
    path = view.path
    history = view.history
    return {
        "src": path.source_site,
        "dst": path.destination_site,
        "family": path.family.value,
        "hosts": list(view.hosts),
        "figures": {
            m.value: {
                "value": _number(f.value),
                "level": f.level.value,
                "reason": f.reason,
                "count": f.count,
                "latest": f.latest_ts,
            }
            for m, f in view.figures.items()
        },
        "history": None
        if history is None
        else {
            "step": history.step,
            "ends": list(history.ends),
            "throughput": [_number(v) for v in history.throughput_bps],
            "loss": [_number(v) for v in history.loss],
            "owdelay": [_number(v) for v in history.owdelay_ms],
        },
        "bands": {
            m.value: {"value": _number(b.value), "error": _number(b.error), "method": b.method}
            for m, b in view.bands.items()
        },
        "alarms": [
            {
                "ts": a.ts,
                "kind": a.kind,
                "text": a.text,
                "metric": None if a.metric is None else a.metric.value,
            }
            for a in view.alarms
        ],
        "health": _number(view.health),
        "advice": None
        if view.advice is None
        else {
            "jobs": view.advice.jobs,
            "per_job_bps": _number(view.advice.per_job_bps),
            "bottleneck": view.advice.bottleneck,
            "held": view.advice.held,
            "rationale": view.advice.rationale,
            "demand": view.advice.demand,
        },
        "calibration": None
        if view.calibration is None
        else {
            "ratio": _number(view.calibration.ratio),
            "count": view.calibration.count,
            "spread": _number(view.calibration.spread),
            "applied": view.calibration.applied,
            "note": view.calibration.note,
        },
        "png": picture,
    }


def _site_row(row: SiteRow) -> dict[str, Any]:
    return {
        "site": row.site,
        "families": [f.value for f in row.families],
        "partners_out": row.partners_out,
        "fresh_out": row.fresh_out,
        "partners_in": row.partners_in,
        "fresh_in": row.fresh_in,
        "median_out_bps": _number(row.median_out_bps),
        "median_in_bps": _number(row.median_in_bps),
        "health": _number(row.health),
        "alarms": list(row.alarms),
    }


def _number(value: float | None) -> float | None:
    """JSON has no NaN or infinity: those become null."""
    if value is None or not math.isfinite(value):
        return None
    return value


def _utc(ts: int) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _asset(name: str) -> str:
    return resources.files("larkps.report").joinpath("assets", name).read_text("utf-8")


_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; \
style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>{title}</title>
<style>
{css}
</style>
</head>
<body>
<header>
<h1>larkps mesh report</h1>
<p class="meta">Generated <time id="generated">{generated}</time>; window {window} \
ending {window_end}; archives: <span id="archives">{archives}</span>.</p>
</header>
<noscript><p>This page draws its grid and plots with JavaScript; \
grid.png and paths/*.png (larkps report --png) show the same without it.</p></noscript>
<main>
<section id="controls" aria-label="controls">
<span class="group" id="metric-switch" role="group" aria-label="metric"></span>
<span class="group" id="family-switch" role="group" aria-label="address family"></span>
</section>
<section id="overview">
<div id="grid-box"><table id="grid"></table>
<p class="hint">Each cell: top half row site &rarr; column site, bottom half the reverse. \
Click a half for its history.</p>
<div id="legend"></div><p id="counts"></p></div>
<aside id="detail"><p class="hint">Click a cell of the grid to see that path.</p></aside>
</section>
<section id="site-section"><h2>Sites</h2><table id="sites"></table></section>
<section id="problem-section"></section>
</main>
<script type="application/json" id="larkps-data">{data}</script>
<script>
{js}
</script>
</body>
</html>
"""
