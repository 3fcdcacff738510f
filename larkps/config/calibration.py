"""The ``[calibration]`` section: where completed jobs are read and how they calibrate."""

from __future__ import annotations

from dataclasses import dataclass, field

from larkps.config.reader import Section


@dataclass(frozen=True, slots=True)
class CalibrationPolicy:
    """The ``[calibration]`` rules (docs/configuration.md)."""

    half_life: int = 3 * 86400
    max_age: int = 14 * 86400
    min_samples: int = 5
    min_ratio: float = 0.25
    max_ratio: float = 2.0
    max_step: float = 1.5
    min_seconds: int = 10  # shorter transfers are timed too coarsely (whole seconds)


@dataclass(frozen=True, slots=True)
class CalibrationSettings:
    """Read the schedd's history each daemon cycle (when ``enabled``) and calibrate."""

    enabled: bool = False
    pool: str | None = None  # collector to locate the schedd; None: this host's config
    schedd: str | None = None  # schedd name; None: the local schedd
    since: int = 7 * 86400  # how far back the first read goes
    history_limit: int = 10000  # at most this many history ads a read
    timeout: int = 60  # deadline of one read
    policy: CalibrationPolicy = field(default_factory=CalibrationPolicy)


def calibration_settings(section: Section) -> CalibrationSettings:
    policy = CalibrationPolicy(
        half_life=section.duration("half_life", "3d"),
        max_age=section.duration("max_age", "14d"),
        min_samples=section.integer("min_samples", 5, minimum=1),
        min_ratio=section.number("min_ratio", 0.25, 0.01, 1.0),
        max_ratio=section.number("max_ratio", 2.0, 1.0, 100.0),
        max_step=section.number("max_step", 1.5, 1.0, 100.0),
        min_seconds=section.integer("min_seconds", 10, minimum=1),
    )
    result = CalibrationSettings(
        enabled=section.boolean("enabled", False),
        pool=section.optional_string("pool"),
        schedd=section.optional_string("schedd"),
        since=section.duration("since", "7d"),
        history_limit=section.integer("history_limit", 10000, minimum=1, maximum=10**7),
        timeout=section.duration("timeout", "60s"),
        policy=policy,
    )
    for key, value in (("half_life", policy.half_life), ("timeout", result.timeout)):
        if value <= 0:
            raise section.error(key, "must be positive")
    section.finish()
    return result
