"""Pure parsing of esmond/elmond responses into :class:`Series` and :class:`Point`.

Numeric strings are accepted everywhere. Points that cannot be trusted (bad or
future timestamps, timestamps in milliseconds, NaN/Infinity, negative or absurd
values, duplicate timestamps) are rejected one by one and counted by reason, so a
few bad points never cost a whole series and never reach the store.
"""

from __future__ import annotations

import ipaddress
import math
import operator
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, cast

from larkps.config.sites import SiteMap
from larkps.errors import ArchiveFormatError
from larkps.histogram import EMPTY, pack_histogram
from larkps.model import (
    EVENT_TYPE_METRICS,
    Endpoint,
    Family,
    Histogram,
    Metric,
    Point,
    Series,
    SeriesKey,
)
from larkps.sources.esmond.buckets import label_values, pack_page
from larkps.sources.routes import path_fingerprint, trace_hops
from larkps.units import finite_number, positive_number

#: Largest plausible value per metric (inclusive), in larkps units; the lower bound is 0.
UPPER_BOUNDS: dict[Metric, float] = {
    Metric.THROUGHPUT: 1e13,  # 10 Tbit/s
    Metric.RETRANSMITS: 1e10,
    Metric.LOSS_RATE: 1.0,
    Metric.LOSS_RATE_BIDIR: 1.0,
    Metric.PACKETS_LOST: 1e9,
    Metric.PACKETS_SENT: 1e9,
    Metric.PACKETS_LOST_BIDIR: 1e9,
    Metric.CLOCK_ERROR: 1e6,  # ms
}
#: Plausible histogram bucket range (ms); one-way delays may be negative (bad clocks).
BUCKET_RANGE: dict[Metric, tuple[float, float]] = {
    Metric.OWDELAY: (-1e5, 1e5),
    Metric.RTT: (0.0, 1e5),
}
FUTURE_SLACK = 300  # seconds a point may lie after the end of the requested range
MILLISECONDS = 10**11  # a "seconds" timestamp this large is year 5138: it is in ms
NOTE_LIMIT = 500


@dataclass
class ParsedPage:
    """The accepted points of one response page, and what was rejected and why."""

    points: list[Point] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)
    raw_count: int = 0
    max_ts: int | None = None  # largest acceptable timestamp seen (for paging)

    def describe_rejected(self) -> str:
        parts = [f"{n} {reason}" for reason, n in sorted(self.rejected.items())]
        return f"rejected {sum(self.rejected.values())} points: " + ", ".join(parts)


def parse_metadata(
    obj: dict[str, Any], archive: str, base_url: str, sites: SiteMap
) -> list[Series]:
    """Turn one metadata object into one Series per known event type.

    Endpoints map to sites by their configured hostname (``input-source`` /
    ``input-destination``) first, then by IP. The family is the source address's.
    """
    try:
        source_ip = str(obj["source"])
        destination_ip = str(obj.get("destination", ""))
        key = str(obj["metadata-key"])
        event_types = obj["event-types"]
    except (KeyError, TypeError):
        raise ArchiveFormatError(archive, "metadata object lacks source/metadata-key") from None
    source_host = str(obj.get("input-source") or source_ip)
    destination_host = str(obj.get("input-destination") or destination_ip)
    source = Endpoint(source_host, source_ip, sites.site_for(source_host, source_ip))
    destination = Endpoint(
        destination_host, destination_ip, sites.site_for(destination_host, destination_ip)
    )
    family = address_family(source_ip, archive)
    tool = str(obj.get("tool-name", ""))
    width = positive_number(obj.get("sample-bucket-width"))
    result = []
    for entry in event_types if isinstance(event_types, list) else []:
        if not isinstance(entry, dict):
            continue
        event_type = str(entry.get("event-type"))
        metric = EVENT_TYPE_METRICS.get(event_type)
        base_uri = entry.get("base-uri")
        if metric is None or not isinstance(base_uri, str):
            continue
        key_of_series = SeriesKey(archive, key, event_type)
        result.append(
            Series(key_of_series, source, destination, family, metric, tool, base_uri, width)
        )
    return result


