"""Metadata objects (esmond / elmond shapes) and the metadata-list filters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from larkps.embedded._rand import Stream, uuid_hex
from larkps.embedded.catalog import JSON_TO_URL_SUMMARY, Summary, event_types
from larkps.embedded.series import Series

ARCHIVE_PATH = "/esmond/perfsonar/archive"
TOOLS = {
    "throughput": "pscheduler/iperf3",
    "latencybg": "pscheduler/powstream",
    "rtt": "pscheduler/ping",
}
USER_AGENT = "psconfig-pscheduler-agent"


@dataclass(frozen=True)
class Shape:
    """Mesh facts that appear in metadata parameters."""

    seed: int
    flavour: str
    latency_packets: int
    latency_interval: int
    rtt_packets: int
    fine_bucket_site: int


class Clocked(Protocol):
    """What rendering and filtering need to know about time."""

    def time_updated(self, series: Series, event: str) -> int | None:
        """``time-updated`` of an event type (esmond: its last point)."""
        ...

    def updated_since(self, series: Series, event: str, begin: int) -> int | None:
        """``time-updated`` of an event type if it is >= ``begin``, else None."""
        ...

    def last_run(self, series: Series, lower: int, upper: int | None) -> int | None:
        """Start of the latest run in [lower, upper] (None: no run)."""
        ...


def bucket_width(series: Series, shape: Shape) -> float:
    """Latency histogram bucket width in seconds (0.0001 for the fine-bucket site)."""
    ends = (series.src.index, series.dst.index)
    return 0.0001 if series.kind == "latencybg" and shape.fine_bucket_site in ends else 0.001


def psconfig_uuid(series: Series, shape: Shape) -> str:
    """The psconfig agent UUID of the host that created the test (upper case, dashed)."""
    h = uuid_hex(shape.seed, Stream.TASK, series.agent_host.index).upper()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def test_params(series: Series, shape: Shape) -> dict[str, object]:
    """Free-form parameters of a test, JSON-typed (elmond style)."""
    if series.kind == "throughput":
        out: dict[str, object] = {"time-duration": 39.0, "pscheduler-test-type": "throughput"}
        out |= {
            "ip-transport-protocol": "tcp",
            "bw-parallel-streams": 1,
            "bw-ignore-first-seconds": "PT5S",
        }
    elif series.kind == "latencybg":
        out = {"time-probe-interval": shape.latency_interval / shape.latency_packets}
        out |= {"time-duration": 86400.0, "sample-size": shape.latency_packets}
        out |= {
            "sample-bucket-width": bucket_width(series, shape),
            "pscheduler-test-type": "latencybg",
        }
        out |= {"mode-flip": False, "ip-packet-padding": 0}
    else:
        out = {"time-duration": float(shape.rtt_packets + 2), "sample-size": shape.rtt_packets}
        out |= {"time-probe-interval": 1.0, "time-test-timeout": float(shape.rtt_packets)}
        out |= {"pscheduler-test-type": "rtt"}
    out["pscheduler-reference-psconfig-created-by-uuid"] = psconfig_uuid(series, shape)
    out["pscheduler-reference-psconfig-created-by-user-agent"] = USER_AGENT
    return out


def as_esmond_text(value: object) -> str:
    """esmond stores every free-form parameter as text."""
    return repr(value) if isinstance(value, float) else str(value)


def subject_fields(series: Series) -> dict[str, str]:
    """The point-to-point subject of a series."""
    return {
        "source": series.source_ip,
        "destination": series.dest_ip,
        "measurement-agent": _must(series.agent_host.address(series.family)),
        "tool-name": TOOLS[series.kind],
        "input-source": series.src_host.name,
        "input-destination": series.dst_host.name,
    }


def _must(value: str | None) -> str:
    return value or ""


def _esmond_events(series: Series, clock: Clocked, uri: str) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for et, sums in event_types(series.kind, "esmond"):
        tu = clock.time_updated(series, et)
        summaries = [
            {
                "summary-type": s.summary_type,
                "uri": f"{uri}{et}/{JSON_TO_URL_SUMMARY[s.summary_type]}/{s.window}",
                "time-updated": tu,
                "summary-window": str(s.window),
            }
            for s in sums
        ]
        out.append(
            {
                "summaries": summaries,
                "time-updated": tu,
                "base-uri": f"{uri}{et}/base",
                "event-type": et,
            }
        )
    return out


def _elmond_events(series: Series, clock: Clocked, uri: str) -> list[dict[str, object]]:
    added = clock.time_updated(series, "pscheduler-run-href")
    out: list[dict[str, object]] = []
    for et, sums in event_types(series.kind, "elmond"):
        entry: dict[str, object] = {"event-type": et, "base-uri": f"{uri}/{et}/base/0"}
        if added is not None:
            entry["time-updated"] = added
        entry["summaries"] = [
            {
                "event-type": et,
                "summary-window": s.window,
                "summary-type": s.summary_type,
                "uri": f"{uri}/{et}/{JSON_TO_URL_SUMMARY[s.summary_type]}/{s.window}",
            }
            for s in sums
        ]
        out.append(entry)
    return out


def render(series: Series, shape: Shape, clock: Clocked, root: str) -> dict[str, object]:
    """One metadata object; ``root`` is scheme://host[:port] of the request."""
    uri = f"{ARCHIVE_PATH}/{series.key}"
    params = test_params(series, shape)
    if shape.flavour == "elmond":
        https_root = "https://" + root.split("://", 1)[-1]
        obj: dict[str, object] = {
            "metadata-key": series.key,
            "uri": uri,
            "subject-type": "point-to-point",
        }
        obj |= subject_fields(series)
        obj |= params
        obj["event-types"] = _elmond_events(series, clock, uri)
        obj["url"] = https_root + uri
        return obj
    obj = {"url": f"{root}{uri}/", "metadata-key": series.key, "subject-type": "point-to-point"}
    obj["event-types"] = _esmond_events(series, clock, uri + "/")
    obj |= subject_fields(series)
    obj |= {k: as_esmond_text(v) for k, v in params.items()}
    obj["uri"] = uri + "/"
    return obj


def event_entry(
    series: Series, shape: Shape, clock: Clocked, event: str
) -> dict[str, object] | None:
    """The ``event-types`` element for ``event`` (None if the series lacks it)."""
    uri = f"{ARCHIVE_PATH}/{series.key}"
    entries = _elmond_events if shape.flavour == "elmond" else _esmond_events
    for entry in entries(series, clock, uri if shape.flavour == "elmond" else uri + "/"):
        if entry["event-type"] == event:
            return entry
    return None


def summaries_of(series: Series, flavour: str, event: str) -> tuple[Summary, ...]:
    """Registered summaries of one event type of a series."""
    for et, sums in event_types(series.kind, flavour):
        if et == event:
            return sums
    return ()


Resolver = Callable[[str], frozenset[str]]
