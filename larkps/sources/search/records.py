"""Pure helpers that turn search documents into larkps records.

Shared by the OpenSearch (``pscheduler_*``) and WLCG (``ps_*``) sources: field
access by dotted path, numbers that may be strings, address families, unit
scaling, stable series keys, document site names and data-quality counters.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from larkps.model import Endpoint, Family
from larkps.sources.search.specs import Scale
from larkps.units import finite_number

PLACEHOLDER = "%{"
#: Site names from documents: upper-cased, whitespace runs become "_", then this.
SITE_NAME = re.compile(r"^[A-Z0-9][A-Z0-9_.-]{0,63}$")
NO_SITE = frozenset({"", "UNKNOWN", "NONE", "NULL", "N/A", "-"})
DEFAULT_BUCKET_WIDTH = 0.001


@dataclass(frozen=True, slots=True)
class SearchFilters:
    """The indices and fixed filters a search source reads."""

    indices: tuple[str, ...]
    filters: tuple[str, ...]
    session: str = ""  # set where discovery must rerun in a new process


@dataclass(frozen=True, slots=True)
class Pair:
    """Who measured what, as read from one document."""

    source: Endpoint
    destination: Endpoint
    family: Family
    tool: str
    bucket_width: float | None
    locator: dict[str, str]  # raw field values that select this series' documents


def dig(document: object, path: str) -> Any:
    """The value at a dotted path; a literal dotted key is also accepted at each level."""
    current = document
    parts = path.split(".")
    index = 0
    while index < len(parts):
        if not isinstance(current, dict):
            return None
        rest = ".".join(parts[index:])
        if rest in current:
            return current[rest]
        current = current.get(parts[index])
        index += 1
    return current


def text(value: object, limit: int = 255) -> str:
    """A bounded string from a scalar document field ("" for anything else)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return ""
    return str(value).strip()[:limit]


def is_placeholder(value: object) -> bool:
    """True for an unresolved Logstash reference such as ``%{[DESTINATION][IPV4]}``."""
    return isinstance(value, str) and PLACEHOLDER in value


def normal_ip(value: str) -> str | None:
    """The compressed lower-case form of an IP address, or None."""
    try:
        return ipaddress.ip_address(value.strip().strip("[]")).compressed
    except ValueError:
        return None


def is_ip(value: str) -> bool:
    return normal_ip(value) is not None


def family_of(version: object, *addresses: str) -> Family | None:
    """IPv4 or IPv6 from an ip_version (4/6), an ipv6 flag, or the addresses."""
    if isinstance(version, bool):
        return Family.IPV6 if version else Family.IPV4
    code = finite_number(version)
    if code in (4.0, 6.0):
        return Family.IPV6 if code == 6.0 else Family.IPV4
    for address in addresses:
        try:
            parsed = ipaddress.ip_address(address.strip().strip("[]"))
        except ValueError:
            continue
        return Family.IPV6 if parsed.version == 6 else Family.IPV4
    return None


def epoch_seconds(value: object, millis: bool = False) -> int | None:
    """Unix seconds from an ISO-8601 string or an epoch number (ms when `millis`)."""
    if isinstance(value, str) and not value.strip().lstrip("-").isdigit():
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return int(moment.timestamp())
    seconds = finite_number(value)
    if seconds is None or seconds < 0:
        return None
    return int(seconds // 1000) if millis else int(seconds)


def scale_factor(scale: Scale, width: float | None) -> float:
    """Multiplier from a raw field value to larkps units (ms for delays)."""
    if scale is Scale.SECONDS_TO_MS:
        return 1000.0
    if scale is Scale.BUCKET_LABEL and width and not math.isclose(width, DEFAULT_BUCKET_WIDTH):
        return width * 1000.0
    return 1.0


def stable_key(*parts: str) -> str:
    """A 32-hex series key from identifying strings (same input, same key)."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "replace"))
    return digest.hexdigest()[:32]


def document_site(*candidates: object) -> tuple[str | None, bool]:
    """The first usable site name among candidates, and whether a bad one was seen.

    Names are upper-cased (so ``Site-A`` and ``SITE-A`` are one site) with runs of
    whitespace turned into ``_``; ``UNKNOWN`` and empty names are skipped; names
    that still do not match :data:`SITE_NAME` are skipped and reported.
    """
    rejected = False
    for candidate in candidates:
        if not isinstance(candidate, str) or is_placeholder(candidate):
            rejected = rejected or isinstance(candidate, str)
            continue
        name = "_".join(candidate.split()).upper()
        if name in NO_SITE:
            continue
        if SITE_NAME.match(name):
            return name, rejected
        rejected = True
    return None, rejected


class QualityCounters:
    """Thread-safe counters of data-quality events (skipped documents and so on)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._unreported: Counter[str] = Counter()

    def add(self, what: str, count: int = 1) -> None:
        if count > 0:
            with self._lock:
                self._counts[what] += count
                self._unreported[what] += count

    def snapshot(self) -> dict[str, int]:
        """Totals since the source was made."""
        with self._lock:
            return dict(self._counts)

    def drain(self) -> dict[str, int]:
        """Counts added since the previous drain (for logging each event once)."""
        with self._lock:
            fresh = dict(self._unreported)
            self._unreported.clear()
            return fresh