def address_family(ip: str, archive: str) -> Family:
    """IPv4 or IPv6, from the address the archive stored."""
    try:
        version = ipaddress.ip_address(ip.strip("[]")).version
    except ValueError:
        raise ArchiveFormatError(archive, f"source {ip!r} is not an IP address") from None
    return Family.IPV6 if version == 6 else Family.IPV4


def parse_page(page: object, series: Series, archive: str, latest: int) -> ParsedPage:
    """Parse one page of ``[{"ts": ..., "val": ...}]``; ``latest`` is the end of the range.

    Raises ArchiveFormatError when the page is not a list at all.
    """
    if not isinstance(page, list):
        raise ArchiveFormatError(archive, f"data for {series.key.metadata_key} is not a list")
    parsed = ParsedPage(raw_count=len(page))
    stamps, values = _stamped(page, latest + FUTURE_SLACK, parsed.rejected)
    outcomes = _values_parser(series)(stamps, values)
    if str in map(type, outcomes) or not _ascending(stamps):
        _accept(parsed, stamps, outcomes)
    else:  # the common case: every value good, timestamps in order (so no repeats)
        parsed.points = cast(list[Point], outcomes)
    if parsed.points:
        parsed.max_ts = parsed.points[-1].ts
    return parsed


def _ascending(stamps: list[int]) -> bool:
    return all(map(operator.lt, stamps, islice(stamps, 1, None)))


def _accept(parsed: ParsedPage, stamps: list[int], outcomes: list[Point | str]) -> None:
    """Keep the points, the first of each timestamp, sorted; count what is rejected."""
    points, rejected = parsed.points, parsed.rejected
    seen: set[int] = set()
    last = -1
    ordered = True
    for ts, outcome in zip(stamps, outcomes, strict=True):
        if isinstance(outcome, str):
            rejected[outcome] += 1
        elif ts in seen:
            rejected["duplicate timestamp"] += 1
        else:
            seen.add(ts)
            points.append(outcome)
            ordered = ordered and ts > last
            last = ts
    if not ordered:
        points.sort(key=_ts_of)


def _stamped(page: list[Any], limit: int, rejected: Counter[str]) -> tuple[list[int], list[Any]]:
    """The timestamps and values of the points whose timestamp is acceptable."""
    exact = min(limit, 2**53)  # ints up to this need no float round trip
    stamps, values = [], []
    for item in page:
        ts = item.get("ts") if type(item) is dict else None
        if type(ts) is not int or not 0 <= ts <= exact:  # the common case skips this
            ts = _timestamp(item, limit)
            if isinstance(ts, str):
                rejected[ts] += 1
                continue
        stamps.append(ts)
        values.append(item.get("val"))
    return stamps, values


def _ts_of(point: Point) -> int:
    return point.ts


def parse_points(page: object, series: Series, archive: str) -> list[Point]:
    """The acceptable points of one page, sorted by ts (no upper time bound)."""
    return parse_page(page, series, archive, MILLISECONDS - FUTURE_SLACK - 1).points


def _timestamp(item: object, latest: int) -> int | str:
    """The point's timestamp, or the reason it was rejected."""
    if not isinstance(item, dict):
        return "malformed point"
    ts = finite_number(item.get("ts"))
    if ts is None or ts < 0 or ts != int(ts):
        return "bad timestamp"
    if ts > latest:
        return "timestamp in milliseconds" if ts >= MILLISECONDS else "timestamp in the future"
    return int(ts)


ValueParser = Callable[[int, object], Point | str]
ValuesParser = Callable[[list[int], list[Any]], list[Point | str]]


def _values_parser(series: Series) -> ValuesParser:
    """The parser of a page's values of ``series``: a Point or a rejection reason each."""
    parse_value = _value_parser(series)
    if series.metric in BUCKET_RANGE:
        return _histograms_parser(series, parse_value)

    def parse(stamps: list[int], values: list[Any]) -> list[Point | str]:
        return list(map(parse_value, stamps, values))

    return parse


def _histograms_parser(series: Series, careful: ValueParser) -> ValuesParser:
    """A page of histograms at once (larkps.sources.esmond.buckets); what that cannot vouch
    for goes through ``careful``, the parser of one value."""
    low, high = BUCKET_RANGE[series.metric]
    scale = _label_scale(series.bucket_width)

    def parse(stamps: list[int], values: list[Any]) -> list[Point | str]:
        packed = pack_page(values, low, high, scale)
        return [
            careful(ts, value) if histogram is None else Point(ts, None, histogram)
            for ts, value, histogram in zip(stamps, values, packed, strict=True)
        ]

    return parse


