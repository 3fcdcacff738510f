"""Configuration of fetching: per-archive HTTP and esmond options, and the ``[fetch]`` table.

Kept apart from :mod:`larkps.config` so that the archive-source keys live in one
place; ``config`` calls :func:`archive_fetch` for each ``[[archives]]`` table and
:func:`fetch_settings` for ``[fetch]``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from larkps.config.queries import DATA_PAGE, DEFAULT_EVENT_TYPES, DNS_MATCH_RULES, MetadataFilters
from larkps.config.reader import Section
from larkps.errors import ConfigError
from larkps.model import EVENT_TYPE_METRICS, Family
from larkps.units import format_duration, parse_size

ESMOND_KINDS = ("esmond", "embedded")
FAMILIES = ("ipv4", "ipv6")
FILTER_KEYS = (
    "source",
    "destination",
    "measurement_agent",
    "input_source",
    "input_destination",
    "tool_name",
)
HOST_PATTERN = re.compile(r"^[A-Za-z0-9_.:\[\]/-]{1,255}$")
PARAM_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,63}$")


@dataclass(frozen=True, slots=True)
class ArchiveFetch:
    """Per-archive transport and esmond options."""

    retries: int = 3
    retry_backoff: float = 0.5
    max_response_size: int = 64 * 2**20
    redirect_hosts: tuple[str, ...] = ()
    event_types: tuple[str, ...] = DEFAULT_EVENT_TYPES
    page_size: int = DATA_PAGE
    filters: MetadataFilters = field(default_factory=MetadataFilters)
    interval: int | None = None  # own cadence (s) in `larkps run`; None: every cycle


class Writer(StrEnum):
    """``[fetch] writer``: where an incremental cycle commits pages."""

    AUTO = "auto"  # a second process for big cycles, this one otherwise
    PROCESS = "process"  # always a second process
    THREAD = "thread"  # always this process


@dataclass(frozen=True, slots=True)
class FetchSettings:
    """``[fetch]``: incremental polling, state and deadlines (seconds)."""

    incremental: bool = False
    deadline: int | None = 240
    retention: int = 8 * 86400
    discover_interval: int = 3600
    writer: Writer = Writer.AUTO


def archive_fetch(section: Section, kind: str, cycle_interval: int) -> ArchiveFetch:
    """Read the fetch keys of one ``[[archives]]`` table; ``cycle_interval`` is
    ``[larkps] interval``, the shortest own ``interval`` an archive may have."""
    esmond_only = ("event_types", "page_size", "filters")
    if kind not in ESMOND_KINDS:
        for key in esmond_only:
            if key in section.data:
                raise section.error(key, 'only archives of kind "esmond" or "embedded" take this')
    return ArchiveFetch(
        retries=section.integer("retries", 3, minimum=0, maximum=10),
        retry_backoff=section.number("retry_backoff", 0.5, minimum=0.0, maximum=60.0),
        max_response_size=_size(section, "max_response_size", "64MiB"),
        redirect_hosts=tuple(section.string_list("redirect_hosts")),
        event_types=_event_types(section),
        page_size=section.integer("page_size", DATA_PAGE, minimum=1, maximum=10000),
        filters=_filters(section.section("filters")),
        interval=_interval(section, cycle_interval),
    )


def _interval(section: Section, cycle_interval: int) -> int | None:
    if "interval" not in section.data:
        return section.keep("interval", None)
    interval = section.duration("interval")
    if interval < cycle_interval:
        shortest, given = format_duration(cycle_interval), format_duration(interval)
        raise section.error(
            "interval", f"expected at least [larkps] interval ({shortest}), got {given}"
        )
    return interval


def _size(section: Section, key: str, default: str) -> int:
    text = section.string(key, default)
    try:
        size = parse_size(text)
    except ValueError as exc:
        raise section.error(key, str(exc)) from None
    if size < 1024:
        raise section.error(key, f"expected at least 1KiB, got {text!r}")
    return section.keep(key, size)


def _event_types(section: Section) -> tuple[str, ...]:
    if "event_types" not in section.data:
        return section.keep("event_types", DEFAULT_EVENT_TYPES)
    names = section.string_list("event_types")
    for index, name in enumerate(names):
        if name not in EVENT_TYPE_METRICS:
            known = ", ".join(sorted(EVENT_TYPE_METRICS))
            raise section.error(f"event_types[{index}]", f"expected one of {known}, got {name!r}")
    if not names:
        raise section.error("event_types", "expected at least one event type")
    return tuple(dict.fromkeys(names))


def _filters(section: Section) -> MetadataFilters:
    what = "a host name, IP address or tool name"
    values = {
        key: section.pattern(key, HOST_PATTERN, what) if key in section.data else None
        for key in FILTER_KEYS
    }
    rule = (
        section.choice("dns_match_rule", DNS_MATCH_RULES)
        if "dns_match_rule" in section.data
        else None
    )
    time_range = section.duration("time_range") if "time_range" in section.data else None
    families = section.string_list("families")
    for index, family in enumerate(families):
        if family not in FAMILIES:
            raise section.error(f"families[{index}]", f'expected "ipv4" or "ipv6", got {family!r}')
    params_section = section.section("params")
    params = []
    for name in sorted(params_section.data):
        if not PARAM_PATTERN.match(name):
            raise params_section.error(name, "expected a metadata parameter name such as tool-name")
        params.append((name, params_section.pattern(name, HOST_PATTERN, "a plain value")))
    params_section.finish()
    section.finish()
    return MetadataFilters(
        source=values["source"],
        destination=values["destination"],
        measurement_agent=values["measurement_agent"],
        input_source=values["input_source"],
        input_destination=values["input_destination"],
        tool_name=values["tool_name"],
        dns_match_rule=rule,
        time_range=time_range,
        families=tuple(Family(name) for name in families),
        params=tuple(params),
    )


def fetch_settings(
    section: Section, state_dir_given: bool, interval: int, longest_window: int
) -> FetchSettings:
    """Read ``[fetch]``. Incremental polling is on when ``state_dir`` is configured."""
    deadline_default = max(30, interval * 4 // 5)
    result = FetchSettings(
        incremental=section.boolean("incremental", state_dir_given),
        deadline=section.duration("deadline", deadline_default),
        retention=section.duration("retention", longest_window + 3600),
        discover_interval=section.duration("discover_interval", "1h"),
        writer=Writer(section.choice("writer", tuple(Writer), Writer.AUTO.value)),
    )
    if result.retention < longest_window:
        raise section.error("retention", "retention must cover the longest of windows.list")
    section.finish()
    return result


def check_intervals(
    source: str, archives: Sequence[tuple[int | None, bool]], fetch: FetchSettings
) -> None:
    """Own archive intervals skip fetches, so the store must keep the skipped archive's
    points: ``archives`` holds (own interval, summary mode) per ``[[archives]]`` table."""
    for index, (interval, summary) in enumerate(archives):
        if interval is None:
            continue
        if not fetch.incremental:
            problem = (
                "an archive's own interval needs incremental fetching "
                "(set [larkps] state_dir or [fetch] incremental = true)"
            )
            raise ConfigError(source, f"archives[{index}].interval", problem)
        if summary:
            problem = "a summary-mode archive keeps nothing in the store; it is read every cycle"
            raise ConfigError(source, f"archives[{index}].interval", problem)
