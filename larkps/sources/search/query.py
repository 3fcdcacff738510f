"""Search request bodies and the two paging loops (``search_after``, composite ``after_key``).

Body builders are pure. The paging loops take a ``post(body) -> answer``
callable, so they never see HTTP; they check each answer's shape and stop on a
short page, on an empty page, or after ``MAX_SEARCH_PAGES``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from larkps.errors import ArchiveFormatError, ArchiveUnavailable
from larkps.sources.http.client import ResponseTooLarge

Post = Callable[[dict[str, Any]], Any]
MAX_SEARCH_PAGES = 100000
PERCENTS = (10.0, 25.0, 50.0, 75.0, 90.0, 95.0)


def time_range(field: str, start: int, end: int, millis: bool) -> dict[str, Any]:
    """Documents with ``start <= ts <= end`` (integer seconds, sub-second times included)."""
    if millis:
        bounds = {"gte": start * 1000, "lt": (end + 1) * 1000, "format": "epoch_millis"}
    else:
        bounds = {"gte": start, "lt": end + 1, "format": "epoch_second"}
    return {"range": {field: bounds}}


def search_body(
    filters: list[dict[str, Any]],
    sort: list[dict[str, Any]],
    size: int,
    fields: list[str],
) -> dict[str, Any]:
    """A ``_search`` body: filter context only, a total sort order, selected fields."""
    return {
        "size": size,
        "query": {"bool": {"filter": filters}},
        "sort": sort,
        "_source": {"includes": fields},
        "track_total_hits": False,
    }


def composite_body(
    filters: list[dict[str, Any]],
    sources: list[dict[str, Any]],
    size: int,
    sub_aggregations: dict[str, Any],
) -> dict[str, Any]:
    """A ``size: 0`` search with one composite aggregation named ``pairs``."""
    return {
        "size": 0,
        "query": {"bool": {"filter": filters}},
        "aggs": {
            "pairs": {
                "composite": {"size": size, "sources": sources},
                "aggs": sub_aggregations,
            }
        },
    }


def terms_source(name: str, field: str, missing: bool = False) -> dict[str, Any]:
    """One composite value source; `missing` keeps documents without the field."""
    terms: dict[str, Any] = {"field": field}
    if missing:
        terms["missing_bucket"] = True
    return {name: {"terms": terms}}


def newest_hit(time_field: str, fields: list[str]) -> dict[str, Any]:
    """A ``top_hits`` sub-aggregation returning the newest document's fields."""
    return {
        "top_hits": {
            "size": 1,
            "sort": [{time_field: {"order": "desc"}}],
            "_source": {"includes": fields},
        }
    }


def value_aggregations(name: str, field: str, percentiles: bool = True) -> dict[str, Any]:
    """avg, min, max, value_count (and percentiles) of one numeric field."""
    aggregations: dict[str, Any] = {
        f"{name}__avg": {"avg": {"field": field}},
        f"{name}__min": {"min": {"field": field}},
        f"{name}__max": {"max": {"field": field}},
        f"{name}__count": {"value_count": {"field": field}},
    }
    if percentiles:
        aggregations[f"{name}__pct"] = {"percentiles": {"field": field, "percents": list(PERCENTS)}}
    return aggregations


def count_aggregations(name: str, field: str) -> dict[str, Any]:
    """Sum and value_count of a packet-count field (loss = sum lost / sum sent)."""
    return {
        f"{name}__sum": {"sum": {"field": field}},
        f"{name}__count": {"value_count": {"field": field}},
    }


def search_pages(post: Post, body: dict[str, Any], archive: str) -> Iterator[list[dict[str, Any]]]:
    """Pages of hits, each request carrying the last hit's ``sort`` as ``search_after``.

    A page larger than the client's byte cap is asked again with a tenth of the size.
    """
    request = dict(body)
    for _ in range(MAX_SEARCH_PAGES):
        try:
            hits = _hits(post(request), archive)
        except ResponseTooLarge:
            if request["size"] <= 1:
                raise
            request = dict(request, size=max(1, request["size"] // 10))
            continue
        if hits:
            yield hits
        if len(hits) < request["size"]:
            return
        after = hits[-1].get("sort")
        if not isinstance(after, list):
            raise ArchiveFormatError(archive, "search hit without sort values")
        if after == request.get("search_after"):
            raise ArchiveFormatError(archive, "search_after paging does not advance")
        request = dict(request, search_after=after)


def composite_pages(
    post: Post, body: dict[str, Any], archive: str
) -> Iterator[list[dict[str, Any]]]:
    """Pages of composite buckets, each request carrying the previous ``after_key``."""
    composite = body["aggs"]["pairs"]["composite"]
    size = int(composite["size"])
    after: Any = None
    for _ in range(MAX_SEARCH_PAGES):
        request = body
        if after is not None:
            pairs = dict(body["aggs"]["pairs"], composite=dict(composite, after=after))
            request = dict(body, aggs={"pairs": pairs})
        previous = after
        buckets, after = _buckets(post(request), archive)
        if buckets:
            yield buckets
        if len(buckets) < size or after is None:
            return
        if after == previous:
            raise ArchiveFormatError(archive, "composite aggregation repeats its after_key")


def _checked(answer: Any, archive: str) -> dict[str, Any]:
    if not isinstance(answer, dict):
        raise ArchiveFormatError(archive, "search answer is not a JSON object")
    if answer.get("timed_out") is True:
        raise ArchiveUnavailable(archive, "search timed out on the cluster (partial results)")
    shards = answer.get("_shards")
    if isinstance(shards, dict) and shards.get("failed"):
        raise ArchiveUnavailable(archive, f"search failed on {shards['failed']} shard(s)")
    return answer


def _hits(answer: Any, archive: str) -> list[dict[str, Any]]:
    hits = _checked(answer, archive).get("hits")
    inner = hits.get("hits") if isinstance(hits, dict) else None
    if not isinstance(inner, list):
        raise ArchiveFormatError(archive, "search answer has no hits.hits list")
    return [h for h in inner if isinstance(h, dict)]


def _buckets(answer: Any, archive: str) -> tuple[list[dict[str, Any]], Any]:
    aggregations = _checked(answer, archive).get("aggregations")
    pairs = aggregations.get("pairs") if isinstance(aggregations, dict) else None
    buckets = pairs.get("buckets") if isinstance(pairs, dict) else None
    if not isinstance(pairs, dict) or not isinstance(buckets, list):
        raise ArchiveFormatError(archive, "search answer has no aggregations.pairs.buckets")
    after = pairs.get("after_key")
    return [b for b in buckets if isinstance(b, dict)], after if isinstance(after, dict) else None
