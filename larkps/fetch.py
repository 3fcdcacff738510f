"""Archive sources: the esmond/elmond REST client.

One code path serves perfSONAR 4.x esmond and 5.x elmond: metadata is listed
with an explicit ``limit`` and paged until a short page; data URIs are taken
verbatim from the metadata (``base-uri``), and data is paged by ``time-start``.
Parsing is pure (``parse_*`` functions); :class:`JsonClient` is the only part
that talks HTTP.
"""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests

from larkps.errors import ArchiveFormatError, ArchiveUnavailable
from larkps.model import EVENT_TYPE_METRICS, Endpoint, Family, Metric, Point, Series, SeriesKey
from larkps.sites import SiteMap

ARCHIVE_PATH = "/esmond/perfsonar/archive/"
DEFAULT_EVENT_TYPES = (
    "throughput",
    "histogram-owdelay",
    "histogram-rtt",
    "packet-count-lost",
    "packet-count-sent",
    "failures",
)
METADATA_PAGE = 500
DATA_PAGE = 10000  # elmond rejects larger pages
MAX_PAGES = 10000
MAX_RESPONSE_BYTES = 256 * 2**20


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
class HttpOptions:
    """Transport options of one archive."""

    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    verify_tls: bool = True
    ca_bundle: str | None = None
    max_connections: int = 8
    auth: tuple[str, str] | None = None  # HTTP basic auth; never logged


class JsonClient:
    """GET JSON documents from one archive over a pooled session."""

    def __init__(self, name: str, options: HttpOptions) -> None:
        self.name = name
        self.options = options
        self.session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=options.max_connections, pool_maxsize=options.max_connections
        )
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = "larkps"
        self.session.headers["Accept"] = "application/json"
        if options.auth is not None:
            self.session.auth = options.auth

    def close(self) -> None:
        self.session.close()

    def get(self, url: str, params: dict[str, str | int]) -> Any:
        """Return the decoded JSON body, or raise an ArchiveError naming the URL."""
        return self._request("GET", url, params=params)

    def post(self, url: str, body: dict[str, Any]) -> Any:
        """POST a JSON body (OpenSearch ``_search``) and return the decoded answer."""
        return self._request("POST", url, json=body)

    def _request(self, method: str, url: str, **kwargs: Any) -> Any:
        verify: bool | str = self.options.ca_bundle or self.options.verify_tls
        timeout = (self.options.connect_timeout, self.options.read_timeout)
        try:
            response = self.session.request(
                method, url, timeout=timeout, verify=verify, allow_redirects=False, **kwargs
            )
        except requests.exceptions.SSLError:
            raise ArchiveUnavailable(self.name, f"TLS verification failed for {url}") from None
        except requests.exceptions.Timeout:
            raise ArchiveUnavailable(self.name, f"timed out reading {url}") from None
        except requests.exceptions.ConnectionError:
            raise ArchiveUnavailable(self.name, f"cannot connect to {url}") from None
        with response:
            return self._decode(url, response)

    def _decode(self, url: str, response: requests.Response) -> Any:
        if response.is_redirect:
            target = response.headers.get("Location", "?")
            raise ArchiveUnavailable(self.name, f"refused redirect from {url} to {target}")
        if response.status_code != 200:
            raise ArchiveUnavailable(self.name, f"HTTP {response.status_code} from {url}")
        body = response.content
        if len(body) > MAX_RESPONSE_BYTES:
            raise ArchiveFormatError(self.name, f"response from {url} is larger than allowed")
        try:
            return json.loads(body, parse_constant=_reject_constant)
        except ValueError as exc:
            raise ArchiveFormatError(
                self.name, f"response from {url} is not JSON ({exc})"
            ) from None


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


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
    ) -> None:
        self.name = name
        self.url = archive_url(url)
        self.client = client
        self.sites = sites
        self.metadata_page = metadata_page
        self.data_page = data_page

    def discover(self, event_types: Iterable[str], since: int) -> list[Series]:
        """Every series of the given event types that has data since `since`."""
        wanted = set(event_types)
        found: dict[SeriesKey, Series] = {}
        # `failures` often has time-updated null, so it is found through its siblings.
        for event_type in sorted(wanted - {"failures"}):
            for obj in self._metadata(event_type, since):
                for series in parse_metadata(obj, self.name, self.url, self.sites):
                    if series.key.event_type in wanted:
                        found.setdefault(series.key, series)
        return list(found.values())

    def _metadata(self, event_type: str, since: int) -> Iterator[dict[str, Any]]:
        seen: set[str] = set()
        page_size = self.metadata_page
        for offset in range(0, page_size * MAX_PAGES, page_size):
            params: dict[str, str | int] = {
                "event-type": event_type,
                "time-start": since,
                "limit": page_size,
                "offset": offset,
            }
            page = self.client.get(self.url, params)
            if not isinstance(page, list):
                raise ArchiveFormatError(self.name, f"metadata list from {self.url} is not a list")
            fresh = [o for o in page if isinstance(o, dict) and o.get("metadata-key") not in seen]
            seen.update(str(o.get("metadata-key")) for o in fresh)
            yield from fresh
            if len(page) < page_size or not fresh:
                return

    def fetch(self, series: Series, start: int, end: int) -> list[Point]:
        """Points of one series with start <= ts <= end, paged by time-start."""
        url = urljoin(self.url, series.data_uri)
        points: list[Point] = []
        cursor = start
        for _ in range(MAX_PAGES):
            params: dict[str, str | int] = {
                "time-start": cursor,
                "time-end": end,
                "limit": self.data_page,
            }
            page = self.client.get(url, params)
            batch = parse_points(page, series, self.name)
            points.extend(batch)
            if len(page) < self.data_page or not batch:
                break
            cursor = batch[-1].ts + 1
        return _deduplicate(points)


