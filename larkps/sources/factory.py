"""Build the source of one configured search archive (kinds "opensearch" and "ps-es")."""

from __future__ import annotations

from larkps.config.queries import SearchMode
from larkps.config.settings import ArchiveSettings
from larkps.config.sites import SiteMap
from larkps.sources.http.client import JsonClient
from larkps.sources.search.opensearch import OpenSearchSource
from larkps.sources.search.pses import PsEsSource
from larkps.sources.search.source import SearchSource

SEARCH_KINDS = ("opensearch", "ps-es")


def search_source(archive: ArchiveSettings, client: JsonClient, sites: SiteMap) -> SearchSource:
    """The OpenSearchSource or PsEsSource an ``[[archives]]`` table describes."""
    if archive.kind not in SEARCH_KINDS or archive.url is None:
        raise ValueError(f"archive {archive.name} is not a search archive")
    search = archive.search
    mode = search.mode if search else SearchMode.RAW
    indices = dict(search.indices) if search else {}
    if archive.kind == "opensearch":
        return OpenSearchSource(archive.name, archive.url, client, sites, indices, mode)
    production_only = search.production_only if search else True
    return PsEsSource(archive.name, archive.url, client, sites, indices, mode, production_only)
