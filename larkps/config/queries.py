"""The esmond query vocabulary: archive URL, event types, DNS match rules, page sizes
and metadata filters.

Kept free of HTTP, numpy and parsing so that configuration (and so every command
that reads a config file) can use it without importing the fetching machinery.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit, urlunsplit

from larkps.model import EVENT_TYPE_METRICS, Family, Series

ARCHIVE_PATH = "/esmond/perfsonar/archive/"
#: What larkps fetches unless told otherwise.
DEFAULT_EVENT_TYPES = (
    "throughput",
    "histogram-owdelay",
    "histogram-rtt",
    "packet-count-lost",
    "packet-count-sent",
    "failures",
    "packet-retransmits",  # retransmits per test
    "time-error-estimates",  # clock-error flag on one-way delays
)
#: Every event type larkps can parse.
ALL_EVENT_TYPES = tuple(sorted(EVENT_TYPE_METRICS))


class SearchMode(StrEnum):
    """``[archives.search] mode``: what a search archive is asked for."""

    RAW = "raw"  # the test documents, stored and aggregated here
    SUMMARY = "summary"  # per-pair statistics computed by the cluster


DNS_MATCH_RULES = ("v4v6", "only-v4", "only-v6", "prefer-v4", "prefer-v6")
METADATA_PAGE = 500
DATA_PAGE = 10000  # elmond rejects larger pages


def archive_url(text: str) -> str:
    """Turn ``ps.example.org``, ``https://ps.example.org`` or a full archive URL into
    the canonical ``.../esmond/perfsonar/archive/`` URL."""
    candidate = text.strip()
    if "://" not in candidate:
        candidate = "https://" + candidate
    parts = urlsplit(candidate)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an archive host or http(s) URL, got {text!r}")
    path = parts.path.rstrip("/")
    marker = ARCHIVE_PATH.rstrip("/")
    if marker in path:
        path = path[: path.index(marker)]
    return urlunsplit((parts.scheme, parts.netloc, path + ARCHIVE_PATH, "", ""))


@dataclass(frozen=True, slots=True)
class MetadataFilters:
    """Server-side metadata filters (esmond query parameters) plus a family filter.

    ``source``/``destination``/``measurement_agent`` take an IP or a host name (the
    archive resolves names per ``dns_match_rule``). ``time_range`` (seconds) replaces
    the default ``time-start`` of discovery. ``families`` is applied by larkps,
    since esmond cannot filter on the address family of a test.
    """

    source: str | None = None
    destination: str | None = None
    measurement_agent: str | None = None
    input_source: str | None = None
    input_destination: str | None = None
    tool_name: str | None = None
    dns_match_rule: str | None = None
    time_range: int | None = None
    families: tuple[Family, ...] = ()
    params: tuple[tuple[str, str], ...] = ()  # free-form, e.g. ("ip-transport-protocol", "tcp")

    def query(self) -> dict[str, str | int]:
        fields = {
            "source": self.source,
            "destination": self.destination,
            "measurement-agent": self.measurement_agent,
            "input-source": self.input_source,
            "input-destination": self.input_destination,
            "tool-name": self.tool_name,
            "dns-match-rule": self.dns_match_rule,
            "time-range": self.time_range,
        }
        query: dict[str, str | int] = {k: v for k, v in fields.items() if v is not None}
        query.update(self.params)
        return query

    def accepts(self, series: Series) -> bool:
        return not self.families or series.family in self.families