def _deduplicate(points: list[Point]) -> list[Point]:
    by_ts = {p.ts: p for p in points}
    return [by_ts[ts] for ts in sorted(by_ts)]


def parse_metadata(
    obj: dict[str, Any], archive: str, base_url: str, sites: SiteMap
) -> list[Series]:
    """Turn one metadata object into one Series per known event type."""
    try:
        source_ip = str(obj["source"])
        destination_ip = str(obj.get("destination", ""))
        key = str(obj["metadata-key"])
        event_types = obj["event-types"]
    except (KeyError, TypeError):
        raise ArchiveFormatError(archive, "metadata object lacks source/metadata-key") from None
    source_host = str(obj.get("input-source") or source_ip)
    destination_host = str(obj.get("input-destination") or destination_ip)
    source = Endpoint(source_host, source_ip, sites.site_for(source_host, source_ip))
    destination = Endpoint(
        destination_host, destination_ip, sites.site_for(destination_host, destination_ip)
    )
    family = address_family(source_ip, archive)
    tool = str(obj.get("tool-name", ""))
    width = _bucket_width(obj.get("sample-bucket-width"))
    result = []
    for entry in event_types if isinstance(event_types, list) else []:
        if not isinstance(entry, dict):
            continue
        event_type = str(entry.get("event-type"))
        metric = EVENT_TYPE_METRICS.get(event_type)
        base_uri = entry.get("base-uri")
        if metric is None or not isinstance(base_uri, str):
            continue
        key_of_series = SeriesKey(archive, key, event_type)
        result.append(
            Series(key_of_series, source, destination, family, metric, tool, base_uri, width)
        )
    return result


def address_family(ip: str, archive: str) -> Family:
    """IPv4 or IPv6, from the address the archive stored."""
    try:
        version = ipaddress.ip_address(ip.strip("[]")).version
    except ValueError:
        raise ArchiveFormatError(archive, f"source {ip!r} is not an IP address") from None
    return Family.IPV6 if version == 6 else Family.IPV4


def _bucket_width(value: object) -> float | None:
    try:
        width = float(str(value))
    except ValueError:
        return None
    return width if math.isfinite(width) and width > 0 else None


def parse_points(page: object, series: Series, archive: str) -> list[Point]:
    """Parse one page of ``[{"ts": ..., "val": ...}]``; bad points are skipped."""
    if not isinstance(page, list):
        raise ArchiveFormatError(archive, f"data for {series.key.metadata_key} is not a list")
    points = []
    for item in page:
        point = _parse_point(item, series)
        if point is not None:
            points.append(point)
    points.sort(key=lambda p: p.ts)
    return points


def _parse_point(item: object, series: Series) -> Point | None:
    if not isinstance(item, dict):
        return None
    ts = _number(item.get("ts"))
    if ts is None or ts < 0:
        return None
    value = item.get("val")
    if series.metric is Metric.FAILURE:
        note = value.get("error") if isinstance(value, dict) else value
        return Point(int(ts), note=str(note)[:500])
    if series.metric in (Metric.OWDELAY, Metric.RTT):
        histogram = parse_histogram(value, series.bucket_width)
        return Point(int(ts), histogram=histogram) if histogram else None
    number = _number(value)
    if number is None or number < 0:
        return None
    return Point(int(ts), value=number)


def _number(value: object) -> float | None:
    """A finite float from a number or numeric string, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def parse_histogram(value: object, bucket_width: float | None) -> tuple[tuple[float, int], ...]:
    """Parse ``{"<bucket>": count}`` into sorted (ms, count) pairs.

    Bucket labels are delay / bucket-width; with the default width of 0.001 s that
    is milliseconds, otherwise they are rescaled (label * width * 1000).
    """
    if not isinstance(value, dict):
        return ()
    scale = 1.0
    if bucket_width is not None and not math.isclose(bucket_width, 0.001):
        scale = bucket_width * 1000.0
    buckets = []
    for label, count in value.items():
        bucket, weight = _number(label), _number(count)
        if bucket is None or weight is None or weight <= 0:
            continue
        buckets.append((round(bucket * scale, 9), int(weight)))
    buckets.sort()
    return tuple(buckets)
