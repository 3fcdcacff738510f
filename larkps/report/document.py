"""Pure: every figure the path and site ads carry, as one JSON document or CSV rows.

Built from the ads' own attributes (what ``condor_status`` would show), so the
document can hold nothing the ads do not and miss nothing they do. A window
attribute ``LarkPS_<Group>_<W>_<Field>`` lands at ``windows[W][Group][Field]`` (the
ads' names, docs/classads.md); path-wide ones under ``expected``, ``calibration``, ``health`` and
``alarms``. The cycle's NWS forecasts of each path's metrics are added.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from larkps.model import PATH_AD_TYPE, SITE_AD_TYPE, Forecast
from larkps.units import parse_duration

PATH_GROUPS = ("ThroughputMbps", "OneWayDelayMs", "RttMs", "Loss", "Failures")
_WINDOW_ATTRIBUTE = re.compile(
    r"^LarkPS_(" + "|".join(PATH_GROUPS) + r")_([0-9a-z]+)_([A-Za-z][A-Za-z0-9]*)$"
)
_SITE_WINDOW_ATTRIBUTE = re.compile(r"^LarkPS_([A-Za-z]+)_([0-9][0-9a-z]*)$")
#: Attributes of every ad that say nothing about the network.
BOOKKEEPING = frozenset(
    {"MyType", "Name", "ClassAdLifetime", "UpdateSequenceNumber", "DaemonStartTime"}
    | {"LarkPS_Version"}
)
IDENTITY = {
    "LarkPS_SourceSite": "source_site",
    "LarkPS_DestinationSite": "destination_site",
    "LarkPS_AddressFamily": "family",
    "LarkPS_Hosts": "hosts",
    "LarkPS_Window": "window_s",
    "LarkPS_UpdateTime": "update_time",
}
PATH_WIDE = {
    "LarkPS_Health": "health",
    "LarkPS_Alarms": "alarms",
}
EXPECTED_PREFIX = "LarkPS_Expected"
CALIBRATION_PREFIX = "LarkPS_Calibration"


@dataclass(frozen=True, slots=True)
class PathSelector:
    """``A->B`` or ``A->B/ipv4`` on the command line."""

    source_site: str
    destination_site: str
    family: str | None = None

    def matches(self, source: str, destination: str, family: str) -> bool:
        return (
            source == self.source_site
            and destination == self.destination_site
            and self.family in (None, family)
        )

    def describe(self) -> str:
        family = f"/{self.family}" if self.family else ""
        return f"{self.source_site}->{self.destination_site}{family}"


def parse_path(text: str) -> PathSelector:
    """``SOURCE->DESTINATION[/ipv4|/ipv6]``; ValueError naming what is wrong."""
    source, arrow, rest = text.partition("->")
    destination, slash, family = rest.partition("/")
    if not arrow or not source.strip() or not destination.strip():
        raise ValueError(f"expected SOURCE->DESTINATION (e.g. UNL->WISC), got {text!r}")
    if slash and family not in ("ipv4", "ipv6"):
        raise ValueError(f"the family after '/' must be ipv4 or ipv6, got {family!r}")
    return PathSelector(source.strip(), destination.strip(), family if slash else None)


def path_document(ad: Mapping[str, Any], forecasts: Iterable[Forecast] = ()) -> dict[str, Any]:
    """One path ad as a document: identity, windows, expected, health, alarms."""
    document: dict[str, Any] = {"path": _path_name(ad)}
    for attribute, key in IDENTITY.items():
        if attribute in ad:
            document[key] = ad[attribute]
    windows: dict[str, dict[str, dict[str, Any]]] = {}
    expected: dict[str, Any] = {}
    calibration: dict[str, Any] = {}
    for attribute, value in ad.items():
        match = _WINDOW_ATTRIBUTE.match(attribute)
        if match:
            group, label, field = match.groups()
            windows.setdefault(label, {}).setdefault(group, {})[field] = value
        elif attribute.startswith(EXPECTED_PREFIX):
            expected[attribute[len(EXPECTED_PREFIX) :]] = value
        elif attribute.startswith(CALIBRATION_PREFIX):
            calibration[attribute[len(CALIBRATION_PREFIX) :]] = value
        elif attribute in PATH_WIDE:
            document[PATH_WIDE[attribute]] = value
    document["windows"] = {label: windows[label] for label in sorted(windows, key=_seconds)}
    document["expected"] = expected
    if calibration:
        document["calibration"] = calibration
    document["forecasts"] = [_forecast(f) for f in forecasts]
    return document


def _path_name(ad: Mapping[str, Any]) -> str:
    return (
        f"{ad.get('LarkPS_SourceSite', '')}->{ad.get('LarkPS_DestinationSite', '')}"
        f"/{ad.get('LarkPS_AddressFamily', '')}"
    )


def _forecast(forecast: Forecast) -> dict[str, Any]:
    return {
        "metric": forecast.metric.value,
        "value": forecast.value,
        "error": forecast.error,
        "method": forecast.method,
        "samples": forecast.samples,
        "latest_ts": forecast.latest_ts,
    }


def site_document(ad: Mapping[str, Any]) -> dict[str, Any]:
    """One site ad: its main-window health and alarms, and its figures per window."""
    document: dict[str, Any] = {
        "site": ad.get("LarkPS_Site"),
        "window_s": ad.get("LarkPS_Window"),
        "update_time": ad.get("LarkPS_UpdateTime"),
        "health": ad.get("LarkPS_Health"),
        "alarms": ad.get("LarkPS_Alarms", []),
    }
    windows: dict[str, dict[str, Any]] = {}
    for attribute, value in ad.items():
        match = _SITE_WINDOW_ATTRIBUTE.match(attribute)
        if match:
            name, label = match.groups()
            windows.setdefault(label, {})[name] = value
    document["windows"] = {label: windows[label] for label in sorted(windows, key=_seconds)}
    return document


def stats_document(
    ads: Iterable[Mapping[str, Any]],
    forecasts: Iterable[Forecast],
    selector: PathSelector | None = None,
) -> dict[str, Any]:
    """Path documents (those ``selector`` picks) and, without a selector, site documents."""
    by_path: dict[str, list[Forecast]] = {}
    for forecast in forecasts:
        by_path.setdefault(forecast.path.name, []).append(forecast)
    paths, sites = [], []
    for ad in ads:
        kind = ad.get("MyType")
        if kind == PATH_AD_TYPE and _picked(ad, selector):
            paths.append(path_document(ad, by_path.get(_path_name(ad), ())))
        elif kind == SITE_AD_TYPE and selector is None:
            sites.append(site_document(ad))
    return {"paths": paths, "sites": sites}


def _picked(ad: Mapping[str, Any], selector: PathSelector | None) -> bool:
    if selector is None:
        return True
    return selector.matches(
        str(ad.get("LarkPS_SourceSite")),
        str(ad.get("LarkPS_DestinationSite")),
        str(ad.get("LarkPS_AddressFamily")),
    )


# --- CSV: one row per path and window --------------------------------------------------

LEAD_COLUMNS = ("source_site", "destination_site", "family", "window_s", "window")


def csv_rows(document: Mapping[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and rows: the path's identity, its window's figures (``Group_Field``),
    then its path-wide figures (``Expected*``, ``Calibration*``, ``Health``, ``Alarms``)."""
    rows: list[dict[str, Any]] = []
    window_columns: dict[str, None] = {}
    wide_columns: dict[str, None] = {}
    for path in document["paths"]:
        wide = {f"Expected{k}": v for k, v in path["expected"].items()}
        wide |= {f"Calibration{k}": v for k, v in path.get("calibration", {}).items()}
        wide["Health"] = path.get("health")
        wide["Alarms"] = " ".join(path.get("alarms", []))
        wide_columns.update(dict.fromkeys(wide))
        for label, groups in sorted(path["windows"].items(), key=lambda item: _seconds(item[0])):
            row: dict[str, Any] = {
                "source_site": path.get("source_site"),
                "destination_site": path.get("destination_site"),
                "family": path.get("family"),
                "window_s": _seconds(label),
                "window": label,
            }
            for group, fields in groups.items():
                for field, value in fields.items():
                    row[f"{group}_{field}"] = value
            window_columns.update(dict.fromkeys(k for k in row if k not in LEAD_COLUMNS))
            rows.append(row | wide)
    columns = [*LEAD_COLUMNS, *_ordered(window_columns), *wide_columns]
    return columns, rows


def _ordered(columns: Iterable[str]) -> list[str]:
    order = {g: i for i, g in enumerate(PATH_GROUPS)}
    return sorted(columns, key=lambda c: (order.get(c.split("_", 1)[0], 99), c))


def _seconds(label: str) -> int:
    """Seconds of a window label (units.format_duration's 1h, 24h, 7d, 90m)."""
    return parse_duration(label)


def render_document(document: Mapping[str, Any], fmt: str) -> str:
    """``json``: the whole document; ``csv``: one row per path and window."""
    if fmt == "json":
        return json.dumps(document, indent=1) + "\n"
    columns, rows = csv_rows(document)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", restval="")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return buffer.getvalue()


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return value
