"""The statistics sections of the config file: [quality], [alarms] and [model].

[alarms] and [model] are read straight into the policies of ``larkps.model``
(``AlarmPolicy``, ``ModelPolicy``); [quality] feeds ``larkps.stats.aggregate.QualityPolicy``
together with ``[windows] stale_after``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from larkps.config.reader import Section
from larkps.model import AlarmPolicy, ModelPolicy


@dataclass(frozen=True, slots=True)
class QualitySettings:
    """When a figure is flagged (stale_after lives in [windows])."""

    min_completeness: float = 0.5
    clock_error_ms: float = 10.0


def stats_settings(root: Section) -> dict[str, Any]:
    """``quality``, ``alarms`` and ``model`` for :class:`larkps.config.settings.Settings`."""
    return {
        "quality": _quality(root.section("quality")),
        "alarms": _alarms(root.section("alarms")),
        "model": _model(root.section("model")),
    }


def _quality(section: Section) -> QualitySettings:
    result = QualitySettings(
        min_completeness=section.fraction("min_completeness", 0.5),
        clock_error_ms=section.number("clock_error_ms", 10.0, 0.0, 1e6),
    )
    section.finish()
    return result


def _alarms(section: Section) -> AlarmPolicy:
    result = AlarmPolicy(
        bandwidth_z=section.number("bandwidth_z", -2.0, -100.0, 0.0),
        bandwidth_drop=section.fraction("bandwidth_drop", 0.5),
        bandwidth_window=section.duration("bandwidth_window", "24h"),
        bandwidth_baseline=section.duration("bandwidth_baseline", "21d"),
        loss=section.fraction("loss", 0.02),
        loss_window=section.duration("loss_window", "24h"),
        delay_p95_factor=section.number("delay_p95_factor", 1.5, 1.0, 100.0),
        delay_iqr_factor=section.number("delay_iqr_factor", 2.0, 0.0, 100.0),
        delay_window=section.duration("delay_window", "1h"),
        delay_baseline=section.duration("delay_baseline", "7d"),
        delay_min_tests=section.integer("delay_min_tests", 10, minimum=1),
        clock_offset_ms=section.number("clock_offset_ms", 100.0, 0.0, 1e6),
        clock_window=section.duration("clock_window", "24h"),
        site_paths=section.integer("site_paths", 5, minimum=1),
        clear_after=section.integer("clear_after", 3, minimum=1),
        forget_after=section.duration("forget_after", "7d"),
    )
    for short, long in (
        ("bandwidth_window", "bandwidth_baseline"),
        ("delay_window", "delay_baseline"),
    ):
        if getattr(result, short) >= getattr(result, long):
            raise section.error(short, f"must be shorter than {long}")
    section.finish()
    return result


def _model(section: Section) -> ModelPolicy:
    capacity = section.rate("path_capacity")
    result = ModelPolicy(
        mss_bytes=section.integer("mss", 1448, minimum=500, maximum=65535),
        mathis_constant=section.number("mathis_constant", 1.2247, 0.1, 10.0),
        path_capacity_bps=section.keep("path_capacity", 10e9 if capacity is None else capacity),
    )
    section.finish()
    return result
