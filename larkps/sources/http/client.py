"""The only HTTP code of larkps: :class:`JsonClient` over pooled keep-alive connections.

Per archive, at most ``max_connections`` requests are in flight (a bounded pool of
keep-alive connections). Connection errors and HTTP 5xx are retried with exponential
backoff and jitter; 4xx never. Every request honours the connect and read timeouts
and, when set, the client's cycle ``deadline``. Bodies are streamed with a byte cap,
so a huge or endless response costs at most ``max_response_bytes`` of memory.
Redirects are followed only to the same host (or a configured one), never from
https to http. The wire protocol is :mod:`larkps.sources.http.wire` (a lean HTTP/1.1 reader).
"""

from __future__ import annotations

import json
import logging
import random
import re
import socket
import ssl
import threading
import time
import zlib
from base64 import b64encode
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import orjson

from larkps.errors import ArchiveDeadline, ArchiveFormatError, ArchiveUnavailable
from larkps.sources.http.gate import cpu_gate
from larkps.sources.http.wire import Connection, ProtocolError, Response

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
CHUNK = 1 << 16
SNIPPET = 120  # characters of an HTTP error body kept for the message
_MARKUP = re.compile(
    r"<(?:script|style)\b.*?</(?:script|style)\s*>|<!--.*?-->|<[^>]*>", re.IGNORECASE | re.DOTALL
)
_NO_SUCH_NAME = {
    getattr(socket, name) for name in ("EAI_NONAME", "EAI_NODATA") if hasattr(socket, name)
}


@dataclass(frozen=True, slots=True)
class HttpOptions:
    """Transport options of one archive."""

    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    verify_tls: bool = True
    ca_bundle: str | None = None
    max_connections: int = 8
    auth: tuple[str, str] | None = field(default=None, repr=False)  # basic auth; never logged
    retries: int = 3
    backoff: float = 0.5  # seconds before the first retry; doubles each time, with jitter
    max_backoff: float = 30.0
    max_response_bytes: int = 64 * 2**20
    redirect_hosts: tuple[str, ...] = ()  # other hosts a redirect may lead to


class ResponseTooLarge(ArchiveFormatError):
    """The response body exceeded ``max_response_bytes``."""


class _Retry(Exception):
    """A failure worth retrying; carries the error to raise when retries run out."""

    def __init__(self, error: ArchiveUnavailable, fresh: bool, wait: float = 0.0) -> None:
        super().__init__(str(error))
        self.error = error
        self.fresh = fresh  # False: a reused keep-alive connection went stale
        self.wait = wait


@dataclass(frozen=True, slots=True)
class _Target:
    scheme: str
    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> _Target:
        base, _, query = url.partition("?")
        if "#" in url or not query.isprintable():  # urlsplit drops these: let it
            base, query = url, ""
        origin = _split_fast(base) or _split_origin(base)
        if origin is None:
            raise ValueError(f"not an http(s) URL: {url!r}")
        scheme, host, port, path = origin
        if query:
            path = f"{path}?{query}"
        return cls(scheme, host, port, path)

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)


@dataclass
class ClientStats:
    """Counters of one client (thread-safe through its lock)."""

    requests: int = 0
    retries: int = 0
    bytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, requests: int = 0, retries: int = 0, size: int = 0) -> None:
        with self.lock:
            self.requests += requests
            self.retries += retries
            self.bytes += size