def _value_parser(series: Series) -> ValueParser:
    """The parser of one value of ``series``: a Point, or the reason it was rejected."""
    metric = series.metric
    if metric is Metric.FAILURE:
        return _failure_point
    if metric in BUCKET_RANGE:
        return _histogram_parser(series)
    if metric is Metric.PATH:
        return _trace_point
    return _scalar_parser(UPPER_BOUNDS.get(metric, math.inf))


def _failure_point(ts: int, value: object) -> Point:
    note = value.get("error") if isinstance(value, dict) else value
    return Point(ts, note=_printable(str(note))[:NOTE_LIMIT])


def _scalar_parser(upper: float) -> ValueParser:
    finite = min(upper, sys.float_info.max)

    def parse(ts: int, value: object) -> Point | str:
        if type(value) is float and 0.0 <= value <= finite:  # the common case
            return Point(ts, value)
        if isinstance(value, float) and not math.isfinite(value):
            return "non-finite value"
        number = finite_number(value)
        if number is None:
            return "non-numeric value"
        if number < 0:
            return "negative value"
        if number > upper:
            return "implausible value"
        return Point(ts, number)

    return parse


def _histogram_parser(series: Series) -> ValueParser:
    low, high = BUCKET_RANGE[series.metric]
    scale = _label_scale(series.bucket_width)

    def parse(ts: int, value: object) -> Point | str:
        if not isinstance(value, dict) or not value:
            return "bad histogram"
        columns = _histogram_columns(value, scale)
        if columns is None:
            return "bad histogram"
        values, counts = columns
        if values[0] < low or values[-1] > high:
            return "implausible value"
        return Point(ts, None, pack_histogram(values, counts))

    return parse


def _trace_point(ts: int, value: object) -> Point | str:
    hops = trace_hops(value)
    if not hops:
        return "bad trace"
    return Point(ts, value=float(len(hops)), note=path_fingerprint(hops))


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else " " for c in text)


def parse_histogram(value: object, bucket_width: float | None) -> Histogram:
    """Parse ``{"<bucket>": count}`` into a packed histogram (values in ms, sorted).

    Bucket labels are delay / bucket-width; with the default width of 0.001 s that
    is milliseconds, otherwise they are rescaled (label * width * 1000).
    Buckets with a non-numeric label or a non-positive count are dropped.
    """
    columns = _histogram_columns(value, _label_scale(bucket_width)) if value else None
    return EMPTY if columns is None else pack_histogram(*columns)


def _label_scale(bucket_width: float | None) -> float:
    if bucket_width is not None and not math.isclose(bucket_width, 0.001):
        return bucket_width * 1000.0
    return 1.0


Columns = tuple[list[float], list[int]]


def _histogram_columns(value: object, scale: float) -> Columns | None:
    """Bucket values (ms, ascending) and their counts; None if no bucket is usable."""
    if not isinstance(value, dict):
        return None
    try:  # the common case in one pass per column; anything odd takes the slow path
        labels = label_values(value, scale)
        counts = list(map(int, value.values()))
    except (TypeError, ValueError, OverflowError):
        return _columns_slowly(value, scale)
    if not labels or not math.isfinite(sum(labels)) or min(counts) <= 0:
        return _columns_slowly(value, scale)
    if all(map(operator.lt, labels, islice(labels, 1, None))):  # already in order
        return labels, counts
    ordered = sorted(zip(labels, counts, strict=True))
    return [v for v, _ in ordered], [c for _, c in ordered]


def _columns_slowly(value: dict[Any, Any], scale: float) -> Columns | None:
    """Bucket by bucket, dropping bad labels and non-positive counts."""
    buckets = []
    for label, count in value.items():
        bucket, weight = finite_number(label), finite_number(count)
        if bucket is None or weight is None or weight <= 0:
            continue
        buckets.append((round(bucket * scale, 9), int(weight)))
    if not buckets:
        return None
    buckets.sort()
    return [v for v, _ in buckets], [c for _, c in buckets]
