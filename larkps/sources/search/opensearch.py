"""perfSONAR 5 archives read straight from OpenSearch (``kind = "opensearch"``).

pScheduler's HTTP archiver feeds Logstash, which writes one data stream per test
type (``pscheduler_throughput``, ``pscheduler_latency``, ``pscheduler_latencybg``,
``pscheduler_rtt``). A series is one ``pscheduler.test_checksum`` (elmond's
metadata key) and event type; time is ``pscheduler.start_time``. Endpoints: the
hostname the test was configured with (``test.spec.source``/``dest``) when it is
a name, else ``meta.*.hostname``, else the IP; family from ``meta.ip_version``.

Units: ``result.throughput`` bits/s; ``result.rtt.*`` are seconds (x 1000 ->
ms); ``result.latency.*`` and histogram values are in bucket-label units
(ms at the default ``bucket-width`` 0.001 s, else label x width x 1000).
"""

from __future__ import annotations

import re
from typing import Any

from larkps.model import Endpoint
from larkps.sources.search.query import terms_source
from larkps.sources.search.records import (
    Pair,
    dig,
    family_of,
    is_ip,
    is_placeholder,
    stable_key,
    text,
)
from larkps.sources.search.source import SearchSource
from larkps.sources.search.specs import OPENSEARCH_INDICES
from larkps.units import positive_number

CHECKSUM_FIELD = "pscheduler.test_checksum.keyword"
CHECKSUM = re.compile(r"^[0-9A-Za-z_-]{1,128}$")
IDENTITY_FIELDS = [
    "meta.source.ip",
    "meta.source.hostname",
    "meta.destination.ip",
    "meta.destination.hostname",
    "meta.ip_version",
    "test.spec.source",
    "test.spec.dest",
    "test.spec.bucket-width",
    "pscheduler.tool",
    "pscheduler.test_checksum",
]


class OpenSearchSource(SearchSource):
    """Series, points and server-side summaries from ``pscheduler_*`` data streams."""

    kind = "opensearch"
    time_field = "pscheduler.start_time"
    millis = False
    specs = OPENSEARCH_INDICES

    def identity_sources(self) -> list[dict[str, Any]]:
        return [terms_source("checksum", CHECKSUM_FIELD)]

    def summary_sources(self) -> list[dict[str, Any]]:
        return [
            terms_source("source", "meta.source.hostname.keyword", missing=True),
            terms_source("destination", "meta.destination.hostname.keyword", missing=True),
            terms_source("ip_version", "meta.ip_version", missing=True),
            terms_source("source_ip", "meta.source.ip", missing=True),
            terms_source("destination_ip", "meta.destination.ip", missing=True),
        ]

    def identity_fields(self) -> list[str]:
        return list(IDENTITY_FIELDS)

    def tiebreakers(self) -> list[str]:
        return [CHECKSUM_FIELD]

    def locator_filters(self, locator: dict[str, str]) -> list[dict[str, Any]]:
        return [{"term": {CHECKSUM_FIELD: locator.get("checksum", "")}}]

    def series_key(self, index: str, key: dict[str, Any], pair: Pair) -> str:
        checksum = pair.locator.get("checksum")
        if "checksum" in key and checksum:
            return checksum
        return stable_key(
            "pair",
            index,
            pair.source.host,
            pair.destination.host,
            pair.source.ip,
            pair.destination.ip,
            pair.family.value,
        )

    def pair_from(self, key: dict[str, Any], document: dict[str, Any]) -> Pair | str:
        values = [dig(document, field) for field in IDENTITY_FIELDS[:7]]
        if any(is_placeholder(v) for v in values):
            return "placeholder"
        source = self._endpoint(document, "source", "source")
        destination = self._endpoint(document, "destination", "dest")
        if source is None or destination is None:
            return "no-endpoint"
        family = family_of(dig(document, "meta.ip_version"), source.ip, destination.ip)
        if family is None:
            return "no-address-family"
        checksum = text(key.get("checksum") or dig(document, "pscheduler.test_checksum"), 128)
        if "checksum" in key and not CHECKSUM.match(checksum):
            return "bad-checksum"
        tool = text(dig(document, "pscheduler.tool"), 64)
        return Pair(
            source=source,
            destination=destination,
            family=family,
            tool=f"pscheduler/{tool}" if tool else "",
            bucket_width=positive_number(dig(document, "test.spec.bucket-width")),
            locator={"checksum": checksum} if checksum else {},
        )

    def _endpoint(self, document: dict[str, Any], meta: str, spec: str) -> Endpoint | None:
        ip = text(dig(document, f"meta.{meta}.ip"), 64)
        names = [
            text(dig(document, f"test.spec.{spec}")),
            text(dig(document, f"meta.{meta}.hostname")),
        ]
        host = next((n for n in names if n and not is_ip(n)), "") or next(
            (n for n in names if n), ip
        )
        if not host:
            return None
        return Endpoint(host=host, ip=ip, site=self.sites.site_for(host, ip))