class _Pool:
    """Idle keep-alive connections per origin, and a bound on those in use."""

    def __init__(self, options: HttpOptions, headers: tuple[str, ...]) -> None:
        self.options = options
        self.headers = headers
        self.idle: dict[tuple[str, str, int], list[Connection]] = {}
        self.lock = threading.Lock()
        self.freed = threading.Condition(self.lock)
        self.in_use = 0
        self.closed = False
        self.tls = _tls_context(options)

    def acquire(self, target: _Target, wait: float) -> tuple[Connection, bool]:
        """A connection to ``target`` and whether it was reused."""
        with self.lock:
            if self.in_use >= self.options.max_connections:
                self._wait_for_slot(wait)
            self.in_use += 1
            idle = self.idle.get(target.origin)
            if idle:
                return idle.pop(), True
            tls = self.tls if target.scheme == "https" else None
        return Connection(target.host, target.port, tls, self.headers), False

    def _wait_for_slot(self, wait: float) -> None:
        until = time.monotonic() + max(wait, 0.0)
        while self.in_use >= self.options.max_connections:
            if not self.freed.wait(max(until - time.monotonic(), 0.0)):
                if self.in_use < self.options.max_connections:
                    return
                raise ArchiveDeadline("", "cycle deadline reached waiting for a connection")

    def release(self, target: _Target, conn: Connection, reusable: bool) -> None:
        with self.lock:
            if reusable and not self.closed:
                self.idle.setdefault(target.origin, []).append(conn)
                conn = None  # type: ignore[assignment]
            self.in_use -= 1
            self.freed.notify()
        if conn is not None:
            conn.close()

    def close(self) -> None:
        with self.lock:
            self.closed = True
            conns = [c for idle in self.idle.values() for c in idle]
            self.idle.clear()
        for conn in conns:
            conn.close()


def _split_fast(url: str) -> tuple[str, str, int, str] | None:
    """``_split_origin`` of a plain ``http(s)://netloc/path`` URL without parsing the
    path (a cycle asks thousands of data URIs of a few origins); None otherwise."""
    if not url.startswith(("http://", "https://")) or not url.isprintable() or " " in url:
        return None
    slash = url.find("/", 8)
    if slash < 0 or "#" in url or "?" in url[:slash]:
        return None
    origin = _split_origin(url[:slash])
    return None if origin is None else (*origin[:3], url[slash:])


