"""What each OpenSearch / Elasticsearch index holds, declaratively.

One :class:`IndexSpec` per index family (the config key that can rename it) lists
the event types larkps reads from it: the ``_source`` field, how to scale it into
larkps units and which metric it becomes. Event-type names follow esmond where an
esmond equivalent exists; the scalar stand-ins for histograms are larkps names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from larkps.model import Metric


class FieldKind(Enum):
    """How a field becomes points."""

    VALUE = "value"  # one scalar per document
    COUNT = "count"  # one packet count per document; summaries also sum it
    HISTOGRAM = "histogram"  # parallel values[]/counts[] arrays
    FAILURE = "failure"  # a failed test: the field is the error text
    TRACE = (
        "trace"  # hop IPs (+ "ttls"): value = hop count, note = larkps.sources.routes fingerprint
    )


class Scale(Enum):
    """How a raw field value is turned into larkps units."""

    NONE = "none"
    SECONDS_TO_MS = "seconds"  # pscheduler_rtt result.rtt.* are seconds
    BUCKET_LABEL = "bucket"  # latency labels: label * bucket-width * 1000 ms


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One event type read from one field of an index."""

    event_type: str
    metric: Metric
    field: str  # dotted path inside _source
    kind: FieldKind = FieldKind.VALUE
    scale: Scale = Scale.NONE
    summary: bool = True  # aggregated server-side in summary mode


@dataclass(frozen=True, slots=True)
class IndexSpec:
    """One index (or data stream) and the event types larkps reads from it."""

    name: str  # config key under [archives.search.indices]
    default_index: str
    fields: tuple[FieldSpec, ...]

    def event_types(self) -> tuple[str, ...]:
        return tuple(f.event_type for f in self.fields)

    def field_for(self, event_type: str) -> FieldSpec | None:
        return next((f for f in self.fields if f.event_type == event_type), None)


def _failure(field: str) -> FieldSpec:
    return FieldSpec("failures", Metric.FAILURE, field, FieldKind.FAILURE)  # summary: failed runs


_LATENCY_FIELDS = (
    FieldSpec(
        "histogram-owdelay",
        Metric.OWDELAY,
        "result.latency.histogram",
        FieldKind.HISTOGRAM,
        Scale.BUCKET_LABEL,
        summary=False,  # histograms are not indexed (mapping: enabled false)
    ),
    FieldSpec(
        "owdelay-median", Metric.OWDELAY_MEDIAN, "result.latency.median", scale=Scale.BUCKET_LABEL
    ),
    FieldSpec("packet-count-lost", Metric.PACKETS_LOST, "result.packets.lost", FieldKind.COUNT),
    FieldSpec("packet-count-sent", Metric.PACKETS_SENT, "result.packets.sent", FieldKind.COUNT),
    FieldSpec("time-error-estimates", Metric.CLOCK_ERROR, "result.max_clock_error"),
    _failure("result.error"),
)

OPENSEARCH_INDICES = (
    IndexSpec(
        "throughput",
        "pscheduler_throughput",
        (
            FieldSpec("throughput", Metric.THROUGHPUT, "result.throughput"),
            FieldSpec("packet-retransmits", Metric.RETRANSMITS, "result.retransmits"),
            FieldSpec(
                "packet-count-lost", Metric.PACKETS_LOST, "result.packets_lost", FieldKind.COUNT
            ),
            FieldSpec(
                "packet-count-sent", Metric.PACKETS_SENT, "result.packets_sent", FieldKind.COUNT
            ),
            _failure("result.error"),
        ),
    ),
    IndexSpec("latency", "pscheduler_latency", _LATENCY_FIELDS),
    IndexSpec("latencybg", "pscheduler_latencybg", _LATENCY_FIELDS),
    IndexSpec(
        "rtt",
        "pscheduler_rtt",
        (
            FieldSpec("rtt-mean", Metric.RTT_MEAN, "result.rtt.mean", scale=Scale.SECONDS_TO_MS),
            FieldSpec("rtt-min", Metric.RTT_MIN, "result.rtt.min", scale=Scale.SECONDS_TO_MS),
            FieldSpec(
                "packet-count-lost-bidir",
                Metric.PACKETS_LOST_BIDIR,
                "result.packets.lost",
                FieldKind.COUNT,
            ),
            FieldSpec(
                "packet-count-sent", Metric.PACKETS_SENT, "result.packets.sent", FieldKind.COUNT
            ),
            FieldSpec("packet-loss-rate-bidir", Metric.LOSS_RATE_BIDIR, "result.packets.loss"),
            _failure("result.error"),
        ),
    ),
)

PSES_INDICES = (
    IndexSpec(
        "throughput",
        "ps_throughput",
        (
            FieldSpec("throughput", Metric.THROUGHPUT, "throughput"),
            FieldSpec("packet-retransmits", Metric.RETRANSMITS, "retransmits"),
        ),
    ),
    IndexSpec(
        "owd",
        "ps_owd",
        (
            FieldSpec("owdelay-median", Metric.OWDELAY_MEDIAN, "delay_median"),
            FieldSpec("owdelay-mean", Metric.OWDELAY_MEAN, "delay_mean"),
        ),
    ),
    IndexSpec(
        "packetloss",
        "ps_packetloss",
        (FieldSpec("packet-loss-rate", Metric.LOSS_RATE, "packet_loss"),),
    ),
    IndexSpec(
        "retransmits",
        "ps_retransmits",
        (FieldSpec("packet-retransmits", Metric.RETRANSMITS, "retransmits"),),
    ),
    IndexSpec(
        "trace",
        "ps_trace",
        (FieldSpec("packet-trace", Metric.PATH, "hops", FieldKind.TRACE, summary=False),),
    ),
)

#: A requested esmond event type also admits these archive-specific stand-ins,
#: so a cycle asking for one-way delay gets ps_owd's per-test medians.
EQUIVALENTS: dict[str, tuple[str, ...]] = {
    "histogram-owdelay": ("owdelay-median", "owdelay-mean"),
    "histogram-rtt": ("rtt-mean", "rtt-min"),
    "packet-count-lost": (
        "packet-loss-rate",
        "packet-count-lost-bidir",
        "packet-loss-rate-bidir",
    ),
}


def wanted(requested: Iterable[str], offered: Iterable[str]) -> tuple[str, ...]:
    """The offered event types a request for `requested` should return.

    An exact match wins: where an index offers the requested type itself (a
    histogram), its stand-ins are only returned when asked for by name.
    """
    asked = set(requested)
    available = tuple(offered)
    chosen = [e for e in available if e in asked]
    for name in asked:
        if name not in available:
            chosen += [e for e in EQUIVALENTS.get(name, ()) if e in available]
    return tuple(dict.fromkeys(chosen))
