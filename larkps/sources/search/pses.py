"""The WLCG/OSG network datastore (``kind = "ps-es"``): flat ``ps_*`` documents.

Indices ``ps_throughput``, ``ps_owd``, ``ps_packetloss``, ``ps_retransmits`` and
``ps_trace``; time is ``timestamp`` in epoch **milliseconds**; a series is one
(index, ``src``, ``dest``) triple. Sites come from the documents
(``src_netsite``/``dest_netsite``, else ``src_site``/``dest_site``), upper-cased so
that names differing only in case are one site; ``UNKNOWN``, empty or unusable
names fall back to the configured site map. Only production hosts
(``src_production`` and ``dest_production`` true) are read unless configured
otherwise.

Data quality: documents whose ``src``/``dest`` hold an unresolved Logstash
placeholder (``%{[DESTINATION][IPV4]}``) are skipped and counted; negative
``delay_*`` values are kept (unsynchronised clocks) and counted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from larkps.config.queries import DEFAULT_EVENT_TYPES, SearchMode
from larkps.config.sites import SiteMap
from larkps.model import Endpoint
from larkps.sources.http.client import JsonClient
from larkps.sources.search.learned import PROCESS_TOKEN, LearnedSites
from larkps.sources.search.query import terms_source
from larkps.sources.search.records import (
    Pair,
    SearchFilters,
    document_site,
    family_of,
    is_placeholder,
    normal_ip,
    stable_key,
    text,
)
from larkps.sources.search.source import BUCKET_PAGE, SEARCH_PAGE, SearchSource
from larkps.sources.search.specs import PSES_INDICES

PSES_IDENTITY_FIELDS = [
    "src",
    "dest",
    "src_host",
    "dest_host",
    "ipv6",
    "src_netsite",
    "dest_netsite",
    "src_site",
    "dest_site",
]


class PsEsSource(SearchSource):
    """Series, points and server-side summaries from the WLCG ``ps_*`` indices."""

    kind = "ps-es"
    time_field = "timestamp"
    millis = True
    specs = PSES_INDICES

    def __init__(
        self,
        name: str,
        url: str,
        client: JsonClient,
        sites: SiteMap,
        indices: dict[str, str] | None = None,
        mode: str = SearchMode.RAW,
        production_only: bool = True,
        page_size: int = SEARCH_PAGE,
        bucket_page: int = BUCKET_PAGE,
        event_types: Iterable[str] = DEFAULT_EVENT_TYPES,
    ) -> None:
        learned = LearnedSites(name, sites)
        super().__init__(
            name, url, client, learned, indices, mode, page_size, bucket_page, event_types
        )
        self.learned = learned
        self.production_only = production_only

    @property
    def filters(self) -> SearchFilters:
        """As for every search source, plus this process's token: document sites are
        learned at discovery, so a new process rediscovers once."""
        return replace(super().filters, session=PROCESS_TOKEN)

    def base_filters(self) -> list[dict[str, Any]]:
        if not self.production_only:
            return []
        return [{"term": {"src_production": True}}, {"term": {"dest_production": True}}]

    def identity_sources(self) -> list[dict[str, Any]]:
        return [terms_source("src", "src"), terms_source("dest", "dest")]

    def summary_sources(self) -> list[dict[str, Any]]:
        return [*self.identity_sources(), terms_source("ipv6", "ipv6", missing=True)]

    def identity_fields(self) -> list[str]:
        return list(PSES_IDENTITY_FIELDS)

    def tiebreakers(self) -> list[str]:
        return ["src", "dest"]

    def locator_filters(self, locator: dict[str, str]) -> list[dict[str, Any]]:
        return [
            {"terms": {"src": _spellings(locator.get("src", ""))}},
            {"terms": {"dest": _spellings(locator.get("dest", ""))}},
        ]

    def series_key(self, index: str, key: dict[str, Any], pair: Pair) -> str:
        return stable_key(index, pair.source.ip, pair.destination.ip)

    def pair_from(self, key: dict[str, Any], document: dict[str, Any]) -> Pair | str:
        src = text(key.get("src", document.get("src")), 64)
        dest = text(key.get("dest", document.get("dest")), 64)
        if is_placeholder(src) or is_placeholder(dest):
            return "placeholder"
        if not src or not dest:
            return "no-endpoint"
        family = family_of(None, src, dest) or family_of(document.get("ipv6"))
        if family is None:
            return "no-address-family"
        return Pair(
            source=self._endpoint(document, "src", src),
            destination=self._endpoint(document, "dest", dest),
            family=family,
            tool="",
            bucket_width=None,
            locator={"src": src, "dest": dest},
        )

    def _endpoint(self, document: dict[str, Any], side: str, raw_ip: str) -> Endpoint:
        ip = normal_ip(raw_ip) or raw_ip
        host = text(document.get(f"{side}_host"))
        if not host or is_placeholder(host):
            host = ip
        site, rejected = document_site(
            document.get(f"{side}_netsite"), document.get(f"{side}_site")
        )
        if rejected:
            self.quality.add("bad-site-name")
        if site is None:
            return Endpoint(host=host, ip=ip, site=self.sites.site_for(host, ip))
        self.learned.learn(host, ip, site)
        return Endpoint(host=host, ip=ip, site=site)


def _spellings(raw: str) -> list[str]:
    """The stored spelling plus the compressed and upper-case forms of an address."""
    normal = normal_ip(raw)
    forms = {raw} if normal is None else {raw, normal, normal.upper()}
    return sorted(forms)
