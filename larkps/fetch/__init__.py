"""Archive sources: the esmond/elmond REST client and the HTTP transport all sources share.

:class:`JsonClient` (in :mod:`larkps.fetch.http`) is the only code that talks HTTP;
:mod:`larkps.fetch.parse` is pure; :mod:`larkps.fetch.routes` reads a traceroute
of any archive into one form and fingerprints it; :class:`EsmondSource` discovers series and pages
their points. :mod:`larkps.ingest` keeps them in the state store incrementally.
:mod:`larkps.fetch.options` holds the query vocabulary the configuration needs.

The names below are loaded on first use, so that importing ``larkps.fetch.options``
(as every command that reads a config file does) does not import numpy and the HTTP
client.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from larkps.fetch.esmond import EsmondSource, series_label
    from larkps.fetch.http import (
        ClientStats,
        HttpOptions,
        JsonClient,
        ResponseTooLarge,
        cycle_deadline,
    )
    from larkps.fetch.options import (
        ALL_EVENT_TYPES,
        ARCHIVE_PATH,
        DATA_PAGE,
        DEFAULT_EVENT_TYPES,
        DNS_MATCH_RULES,
        METADATA_PAGE,
        MetadataFilters,
        archive_url,
    )
    from larkps.fetch.parse import (
        ParsedPage,
        address_family,
        parse_histogram,
        parse_metadata,
        parse_page,
        parse_points,
    )
    from larkps.fetch.routes import listed_hops, path_fingerprint, trace_hops

_HOMES = {
    "larkps.fetch.esmond": ("EsmondSource", "series_label"),
    "larkps.fetch.http": (
        "ClientStats",
        "HttpOptions",
        "JsonClient",
        "ResponseTooLarge",
        "cycle_deadline",
    ),
    "larkps.fetch.options": (
        "ALL_EVENT_TYPES",
        "ARCHIVE_PATH",
        "DATA_PAGE",
        "DEFAULT_EVENT_TYPES",
        "DNS_MATCH_RULES",
        "METADATA_PAGE",
        "MetadataFilters",
        "archive_url",
    ),
    "larkps.fetch.parse": (
        "ParsedPage",
        "address_family",
        "parse_histogram",
        "parse_metadata",
        "parse_page",
        "parse_points",
    ),
    "larkps.fetch.routes": ("listed_hops", "path_fingerprint", "trace_hops"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> object:
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


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
    "cycle_deadline",
    "listed_hops",
    "parse_histogram",
    "parse_metadata",
    "parse_page",
    "parse_points",
    "path_fingerprint",
    "series_label",
    "trace_hops",
]