@lru_cache(maxsize=4096)
def _split_origin(url: str) -> tuple[str, str, int, str] | None:
    """(scheme, host, port, path with query) of an http(s) URL, else None; cached, since
    a cycle asks the same data URIs with new query strings."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port, path


def _tls_context(options: HttpOptions) -> ssl.SSLContext:
    if options.ca_bundle:
        return ssl.create_default_context(cafile=options.ca_bundle)
    context = ssl.create_default_context()
    if not options.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


@contextmanager
def cycle_deadline(clients: Iterable[JsonClient], seconds: float | None) -> Iterator[float | None]:
    """Bound every request of ``clients`` by one instant ``seconds`` from now (None: no
    bound) until the block ends; yields that ``time.monotonic()`` instant."""
    bounded = list(clients)
    until = None if seconds is None else time.monotonic() + seconds
    for client in bounded:
        client.deadline = until
    try:
        yield until
    finally:
        for client in bounded:
            client.deadline = None


class JsonClient:
    """GET/POST JSON documents from one archive over a bounded pool of connections.

    ``deadline`` (a ``time.monotonic()`` instant, or None) bounds every request,
    retry and wait for a connection; :func:`cycle_deadline` is the one place that sets it.
    """

    def __init__(self, name: str, options: HttpOptions) -> None:
        self.name = name
        self.options = options
        self.deadline: float | None = None
        self.stats = ClientStats()
        headers = ["User-Agent: larkps", "Accept: application/json", "Accept-Encoding: gzip"]
        if options.auth is not None:
            token = b64encode(f"{options.auth[0]}:{options.auth[1]}".encode()).decode()
            headers.append(f"Authorization: Basic {token}")
        self._pool = _Pool(options, tuple(headers))

    def close(self) -> None:
        self._pool.close()

    def get(self, url: str, params: dict[str, str | int] | None = None) -> Any:
        """Return the decoded JSON body, or raise an ArchiveError naming the URL."""
        if params:
            url = f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"
        return self._request("GET", url, None)

    def post(self, url: str, body: dict[str, Any]) -> Any:
        """POST a JSON body (OpenSearch ``_search``) and return the decoded answer."""
        return self._request("POST", url, json.dumps(body).encode())

    def remaining(self) -> float | None:
        """Seconds left before the deadline (None without one)."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def _request(self, method: str, url: str, body: bytes | None) -> Any:
        for _ in range(MAX_REDIRECTS + 1):
            status, payload, location = self._with_retries(method, url, body)
            if location is None:
                return self._decode(url, payload)
            url = self._redirect(url, status, location)
        raise ArchiveUnavailable(self.name, f"too many redirects from {url}")

    def _redirect(self, url: str, status: int, location: str) -> str:
        target = urljoin(url, location)
        old, new = urlsplit(url), urlsplit(target)
        same = new.hostname == old.hostname or new.hostname in self.options.redirect_hosts
        if not same or (old.scheme == "https" and new.scheme != "https"):
            raise ArchiveUnavailable(self.name, f"refused redirect from {url} to {target}")
        log.debug("archive %s: following HTTP %d from %s to %s", self.name, status, url, target)
        return target

    def _with_retries(
        self, method: str, url: str, body: bytes | None
    ) -> tuple[int, bytes, str | None]:
        target = _Target.parse(url)
        attempt = 0
        while True:
            try:
                return self._once(method, url, target, body)
            except _Retry as retry:
                if not retry.fresh:  # a stale keep-alive connection: retry at once
                    continue
                attempt += 1
                if attempt > self.options.retries:
                    raise retry.error from None
                self._sleep_before_retry(attempt, retry)

    def _sleep_before_retry(self, attempt: int, retry: _Retry) -> None:
        ceiling = min(self.options.max_backoff, self.options.backoff * 2 ** (attempt - 1))
        delay = max(retry.wait, ceiling * random.uniform(0.5, 1.0))
        left = self.remaining()
        if left is not None and delay >= left:
            raise retry.error from None
        self.stats.add(retries=1)
        log.info(
            "archive %s: %s; retry %d in %.2f s", self.name, retry.error.problem, attempt, delay
        )
        time.sleep(delay)

    def _timeout(self, wanted: float) -> float:
        left = self.remaining()
        if left is None:
            return wanted
        if left <= 0:
            raise ArchiveDeadline(self.name, "cycle deadline reached")
        return min(wanted, left)

    def _once(
        self, method: str, url: str, target: _Target, body: bytes | None
    ) -> tuple[int, bytes, str | None]:
        wait = self._timeout(self.options.connect_timeout + self.options.read_timeout)
        try:
            conn, reused = self._pool.acquire(target, wait)
        except ArchiveDeadline:
            raise ArchiveDeadline(self.name, f"cycle deadline reached before {url}") from None
        reusable = False
        try:
            if conn.sock is None:
                self._connect(conn, url)
            status, payload, location, reusable = self._exchange(
                conn, method, url, target, body, reused
            )
        finally:
            self._pool.release(target, conn, reusable)
        self.stats.add(requests=1, size=len(payload))
        return status, payload, location

    def _connect(self, conn: Connection, url: str) -> None:
        timeout = self._timeout(self.options.connect_timeout)
        try:
            conn.connect(timeout)
        except ssl.SSLError as exc:
            problem = f"TLS verification failed for {_bare(url)} ({_reason(exc)})"
            raise ArchiveUnavailable(self.name, problem) from None
        except OSError as exc:  # refused, unreachable, timed out, name not found
            why = _connect_failure(exc, conn.host, timeout)
            error = ArchiveUnavailable(self.name, f"cannot connect to {_bare(url)}: {why}")
            if isinstance(exc, socket.gaierror) and exc.errno in _NO_SUCH_NAME:
                raise error from None  # asking again would not find it
            raise _Retry(error, fresh=True) from None

    def _exchange(
        self,
        conn: Connection,
        method: str,
        url: str,
        target: _Target,
        body: bytes | None,
        reused: bool,
    ) -> tuple[int, bytes, str | None, bool]:
        assert conn.sock is not None
        timeout = self._timeout(self.options.read_timeout)
        conn.sock.settimeout(timeout)
        try:
            response = conn.request(method, target.path, body, "application/json")
            return self._handle(response, url)
        except TimeoutError:
            if timeout < self.options.read_timeout:  # the deadline ran out, not the timeout
                problem = f"cycle deadline reached reading {_bare(url)}"
                raise ArchiveDeadline(self.name, problem) from None
            raise ArchiveUnavailable(self.name, f"timed out reading {_bare(url)}") from None
        except (ProtocolError, ConnectionError) as exc:
            error = ArchiveUnavailable(self.name, f"connection to {url} failed ({_reason(exc)})")
            raise _Retry(error, fresh=not reused) from None
        except OSError as exc:
            raise ArchiveUnavailable(self.name, f"error reading {url} ({_reason(exc)})") from None

    def _handle(self, response: Response, url: str) -> tuple[int, bytes, str | None, bool]:
        status = response.status
        location = response.header("location")
        if 300 <= status < 400 and location:
            _discard(response)
            return status, b"", location, False
        if status != 200:
            snippet = _snippet(_drain(response, 4096))
            error = ArchiveUnavailable(self.name, f"HTTP {status} from {_bare(url)}{snippet}")
            if status >= 500:
                raise _Retry(error, fresh=True, wait=_retry_after(response))
            raise error
        payload = self._read_body(response, url)
        reusable = response.complete and not response.will_close and not response.conn.rest
        return status, payload, None, reusable

    def _read_body(self, response: Response, url: str) -> bytes:
        cap = self.options.max_response_bytes
        length = response.header("content-length")
        if length and length.isdigit() and int(length) > cap:
            _discard(response)
            raise ResponseTooLarge(self.name, _too_large(url, cap))
        gzipped = (response.header("content-encoding") or "").lower() == "gzip"
        inflate = zlib.decompressobj(wbits=31) if gzipped else None
        parts: list[bytes] = []
        total = 0
        while chunk := response.read(CHUNK):
            if inflate is not None:
                chunk = inflate.decompress(chunk, cap - total + 1)
                if inflate.unconsumed_tail:
                    total = cap + 1
            total += len(chunk)
            if total > cap:
                _discard(response)
                raise ResponseTooLarge(self.name, _too_large(url, cap))
            parts.append(chunk)
            self._timeout(self.options.read_timeout)  # raises once the deadline passed
        return b"".join(parts)

    def _decode(self, url: str, payload: bytes) -> Any:
        try:
            with cpu_gate:
                return loads(payload)
        except ValueError as exc:
            raise ArchiveFormatError(
                self.name, f"response from {url} is not JSON ({exc})"
            ) from None


