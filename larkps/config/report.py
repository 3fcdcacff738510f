"""The ``[report]`` table: colour thresholds and colours of ``larkps report``.

Kept apart from :mod:`larkps.config`, which calls :func:`report_settings`.
Bandwidth is good at or above its thresholds; loss and delay are good below theirs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from larkps.config.reader import Section
from larkps.units import parse_size

COLOUR_PATTERN = re.compile(r"^#[0-9A-Fa-f]{6}$")
COLOUR_KEYS = ("ok", "warning", "critical", "stale", "missing")


@dataclass(frozen=True, slots=True)
class ReportColours:
    """CSS colours (#rrggbb) of the grid states."""

    ok: str = "#1a9850"
    warning: str = "#f4a40b"
    critical: str = "#d73027"
    stale: str = "#9e9e9e"  # the newest test is older than [windows] stale_after
    missing: str = "#d9d9d9"  # no data in the window, or no such path


@dataclass(frozen=True, slots=True)
class ReportSettings:
    """Thresholds of the report's colours and the demand behind its throttle advice.

    A path is "warning" when its window median crosses the warning threshold and
    "critical" when it crosses the critical one: bandwidth below, loss and one-way
    delay at or above.
    """

    bandwidth_warning: float = 1e9  # bits/s
    bandwidth_critical: float = 1e8  # bits/s
    loss_warning: float = 0.001  # fraction
    loss_critical: float = 0.01  # fraction
    delay_warning_ms: float = 50.0
    delay_critical_ms: float = 100.0
    bytes_per_job: int = 2 * 10**9  # per-job volume of the throttle advice
    colours: ReportColours = field(default_factory=ReportColours)


def report_settings(section: Section) -> ReportSettings:
    """Read and check ``[report]`` (and ``[report.colours]``)."""
    defaults = ReportSettings()
    result = ReportSettings(
        bandwidth_warning=_rate(section, "bandwidth_warning", defaults.bandwidth_warning),
        bandwidth_critical=_rate(section, "bandwidth_critical", defaults.bandwidth_critical),
        loss_warning=section.fraction("loss_warning", defaults.loss_warning),
        loss_critical=section.fraction("loss_critical", defaults.loss_critical),
        delay_warning_ms=section.number("delay_warning_ms", defaults.delay_warning_ms, 0.0, 1e6),
        delay_critical_ms=section.number("delay_critical_ms", defaults.delay_critical_ms, 0.0, 1e6),
        bytes_per_job=_size(section, "bytes_per_job", defaults.bytes_per_job),
        colours=_colours(section.section("colours")),
    )
    _check_order(section, result)
    section.finish()
    return result


def _rate(section: Section, key: str, default: float) -> float:
    value = section.rate(key)
    return section.keep(key, default if value is None else value)


def _size(section: Section, key: str, default: int) -> int:
    if key not in section.data:
        return section.keep(key, default)
    text = section.string(key)
    try:
        size = parse_size(text)
    except ValueError as exc:
        raise section.error(key, str(exc)) from None
    if size <= 0:
        raise section.error(key, f"expected a positive size, got {text!r}")
    return section.keep(key, size)


def _check_order(section: Section, report: ReportSettings) -> None:
    if report.bandwidth_critical > report.bandwidth_warning:
        raise section.error("bandwidth_critical", "must not be above bandwidth_warning")
    if report.loss_critical < report.loss_warning:
        raise section.error("loss_critical", "must not be below loss_warning")
    if report.delay_critical_ms < report.delay_warning_ms:
        raise section.error("delay_critical_ms", "must not be below delay_warning_ms")


def _colours(section: Section) -> ReportColours:
    defaults = ReportColours()
    chosen = {}
    for key in COLOUR_KEYS:
        if key in section.data:
            chosen[key] = section.pattern(key, COLOUR_PATTERN, 'a colour such as "#1a9850"')
    section.finish()
    return ReportColours(**{key: chosen.get(key, getattr(defaults, key)) for key in COLOUR_KEYS})
