"""Archive sources: the esmond/elmond REST client and the HTTP transport all sources share.

:class:`JsonClient` (in :mod:`larkps.fetch.http`) is the only code that talks HTTP;
:mod:`larkps.fetch.parse` is pure; :class:`EsmondSource` discovers series and pages
their points. :mod:`larkps.ingest` keeps them in the state store incrementally.
"""

from __future__ import annotations

from larkps.fetch.esmond import (
    ALL_EVENT_TYPES,
    ARCHIVE_PATH,
    DATA_PAGE,
    DEFAULT_EVENT_TYPES,
    DNS_MATCH_RULES,
    METADATA_PAGE,
    EsmondSource,
    MetadataFilters,
    archive_url,
    describe,
)
from larkps.fetch.http import ClientStats, HttpOptions, JsonClient, ResponseTooLarge
from larkps.fetch.parse import (
    ParsedPage,
    address_family,
    parse_histogram,
    parse_metadata,
    parse_page,
    parse_points,
    path_fingerprint,
    trace_hops,
)

__all__ = [
    "ALL_EVENT_TYPES",
    "ARCHIVE_PATH",
    "DATA_PAGE",
    "DEFAULT_EVENT_TYPES",
    "DNS_MATCH_RULES",
    "METADATA_PAGE",
    "ClientStats",
    "EsmondSource",
    "HttpOptions",
    "JsonClient",
    "MetadataFilters",
    "ParsedPage",
    "ResponseTooLarge",
    "address_family",
    "archive_url",
    "describe",
    "parse_histogram",
    "parse_metadata",
    "parse_page",
    "parse_points",
    "path_fingerprint",
    "trace_hops",
]
