"""Pure parsing: one search hit -> one Point, one composite bucket -> SeriesSummary.

Units on the way out are larkps's: bits/s, milliseconds, fractions, packets,
integer Unix seconds. Negative one-way delays are kept (they mean unsynchronised
clocks, see ``time-error-estimates``) and counted; other negative or
out-of-range values are dropped and counted.
"""

from __future__ import annotations

from typing import Any

from larkps.histogram import EMPTY, histogram_of
from larkps.model import Histogram, Metric, Point, Series, SeriesSummary
from larkps.sources.esmond.parse import NOTE_LIMIT
from larkps.sources.routes import listed_hops, path_fingerprint
from larkps.sources.search.records import QualityCounters, dig, scale_factor, text
from larkps.sources.search.specs import FieldKind, FieldSpec
from larkps.units import finite_number

SIGNED = frozenset({Metric.OWDELAY_MEDIAN, Metric.OWDELAY_MEAN})
FRACTIONS = frozenset({Metric.LOSS_RATE, Metric.LOSS_RATE_BIDIR})
MAX_BUCKETS = 100000
TTLS = "ttls"  # ps_trace: the ttl of each entry of the hops list


def point_for(
    spec: FieldSpec,
    document: dict[str, Any],
    ts: int,
    width: float | None,
    quality: QualityCounters,
) -> Point | None:
    """The point `spec` reads from one document, or None when it holds none."""
    succeeded = dig(document, "result.succeeded")
    if spec.kind is FieldKind.FAILURE:
        if succeeded is not False:
            return None
        return Point(ts, note=text(dig(document, spec.field), NOTE_LIMIT) or "test failed")
    if succeeded is False:
        return None
    raw = dig(document, spec.field)
    factor = scale_factor(spec.scale, width)
    if spec.kind is FieldKind.HISTOGRAM:
        histogram = search_histogram(raw, factor)
        return Point(ts, histogram=histogram) if histogram else None
    if spec.kind is FieldKind.TRACE:
        return _trace_point(raw, dig(document, TTLS), ts)
    value = finite_number(raw)
    if value is None:
        if raw is not None:  # present but not a finite number: NaN, "lots", {...}
            quality.add("bad-value")
        return None
    return _checked_value(spec.metric, value * factor, ts, quality)


def _checked_value(metric: Metric, value: float, ts: int, quality: QualityCounters) -> Point | None:
    if value < 0:
        if metric in SIGNED:
            quality.add("negative-delay")
            return Point(ts, value=value)
        quality.add("bad-value")
        return None
    if metric in FRACTIONS and value > 1:
        quality.add("bad-value")
        return None
    return Point(ts, value=value)


def search_histogram(raw: object, factor: float) -> Histogram:
    """Parallel ``{"values": [...], "counts": [...]}`` (or ``{label: count}``) -> ms buckets."""
    if isinstance(raw, dict) and isinstance(raw.get("values"), list):
        counts = raw.get("counts")
        pairs = list(zip(raw["values"], counts if isinstance(counts, list) else [], strict=False))
    elif isinstance(raw, dict):
        pairs = list(raw.items())
    else:
        return EMPTY
    merged: dict[float, int] = {}
    for label, count in pairs[:MAX_BUCKETS]:
        bucket, weight = finite_number(label), finite_number(count)
        if bucket is None or weight is None or weight <= 0:
            continue
        key = round(bucket * factor, 9)
        merged[key] = merged.get(key, 0) + int(weight)
    return histogram_of(merged.items())


def _trace_point(hops: object, ttls: object, ts: int) -> Point | None:
    route = listed_hops(hops, ttls)
    if not route:
        return None
    return Point(ts, value=float(len(route)), note=path_fingerprint(route))


def summary_for(
    spec: FieldSpec,
    series: Series,
    bucket: dict[str, Any],
    window: tuple[int, int],
    quality: QualityCounters,
) -> SeriesSummary | None:
    """The server-side statistics of one field in one composite bucket, in larkps units."""
    name = aggregation_name(spec)
    latest, earliest = _value(bucket, "latest"), _value(bucket, "earliest")
    documents = finite_number(bucket.get("doc_count"))
    common: dict[str, Any] = {
        "series": series,
        "start": window[0],
        "end": window[1],
        "latest_ts": None if latest is None else int(latest // 1000),
        "first_ts": None if earliest is None else int(earliest // 1000),
        "documents": None if documents is None else int(documents),
    }
    if spec.kind is FieldKind.FAILURE:
        failed = finite_number(_get(bucket, f"{name}__n", "doc_count"))
        return SeriesSummary(count=int(failed), **common) if failed else None
    count = _value(bucket, f"{name}__count")
    if not count:
        return None
    if spec.kind is FieldKind.COUNT:
        return SeriesSummary(count=int(count), total=_value(bucket, f"{name}__sum"), **common)
    factor = scale_factor(spec.scale, series.bucket_width)
    low, high = _value(bucket, f"{name}__min"), _value(bucket, f"{name}__max")
    if low is not None and low < 0:
        quality.add("negative-delay" if spec.metric in SIGNED else "bad-value")
    return SeriesSummary(
        count=int(count),
        mean=_scaled(_value(bucket, f"{name}__avg"), factor),
        minimum=_scaled(low, factor),
        maximum=_scaled(high, factor),
        percentiles=_percentiles(_get(bucket, f"{name}__pct", "values"), factor),
        **common,
    )


def aggregation_name(spec: FieldSpec) -> str:
    """The prefix of a field's sub-aggregations (no '.', '[', ']' or '>')."""
    return spec.event_type.replace(".", "_")


def _get(bucket: dict[str, Any], name: str, key: str) -> Any:
    entry = bucket.get(name)
    return entry.get(key) if isinstance(entry, dict) else None


def _value(bucket: dict[str, Any], name: str) -> float | None:
    return finite_number(_get(bucket, name, "value"))


def _scaled(value: float | None, factor: float) -> float | None:
    return None if value is None else value * factor


def _percentiles(values: object, factor: float) -> tuple[tuple[float, float], ...]:
    if not isinstance(values, dict):
        return ()
    result = []
    for percent, value in values.items():
        q, v = finite_number(percent), finite_number(value)
        if q is not None and v is not None and 0 <= q <= 100:
            result.append((round(q / 100.0, 6), v * factor))
    return tuple(sorted(result))