def loads(payload: bytes) -> Any:
    """``json.loads``, faster: orjson reads what it can (UTF-8, standard JSON),
    the standard library the rest (NaN, Infinity, UTF-16, lone surrogates) and gives
    the errors. One difference: an integer beyond 64 bits, which no archive sends,
    comes back as the nearest float."""
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        return json.loads(payload)


def _bare(url: str) -> str:
    """The URL without its query, for messages."""
    return url.split("?", 1)[0]


def _too_large(url: str, cap: int) -> str:
    return f"response from {url} is larger than {cap} bytes"


def _discard(response: Response) -> None:
    """Give up on a body we will not read (the connection is not reused)."""
    response.close()


def _drain(response: Response, limit: int) -> bytes:
    """Up to ``limit`` bytes of an error body, for the message; the connection closes."""
    parts: list[bytes] = []
    try:
        while limit > 0 and (part := response.read(limit)):
            parts.append(part)
            limit -= len(part)
    except (OSError, ProtocolError):
        pass
    finally:
        response.close()
    return b"".join(parts)


def _snippet(body: bytes) -> str:
    """A short excerpt of an error body: markup and control characters dropped,
    white space collapsed, at most SNIPPET characters."""
    text = _MARKUP.sub(" ", body.decode("utf-8", "replace"))
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    if len(text) > SNIPPET:
        text = text[: SNIPPET - 3].rstrip() + "..."
    return f": {text}" if text else ""


def _connect_failure(exc: OSError, host: str, timeout: float) -> str:
    """Why a connection could not be made, in words."""
    if isinstance(exc, socket.gaierror):
        if exc.errno in _NO_SUCH_NAME:
            return f"host name {host} not found"
        return f"cannot look up host name {host} ({exc.strerror or exc})"
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return _reason(exc).lower()


def _retry_after(response: Response) -> float:
    value = response.header("retry-after") or ""
    return min(float(value), 60.0) if value.isdigit() else 0.0


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return exc.verify_message or "certificate verify failed"
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text)
