"""Summary mode: per-pair statistics computed by the search cluster.

One composite aggregation per index, paged with ``after_key``; each bucket (one
host pair and address family) carries avg, min, max, value_count and
percentiles of every value field, sums of packet counts, the failed-run count,
the oldest and newest start times and the newest document (for endpoints). larkps
downloads one bucket per pair, not every point, so the cost of a cycle
does not grow with the number of tests in the window.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from larkps.model import Series, SeriesSummary
from larkps.sources.search import query
from larkps.sources.search.documents import aggregation_name, summary_for
from larkps.sources.search.records import Pair, QualityCounters
from larkps.sources.search.specs import FieldKind, FieldSpec, IndexSpec, wanted


class SummarySearch(Protocol):
    """What summary mode reads from a search-cluster source (``sources.search``)."""

    name: str
    time_field: str
    bucket_page: int
    quality: QualityCounters
    indices: tuple[tuple[IndexSpec, str], ...]

    def identity_fields(self) -> list[str]: ...
    def base_filters(self) -> list[dict[str, Any]]: ...
    def range_filter(self, start: int, end: int) -> dict[str, Any]: ...
    def summary_sources(self) -> list[dict[str, Any]]: ...
    def poster(self, index: str) -> query.Post: ...
    def resolve(self, bucket: dict[str, Any]) -> tuple[dict[str, Any], Pair] | None: ...
    def series_key(self, index: str, key: dict[str, Any], pair: Pair) -> str: ...
    def make_series(
        self, metadata_key: str, spec: FieldSpec, pair: Pair, data_uri: str
    ) -> Series: ...


def summarise(
    source: SummarySearch, start: int, end: int, event_types: Iterable[str] | None
) -> list[SeriesSummary]:
    """Summaries of every summary-capable field (or those standing for `event_types`)."""
    requested = None if event_types is None else tuple(event_types)
    result: list[SeriesSummary] = []
    for spec, index in source.indices:
        offered = [f.event_type for f in spec.fields if f.summary]
        names = offered if requested is None else wanted(requested, offered)
        fields = [f for f in spec.fields if f.summary and f.event_type in names]
        if fields:
            result += _summarise_index(source, index, fields, (start, end))
    return result


def summary_request(
    source: SummarySearch, fields: list[FieldSpec], start: int, end: int
) -> dict[str, Any]:
    """The composite-aggregation body for one index (without ``after``)."""
    aggregations: dict[str, Any] = {
        "newest": query.newest_hit(source.time_field, source.identity_fields()),
        "latest": {"max": {"field": source.time_field}},
        "earliest": {"min": {"field": source.time_field}},
    }
    for spec in fields:
        aggregations.update(statistics(spec))
    filters = [*source.base_filters(), source.range_filter(start, end)]
    return query.composite_body(filters, source.summary_sources(), source.bucket_page, aggregations)


def statistics(spec: FieldSpec) -> dict[str, Any]:
    """The sub-aggregations that summarise one field."""
    name = aggregation_name(spec)
    if spec.kind is FieldKind.FAILURE:
        return {f"{name}__n": {"filter": {"term": {"result.succeeded": False}}}}
    if spec.kind is FieldKind.COUNT:
        return query.count_aggregations(name, spec.field)
    return query.value_aggregations(name, spec.field)


def _summarise_index(
    source: SummarySearch, index: str, fields: list[FieldSpec], window: tuple[int, int]
) -> list[SeriesSummary]:
    body = summary_request(source, fields, *window)
    result: list[SeriesSummary] = []
    for buckets in query.composite_pages(source.poster(index), body, source.name):
        for bucket in buckets:
            resolved = source.resolve(bucket)
            if resolved is None:
                continue
            key, pair = resolved
            metadata_key = source.series_key(index, key, pair)
            for spec in fields:
                series = source.make_series(metadata_key, spec, pair, index)
                summary = summary_for(spec, series, bucket, window, source.quality)
                if summary is not None:
                    result.append(summary)
    return result
