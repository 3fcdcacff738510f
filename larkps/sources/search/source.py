"""The part OpenSearch (``pscheduler_*``) and WLCG (``ps_*``) sources share.

* ``discover``: one composite aggregation per index, paged with ``after_key``,
  gives every pair (or test) with data since `since`, its newest document
  (``top_hits``) for endpoints and a per-field ``value_count``, so series exist
  only for fields that hold data.
* ``pages``/``fetch``: ``_search`` filtered on one series and the time range,
  sorted on the time field plus a tiebreaker, paged with ``search_after``.
* ``summaries``: a composite aggregation whose sub-aggregations (avg, min,
  max, value_count, percentiles, sums) let the cluster compute per-pair
  statistics; larkps downloads one bucket per pair instead of every point.

Subclasses say how documents name their endpoints (:meth:`SearchSource.pair_from`)
and which fields identify a series.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from larkps.config.queries import DEFAULT_EVENT_TYPES, SearchMode
from larkps.config.sites import SiteMap
from larkps.errors import ArchiveFormatError
from larkps.model import Point, Series, SeriesKey, SeriesSummary
from larkps.sources.esmond.parse import ParsedPage
from larkps.sources.esmond.source import series_label
from larkps.sources.http.client import JsonClient
from larkps.sources.search import query
from larkps.sources.search.documents import aggregation_name, point_for
from larkps.sources.search.records import Pair, QualityCounters, SearchFilters, dig, epoch_seconds
from larkps.sources.search.specs import FieldKind, FieldSpec, IndexSpec, wanted
from larkps.sources.search.summaries import summarise
from larkps.units import finite_number

log = logging.getLogger(__name__)
KEPT = frozenset({"negative-delay"})  # counted, but the points are kept
SEARCH_PAGE = 1000  # hits per _search page (OpenSearch allows up to 10000)
BUCKET_PAGE = 500  # composite buckets per page


class SearchSource:
    """Base of the two search-cluster sources; see the module docstring."""

    kind = ""
    time_field = ""
    millis = False  # time field in epoch milliseconds (ps_*) or ISO strings (pscheduler_*)
    specs: tuple[IndexSpec, ...] = ()

    def __init__(
        self,
        name: str,
        url: str,
        client: JsonClient,
        sites: SiteMap,
        indices: dict[str, str] | None = None,
        mode: str = SearchMode.RAW,
        page_size: int = SEARCH_PAGE,
        bucket_page: int = BUCKET_PAGE,
        event_types: Iterable[str] = DEFAULT_EVENT_TYPES,
    ) -> None:
        self.name = name
        self.url = url.rstrip("/") + "/"
        self.client = client
        self.sites = sites
        self.mode = SearchMode(mode)  # ValueError for anything else
        self.page_size = page_size
        self.bucket_page = bucket_page
        self.quality = QualityCounters()
        overrides = indices or {}
        self.indices = tuple(
            (spec, overrides.get(spec.name, spec.default_index)) for spec in self.specs
        )
        # The requested types plus this archive's stand-ins for them (ps_owd's medians
        # for histogram-owdelay...): the ingester keeps only series of these types.
        requested = tuple(event_types)
        offered = [e for spec in self.specs for e in wanted(requested, spec.event_types())]
        self.event_types = tuple(dict.fromkeys(requested + tuple(offered)))

    @property
    def filters(self) -> SearchFilters:
        """What selects this source's documents (a change triggers rediscovery)."""
        names = tuple(index for _, index in self.indices)
        return SearchFilters(names, tuple(str(f) for f in self.base_filters()))

    # -- hooks -------------------------------------------------------------------------
    def base_filters(self) -> list[dict[str, Any]]:
        return []

    def identity_sources(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def summary_sources(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def identity_fields(self) -> list[str]:
        raise NotImplementedError

    def tiebreakers(self) -> list[str]:
        raise NotImplementedError

    def pair_from(self, key: dict[str, Any], document: dict[str, Any]) -> Pair | str:
        """The pair a bucket stands for, or why its documents are skipped."""
        raise NotImplementedError

    def series_key(self, index: str, key: dict[str, Any], pair: Pair) -> str:
        raise NotImplementedError

    def locator_filters(self, locator: dict[str, str]) -> list[dict[str, Any]]:
        raise NotImplementedError

    # -- discovery ---------------------------------------------------------------------
    def discover(self, event_types: Iterable[str], since: int) -> list[Series]:
        requested = tuple(event_types)
        found: dict[SeriesKey, Series] = {}
        for spec, index in self.indices:
            fields = [spec.field_for(e) for e in wanted(requested, spec.event_types())]
            chosen = [f for f in fields if f is not None]
            if chosen:
                for series in self._discover_index(index, chosen, since):
                    found.setdefault(series.key, series)
        self._log_quality("discovery")
        return list(found.values())

    def _discover_index(self, index: str, fields: list[FieldSpec], since: int) -> list[Series]:
        aggregations: dict[str, Any] = {
            "newest": query.newest_hit(self.time_field, self.identity_fields())
        }
        for spec in fields:
            aggregations[f"{aggregation_name(spec)}__n"] = _presence(spec)
        filters = [*self.base_filters(), self._since(since)]
        body = query.composite_body(
            filters, self.identity_sources(), self.bucket_page, aggregations
        )
        series: list[Series] = []
        for buckets in query.composite_pages(self.poster(index), body, self.name):
            for bucket in buckets:
                series += self._bucket_series(index, bucket, fields)
        return series

    def _bucket_series(
        self, index: str, bucket: dict[str, Any], fields: list[FieldSpec]
    ) -> list[Series]:
        resolved = self.resolve(bucket)
        if resolved is None:
            return []
        key, pair = resolved
        metadata_key = self.series_key(index, key, pair)
        data_uri = f"{index}?{urlencode(sorted(pair.locator.items()))}"
        result = []
        for spec in fields:
            entry = bucket.get(f"{aggregation_name(spec)}__n")
            present = (
                entry.get("value", entry.get("doc_count")) if isinstance(entry, dict) else None
            )
            if spec.kind is FieldKind.TRACE or (finite_number(present) or 0) > 0:
                result.append(self.make_series(metadata_key, spec, pair, data_uri))
        return result

    def make_series(self, metadata_key: str, spec: FieldSpec, pair: Pair, data_uri: str) -> Series:
        return Series(
            key=SeriesKey(self.name, metadata_key, spec.event_type),
            source=pair.source,
            destination=pair.destination,
            family=pair.family,
            metric=spec.metric,
            tool=pair.tool,
            data_uri=data_uri,
            bucket_width=pair.bucket_width,
        )

    def resolve(self, bucket: dict[str, Any]) -> tuple[dict[str, Any], Pair] | None:
        key = bucket.get("key")
        hits = dig(bucket, "newest.hits.hits")
        document = hits[0].get("_source") if isinstance(hits, list) and hits else None
        if not isinstance(key, dict) or not isinstance(document, dict):
            self.quality.add("bad-bucket")
            return None
        pair = self.pair_from(key, document)
        if isinstance(pair, str):
            self.quality.add(pair, int(finite_number(bucket.get("doc_count")) or 1))
            return None
        return key, pair

    # -- raw points --------------------------------------------------------------------
    def pages(self, series: Series, start: int, end: int) -> Iterator[ParsedPage]:
        """The series' documents in ``[start, end]``, one ``search_after`` page at a time."""
        index, _, encoded = series.data_uri.partition("?")
        spec = self._field(index, series.key.event_type)
        locator = dict(parse_qsl(encoded))
        filters = [
            *self.base_filters(),
            *self.locator_filters(locator),
            self.range_filter(start, end),
        ]
        fields = sorted({self.time_field, spec.field, "result.succeeded"})
        body = query.search_body(filters, self._sort(), self.page_size, fields)
        for hits in query.search_pages(self.poster(index), body, self.name):
            yield self._page(spec, hits, series.bucket_width, (start, end))
        self._log_quality(series_label(series))

    def fetch(self, series: Series, start: int, end: int) -> list[Point]:
        """Points of one series with ``start <= ts <= end``; the last one per ts wins."""
        by_ts = {p.ts: p for page in self.pages(series, start, end) for p in page.points}
        return [by_ts[ts] for ts in sorted(by_ts)]

    def _page(
        self,
        spec: FieldSpec,
        hits: list[dict[str, Any]],
        width: float | None,
        window: tuple[int, int],
    ) -> ParsedPage:
        seen = QualityCounters()
        page = ParsedPage(raw_count=len(hits))
        for hit in hits:
            ts = self._hit_ts(hit, seen)
            if ts is None:
                continue
            page.max_ts = ts if page.max_ts is None else max(page.max_ts, ts)
            point = point_for(spec, hit["_source"], ts, width, seen)
            if point is not None and window[0] <= point.ts <= window[1]:
                page.points.append(point)
        page.points.sort(key=lambda p: p.ts)
        counts = seen.drain()
        page.rejected.update({k: v for k, v in counts.items() if k not in KEPT})
        for what, count in counts.items():
            self.quality.add(what, count)
        return page

    def _hit_ts(self, hit: dict[str, Any], seen: QualityCounters) -> int | None:
        document = hit.get("_source")
        sort = hit.get("sort")
        ts = epoch_seconds(sort[0], millis=True) if isinstance(sort, list) and sort else None
        if ts is None and isinstance(document, dict):
            ts = epoch_seconds(dig(document, self.time_field), millis=self.millis)
        if ts is None or not isinstance(document, dict):
            seen.add("bad-document")
            return None
        return ts

    def _field(self, index: str, event_type: str) -> FieldSpec:
        for spec, name in self.indices:
            field = spec.field_for(event_type) if name == index else None
            if field is not None:
                return field
        raise ArchiveFormatError(self.name, f"no event type {event_type!r} in index {index!r}")

    # -- summaries ---------------------------------------------------------------------
    def summaries(
        self, start: int, end: int, event_types: Iterable[str] | None = None
    ) -> list[SeriesSummary]:
        """Per-pair statistics over ``[start, end]`` computed by the cluster."""
        result = summarise(self, start, end, event_types)
        self._log_quality("summaries")
        return result

    # -- helpers -----------------------------------------------------------------------
    def poster(self, index: str) -> query.Post:
        # A data stream that does not exist (no such tests) answers as empty, not 404.
        url = f"{self.url}{quote(index, safe=',*')}/_search?ignore_unavailable=true"
        return lambda body: self.client.post(url, body)

    def range_filter(self, start: int, end: int) -> dict[str, Any]:
        return query.time_range(self.time_field, start, end, self.millis)

    def _since(self, since: int) -> dict[str, Any]:
        bound = since * 1000 if self.millis else since
        fmt = "epoch_millis" if self.millis else "epoch_second"
        return {"range": {self.time_field: {"gte": bound, "format": fmt}}}

    def _sort(self) -> list[dict[str, Any]]:
        return [{self.time_field: "asc"}] + [{field: "asc"} for field in self.tiebreakers()]

    def _log_quality(self, what: str) -> None:
        fresh = self.quality.drain()
        signed = fresh.pop("negative-delay", 0)
        if signed:
            log.info(
                "archive %s (%s): kept %d negative delays (clock error)", self.name, what, signed
            )
        if fresh:
            details = ", ".join(f"{k} {v}" for k, v in sorted(fresh.items()))
            log.warning("archive %s (%s): skipped documents: %s", self.name, what, details)


def _presence(spec: FieldSpec) -> dict[str, Any]:
    """A sub-aggregation that is non-zero when the field holds data in a bucket."""
    if spec.kind is FieldKind.FAILURE:
        return {"filter": {"term": {"result.succeeded": False}}}
    field = "result.latency.median" if spec.kind is FieldKind.HISTOGRAM else spec.field
    return {"value_count": {"field": field}}
