"""Which event types and summaries each test kind has, per archive flavour.

esmond lists follow what the pScheduler esmond archiver registers (and the order real
archives return); elmond lists follow its metadata parsers and fixed summary table.
"""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("throughput", "latencybg", "rtt")
FLAVOURS = ("esmond", "elmond")

URL_TO_JSON_SUMMARY = {
    "base": "base",
    "aggregations": "aggregation",
    "averages": "average",
    "statistics": "statistics",
}
JSON_TO_URL_SUMMARY = {v: k for k, v in URL_TO_JSON_SUMMARY.items()}
ELMOND_WINDOWS = (300, 3600, 86400)


@dataclass(frozen=True)
class Summary:
    """One registered summary: JSON summary type and window (seconds)."""

    summary_type: str
    window: int


def _agg(*windows: int) -> tuple[Summary, ...]:
    return tuple(Summary("aggregation", w) for w in windows)


def _stats(*windows: int) -> tuple[Summary, ...]:
    return tuple(Summary("statistics", w) for w in windows)


_AGG3 = _agg(300, 3600, 86400)
_AVG_DAY = (Summary("average", 86400),)

ESMOND_EVENTS: dict[str, tuple[tuple[str, tuple[Summary, ...]], ...]] = {
    "throughput": (
        ("packet-retransmits", ()),
        ("pscheduler-run-href", ()),
        ("throughput", _AVG_DAY),
        ("failures", ()),
        ("throughput-subintervals", ()),
        ("packet-retransmits-subintervals", ()),
    ),
    "latencybg": (
        ("time-error-estimates", ()),
        ("packet-duplicates", ()),
        ("pscheduler-run-href", ()),
        ("histogram-ttl", ()),
        ("packet-count-sent", _AGG3),
        ("packet-reorders", ()),
        ("packet-count-lost", _AGG3),
        ("histogram-owdelay", _AGG3 + _stats(0, 300, 3600, 86400)),
        ("failures", ()),
        ("packet-loss-rate", _AGG3),
    ),
    "rtt": (
        ("failures", ()),
        ("packet-count-sent", _AGG3),
        ("histogram-rtt", _agg(3600) + _stats(3600) + _agg(86400) + _stats(86400, 0)),
        ("histogram-ttl-reverse", ()),
        ("packet-duplicates-bidir", ()),
        ("packet-loss-rate-bidir", _agg(3600, 86400)),
        ("packet-count-lost-bidir", _AGG3),
        ("packet-reorders-bidir", ()),
        ("pscheduler-run-href", ()),
    ),
}

_ELMOND_ORDER: dict[str, tuple[str, ...]] = {
    "throughput": (
        "failures",
        "throughput",
        "throughput-subintervals",
        "packet-retransmits",
        "packet-retransmits-subintervals",
        "pscheduler-run-href",
    ),
    "latencybg": (
        "failures",
        "packet-count-sent",
        "histogram-owdelay",
        "histogram-ttl",
        "packet-duplicates",
        "packet-loss-rate",
        "packet-count-lost",
        "packet-reorders",
        "time-error-estimates",
        "pscheduler-run-href",
    ),
    "rtt": (
        "failures",
        "packet-count-sent",
        "histogram-rtt",
        "histogram-ttl-reverse",
        "packet-duplicates-bidir",
        "packet-loss-rate-bidir",
        "packet-count-lost-bidir",
        "packet-reorders-bidir",
        "pscheduler-run-href",
    ),
}

ELMOND_SUMMARIES: dict[str, tuple[Summary, ...]] = {
    "throughput": _AVG_DAY,
    "packet-loss-rate": _AGG3,
    "packet-loss-rate-bidir": _AGG3,
    "packet-count-sent": _AGG3,
    "packet-count-lost": _AGG3,
    "packet-count-lost-bidir": _AGG3,
    "histogram-owdelay": _stats(0, 300, 3600, 86400),
    "histogram-rtt": _stats(0, 300, 3600, 86400),
}

# Event types whose value is an integer count (summable).
COUNT_EVENTS = frozenset(
    {
        "packet-count-sent",
        "packet-count-lost",
        "packet-count-lost-bidir",
        "packet-duplicates",
        "packet-duplicates-bidir",
        "packet-reorders",
        "packet-reorders-bidir",
        "packet-retransmits",
    }
)
LOSS_EVENTS = frozenset({"packet-loss-rate", "packet-loss-rate-bidir"})
DELAY_HISTOGRAMS = frozenset({"histogram-owdelay", "histogram-rtt"})
ALL_EVENT_TYPES = frozenset(et for events in ESMOND_EVENTS.values() for et, _ in events)
KIND_EVENT_TYPES = {
    kind: frozenset(et for et, _ in events) for kind, events in ESMOND_EVENTS.items()
}  # esmond's event types of each test kind (what a series can hold)


def event_types(kind: str, flavour: str) -> tuple[tuple[str, tuple[Summary, ...]], ...]:
    """(event type, summaries) pairs a test of ``kind`` has in ``flavour``."""
    if flavour == "esmond":
        return ESMOND_EVENTS[kind]
    return tuple((et, ELMOND_SUMMARIES.get(et, ())) for et in _ELMOND_ORDER[kind])


def has_summary(kind: str, flavour: str, event: str, summary: Summary) -> bool:
    """Whether ``summary`` is registered for ``event`` of a test of ``kind``."""
    return any(et == event and summary in sums for et, sums in event_types(kind, flavour))
