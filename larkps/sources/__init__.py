"""Sources: the archive clients, each turning one archive's answers into larkps's records.

- :mod:`~larkps.sources.http`: the only code that talks HTTP (:class:`JsonClient`), its
  wire reader and the per-host request gate;
- :mod:`~larkps.sources.esmond`: the esmond/elmond REST client (:class:`EsmondSource`)
  and its pure page parsers;
- :mod:`~larkps.sources.search`: perfSONAR 5 OpenSearch (:class:`OpenSearchSource`) and
  the WLCG ``ps_*`` datastore (:class:`PsEsSource`), with per-pair summaries computed by
  the cluster;
- :mod:`~larkps.sources.routes`: a traceroute of any archive in one form, fingerprinted;
- :mod:`~larkps.config.queries`: the query vocabulary the configuration needs;
- :mod:`~larkps.sources.base`, :mod:`~larkps.sources.factory`,
  :mod:`~larkps.sources.summary_mode`: the Source protocols, building sources from
  settings, and summary-mode collection.

Every source satisfies :class:`Source` (``discover`` + ``fetch``); the search sources also
satisfy :class:`SummarySource`. Records are those of :mod:`larkps.model`.

Public names, loaded on first use so that importing ``larkps.config.queries`` (as every
command that reads a config file does) imports neither numpy nor the HTTP client:
the ``__all__`` below.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from larkps.config.queries import (
        ALL_EVENT_TYPES,
        ARCHIVE_PATH,
        DATA_PAGE,
        DEFAULT_EVENT_TYPES,
        DNS_MATCH_RULES,
        METADATA_PAGE,
        MetadataFilters,
        archive_url,
    )
    from larkps.sources.base import ArchiveAnswers, Source, SummarySource
    from larkps.sources.esmond.parse import (
        ParsedPage,
        address_family,
        parse_histogram,
        parse_metadata,
        parse_page,
        parse_points,
    )
    from larkps.sources.esmond.source import EsmondSource, series_label
    from larkps.sources.factory import SEARCH_KINDS, search_source
    from larkps.sources.http.client import (
        ClientStats,
        HttpOptions,
        JsonClient,
        ResponseTooLarge,
        cycle_deadline,
    )
    from larkps.sources.routes import listed_hops, path_fingerprint, trace_hops
    from larkps.sources.search.opensearch import OpenSearchSource
    from larkps.sources.search.pses import PsEsSource
    from larkps.sources.search.source import SearchSource
    from larkps.sources.summary_mode import Collected, collect_summaries, split_modes

_HOMES = {
    "larkps.sources.base": ("ArchiveAnswers", "Source", "SummarySource"),
    "larkps.sources.esmond.parse": (
        "ParsedPage",
        "address_family",
        "parse_histogram",
        "parse_metadata",
        "parse_page",
        "parse_points",
    ),
    "larkps.sources.esmond.source": ("EsmondSource", "series_label"),
    "larkps.sources.factory": ("SEARCH_KINDS", "search_source"),
    "larkps.sources.http.client": (
        "ClientStats",
        "HttpOptions",
        "JsonClient",
        "ResponseTooLarge",
        "cycle_deadline",
    ),
    "larkps.config.queries": (
        "ALL_EVENT_TYPES",
        "ARCHIVE_PATH",
        "DATA_PAGE",
        "DEFAULT_EVENT_TYPES",
        "DNS_MATCH_RULES",
        "METADATA_PAGE",
        "MetadataFilters",
        "archive_url",
    ),
    "larkps.sources.routes": ("listed_hops", "path_fingerprint", "trace_hops"),
    "larkps.sources.search.opensearch": ("OpenSearchSource",),
    "larkps.sources.search.pses": ("PsEsSource",),
    "larkps.sources.search.source": ("SearchSource",),
    "larkps.sources.summary_mode": ("Collected", "collect_summaries", "split_modes"),
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
    "SEARCH_KINDS",
    "ArchiveAnswers",
    "ClientStats",
    "Collected",
    "EsmondSource",
    "HttpOptions",
    "JsonClient",
    "MetadataFilters",
    "OpenSearchSource",
    "ParsedPage",
    "PsEsSource",
    "ResponseTooLarge",
    "SearchSource",
    "Source",
    "SummarySource",
    "address_family",
    "archive_url",
    "collect_summaries",
    "cycle_deadline",
    "listed_hops",
    "parse_histogram",
    "parse_metadata",
    "parse_page",
    "parse_points",
    "path_fingerprint",
    "search_source",
    "series_label",
    "split_modes",
    "trace_hops",
]
