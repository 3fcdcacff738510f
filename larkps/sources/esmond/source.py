"""The esmond/elmond REST source (``kind = "esmond"``).

One code path serves perfSONAR 4.x esmond and 5.x elmond: metadata is listed with
an explicit ``limit`` and paged until a short page; data URIs are taken verbatim
from the metadata (``base-uri``); data is paged by ``time-start`` with
``limit`` <= 10000 (elmond rejects more).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import urljoin, urlsplit

from larkps.config.queries import (
    DATA_PAGE,
    DEFAULT_EVENT_TYPES,
    METADATA_PAGE,
    MetadataFilters,
    archive_url,
)
from larkps.config.sites import SiteMap
from larkps.errors import ArchiveFormatError
from larkps.model import Point, Series, SeriesKey
from larkps.sources.esmond.parse import ParsedPage, parse_metadata, parse_page
from larkps.sources.http.client import JsonClient, ResponseTooLarge
from larkps.sources.http.gate import cpu_gate

log = logging.getLogger(__name__)

MAX_ESMOND_PAGES = 10000


class EsmondSource:
    """Discover series and fetch their points from one esmond or elmond archive."""

    def __init__(
        self,
        name: str,
        url: str,
        client: JsonClient,
        sites: SiteMap,
        metadata_page: int = METADATA_PAGE,
        data_page: int = DATA_PAGE,
        filters: MetadataFilters | None = None,
        event_types: Sequence[str] = DEFAULT_EVENT_TYPES,
    ) -> None:
        self.name = name
        self.url = archive_url(url)
        self.client = client
        self.sites = sites
        self.metadata_page = metadata_page
        self.data_page = data_page
        self.filters = filters or MetadataFilters()
        self.event_types = tuple(event_types)
        self.skipped_metadata = 0  # malformed metadata objects in the last discovery
        self._data_urls: dict[str, str] = {}
        parts = urlsplit(self.url)
        self._origin = f"{parts.scheme}://{parts.netloc}"

    def discover(self, event_types: Iterable[str], since: int) -> list[Series]:
        """Every series of the given event types that has data since `since`."""
        wanted = set(event_types)
        found: dict[SeriesKey, Series] = {}
        # `failures` often has time-updated null, so it is found through its siblings.
        listed: list[str | None] = [*sorted(wanted - {"failures"})] or [None]
        self.skipped_metadata = 0
        for event_type in listed:
            for obj in self._metadata(event_type, since):
                try:
                    parsed = parse_metadata(obj, self.name, self.url, self.sites)
                except ArchiveFormatError as exc:
                    self.skipped_metadata += 1
                    log.warning("%s (metadata object skipped)", str(exc))
                    continue
                for series in parsed:
                    if series.key.event_type in wanted and self.filters.accepts(series):
                        found.setdefault(series.key, series)
        return list(found.values())

    def _metadata(self, event_type: str | None, since: int) -> Iterator[dict[str, Any]]:
        seen: set[str] = set()
        page_size = self.metadata_page
        query = self.filters.query()
        if "time-range" not in query:
            query["time-start"] = since
        if event_type is not None:
            query["event-type"] = event_type
        for offset in range(0, page_size * MAX_ESMOND_PAGES, page_size):
            page = self.client.get(self.url, query | {"limit": page_size, "offset": offset})
            if not isinstance(page, list):
                raise ArchiveFormatError(self.name, f"metadata list from {self.url} is not a list")
            fresh = [o for o in page if isinstance(o, dict) and o.get("metadata-key") not in seen]
            seen.update(str(o.get("metadata-key")) for o in fresh)
            yield from fresh
            if len(page) < page_size or not fresh:
                return

    def pages(self, series: Series, start: int, end: int) -> Iterator[ParsedPage]:
        """Pages of points with start <= ts <= end, paged by time-start.

        A page too large for the byte cap is asked again with a smaller ``limit``.
        """
        url = self._data_urls.get(series.data_uri)
        if url is None:  # urljoin costs as much as parsing a small page: once per series
            url = self._data_urls[series.data_uri] = self._join(series.data_uri)
        cursor, limit = start, self.data_page
        separator = "&" if "?" in url else "?"
        for _ in range(MAX_ESMOND_PAGES):
            query = f"time-start={cursor}&time-end={end}&limit={limit}"  # = urlencode's
            try:
                page = self.client.get(f"{url}{separator}{query}")
            except ResponseTooLarge:
                if limit <= 1:
                    raise
                limit = max(1, limit // 10)
                continue
            with cpu_gate:
                parsed = parse_page(page, series, self.name, end)
            yield parsed
            if parsed.raw_count < limit:
                return
            if parsed.max_ts is None or parsed.max_ts < cursor:
                problem = f"a full page from {url} has no usable point at or after {cursor}"
                raise ArchiveFormatError(self.name, problem)
            cursor = parsed.max_ts + 1

    def _join(self, uri: str) -> str:
        """``urljoin(self.url, uri)``; a plain absolute path (the usual ``base-uri``)
        is appended to the origin without parsing."""
        plain = uri.startswith("/") and not uri.startswith("//") and uri.isprintable()
        if plain and " " not in uri and "#" not in uri and "/." not in uri:
            return self._origin + uri
        return urljoin(self.url, uri)

    def fetch(self, series: Series, start: int, end: int) -> list[Point]:
        """Points of one series with start <= ts <= end (rejected points are logged)."""
        by_ts: dict[int, Point] = {}
        for page in self.pages(series, start, end):
            if page.rejected:
                log.warning(
                    "archive %s: %s: %s", self.name, series_label(series), page.describe_rejected()
                )
            for point in page.points:
                by_ts.setdefault(point.ts, point)
        return [by_ts[ts] for ts in sorted(by_ts)]


def series_label(series: Series) -> str:
    """``source -> destination event-type`` (host names, else addresses) for logs and
    run reports: what an operator can look up, unlike the archive's metadata key."""
    source = series.source.host or series.source.ip
    destination = series.destination.host or series.destination.ip
    return f"{source} -> {destination} {series.key.event_type}"
