"""Metadata-list filters (§1.2): subject fields, event/summary rows, free-form params, time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from larkps.embedded.catalog import ALL_EVENT_TYPES, event_types
from larkps.embedded.metadata import TOOLS, Clocked, Shape, as_esmond_text, test_params
from larkps.embedded.query import TIME_KEYS, BadRequest, TimeWindow
from larkps.embedded.series import Series

RESERVED = frozenset({"format", "limit", "offset", "dns-match-rule", *TIME_KEYS})
IP_FIELDS = ("source", "destination", "measurement-agent")
DNS_RULES = ("v4v6", "only-v4", "only-v6", "prefer-v4", "prefer-v6")
SUBJECT_TYPES = ("point-to-point", "network-element")

# (flavour-independent) lookup of the resolver: (name or IP, rule) -> addresses
Resolve = Callable[[str, str], list[str]]


def _agent_ip(s: Series) -> str:
    return s.agent_host.address(s.family) or ""


_SUBJECT: dict[str, Callable[[Series], str]] = {
    "input-source": lambda s: s.src_host.name,
    "input-destination": lambda s: s.dst_host.name,
    "tool-name": lambda s: TOOLS[s.kind],
    "subject-type": lambda s: "point-to-point",
    "metadata-key": lambda s: s.key,
    "source": lambda s: s.source_ip,
    "destination": lambda s: s.dest_ip,
    "measurement-agent": _agent_ip,
}


def _loose_equal(value: object, wanted: str) -> bool:
    """elmond compares JSON-typed spec values; esmond compares text."""
    if isinstance(value, bool):
        return wanted.lower() == str(value).lower()
    if isinstance(value, int | float):
        try:
            return float(wanted) == float(value)
        except ValueError:
            return False
    return str(value) == wanted


@dataclass
class MetadataFilter:
    """A parsed metadata query; call :meth:`matches` per series."""

    flavour: str
    shape: Shape
    event_type: str | None = None
    summary_type: str | None = None
    summary_window: str | None = None
    ips: dict[str, frozenset[str]] = field(default_factory=dict)
    exact: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    window: TimeWindow | None = None

    def matches(self, series: Series, clock: Clocked) -> bool:
        """Whether ``series`` passes every filter (time last: it is the costly one)."""
        if not self._subject_ok(series) or not self._params_ok(series):
            return False
        if self.flavour == "elmond":
            if not self._rows_ok(series, None):
                return False
            if self.window is None:
                return True
            return clock.last_run(series, self.window.begin, self.window.end) is not None
        return self._rows_ok(series, clock)

    def _subject_ok(self, series: Series) -> bool:
        for key, allowed in self.ips.items():
            if _SUBJECT[key](series) not in allowed:
                return False
        return all(_SUBJECT[key](series) == wanted for key, wanted in self.exact.items())

    def _params_ok(self, series: Series) -> bool:
        if not self.params:
            return True
        have = test_params(series, self.shape)
        for key, wanted in self.params.items():
            if key not in have:
                return False
            value = have[key]
            ok = (
                as_esmond_text(value) == wanted
                if self.flavour == "esmond"
                else _loose_equal(value, wanted)
            )
            if not ok:
                return False
        return True

    def _rows_ok(self, series: Series, clock: Clocked | None) -> bool:
        """Is there one event-type row matching event, summary and (esmond) time filters?"""
        plain = (
            self.event_type is None and self.summary_type is None and self.summary_window is None
        )
        if plain and (clock is None or self.window is None):
            return True
        for et, sums in event_types(series.kind, self.flavour):
            if self.event_type is not None and et != self.event_type:
                continue
            rows = [("base", "0")] + [(s.summary_type, str(s.window)) for s in sums]
            if not any(self._row_ok(st, sw) for st, sw in rows):
                continue
            if clock is None or self.window is None or self._updated_in(clock, series, et):
                return True
        return False

    def _updated_in(self, clock: Clocked, series: Series, event: str) -> bool:
        """esmond: is the event type's time-updated inside the time window?"""
        assert self.window is not None
        updated = clock.updated_since(series, event, self.window.begin)
        return updated is not None and (self.window.end is None or updated <= self.window.end)

    def _row_ok(self, summary_type: str, window: str) -> bool:
        if self.summary_type is not None and summary_type != self.summary_type:
            return False
        return self.summary_window is None or window == self.summary_window


def build_filter(
    params: dict[str, str], shape: Shape, resolve: Resolve, window: TimeWindow | None
) -> MetadataFilter:
    """Parse metadata-list query parameters; raise BadRequest for invalid values."""
    flt = MetadataFilter(flavour=shape.flavour, shape=shape, window=window)
    rule = params.get("dns-match-rule", "v4v6")
    if rule not in DNS_RULES:
        raise BadRequest(f"Invalid dns-match-rule parameter {rule}")
    for key, value in params.items():
        if key in RESERVED:
            continue
        if key == "event-type":
            flt.event_type = value
        elif key == "summary-type":
            flt.summary_type = value
        elif key == "summary-window":
            flt.summary_window = _window_text(value)
        elif key in IP_FIELDS:
            flt.ips[key] = frozenset(resolve(value, rule))
        elif key in _SUBJECT:
            flt.exact[key] = (
                _elmond_tool(value) if key == "tool-name" and shape.flavour == "elmond" else value
            )
        else:
            flt.params[key] = value
    _check_elmond(flt)
    return flt


def _elmond_tool(value: str) -> str:
    """elmond matches the bare tool name, with or without the ``pscheduler/`` prefix."""
    return value if value.startswith("pscheduler/") else f"pscheduler/{value}"


def _window_text(value: str) -> str:
    try:
        return str(int(value))
    except ValueError:
        raise BadRequest("Summary window parameter must be an integer") from None


def _check_elmond(flt: MetadataFilter) -> None:
    if flt.flavour != "elmond":
        return
    subject = flt.exact.get("subject-type")
    if subject is not None and subject not in SUBJECT_TYPES:
        raise BadRequest(f"Invalid subject-type {subject}.")
    if flt.event_type is not None and flt.event_type not in ALL_EVENT_TYPES:
        raise BadRequest(f"Invalid event-type parameter {flt.event_type}")
