"""A lean HTTP/1.1 client connection: what :class:`JsonClient` needs and nothing more.

``http.client`` parses every response's headers with the ``email`` package, costly
for an incremental cycle, which makes one small request per series (figures in
docs/benchmarks.md). This module sends a request prepared as one byte
string and reads the response by hand: the status line, ``Name: value`` header
lines (obs-fold continuations, bare LF line ends and repeated names tolerated), then
a ``Content-Length``, chunked or read-until-close body, handed out in pieces so the
caller can cap its size. Plain TCP and TLS (``ssl`` with the caller's context) alike.

Errors: :class:`ProtocolError` for a response that breaks HTTP/1.1 framing,
:class:`Disconnected` (a ``ConnectionError``) when the peer closes before answering;
socket timeouts and other ``OSError`` pass through unchanged.
"""

from __future__ import annotations

import re
import socket
import ssl

MAX_HEAD_BYTES = 1 << 16  # status line and headers
MAX_HEADERS = 100
MAX_LINE = 1 << 16  # a chunk-size or trailer line
RECV = 1 << 16
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_NO_BODY = (204, 304)


class ProtocolError(Exception):
    """The response is not valid HTTP/1.1."""


class Disconnected(ConnectionError):
    """The peer closed the connection before sending a response."""


class Connection:
    """One keep-alive connection to ``host``:``port`` (TLS when ``tls`` is a context).

    ``headers`` (each ``Name: value``) go out with every request, after ``Host``.
    """

    def __init__(
        self, host: str, port: int, tls: ssl.SSLContext | None, headers: tuple[str, ...]
    ) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.sock: socket.socket | None = None
        self.rest = b""  # bytes received past the end of the last response part read
        lines = [f"Host: {_host_header(host, port, tls is not None)}", *headers]
        self._head_tail = (" HTTP/1.1\r\n" + "".join(f"{h}\r\n" for h in lines)).encode()

    def connect(self, timeout: float) -> None:
        """Open the TCP connection (and the TLS session, verified by the context)."""
        sock = socket.create_connection((self.host, self.port), timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self.sock = sock

    def close(self) -> None:
        sock, self.sock, self.rest = self.sock, None, b""
        if sock is not None:
            sock.close()

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str = ""
    ) -> Response:
        """Send one request and read the response's status line and headers."""
        assert self.sock is not None
        extra = b"\r\n"
        if body is not None:
            extra = f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        self.rest = b""
        self.sock.sendall(
            b"".join(
                (method.encode(), b" ", _path_bytes(path), self._head_tail, extra, body or b"")
            )
        )
        while True:
            response = self._response()
            if not 100 <= response.status < 200:
                return response

    def recv(self, limit: int) -> bytes:
        """Up to ``limit`` bytes: what is buffered first, else one read from the socket."""
        rest = self.rest
        if rest:
            if len(rest) <= limit:
                self.rest = b""
                return rest
            self.rest = rest[limit:]
            return rest[:limit]
        assert self.sock is not None
        return self.sock.recv(min(limit, RECV))

    def line(self) -> bytes:
        """One line without its line end (chunked framing)."""
        data = self.rest
        while (end := data.find(b"\n")) < 0:
            if len(data) > MAX_LINE:
                raise ProtocolError(f"a chunked-body line longer than {MAX_LINE} bytes")
            more = self._recv_more()
            if not more:
                raise ProtocolError("connection closed inside a chunked body")
            data += more
        self.rest = data[end + 1 :]
        return data[:end].rstrip(b"\r")

    def _recv_more(self) -> bytes:
        assert self.sock is not None
        return self.sock.recv(RECV)

    def _response(self) -> Response:
        head = self._head()
        lines = head.decode("latin-1").split("\n")
        version, status = _status_line(lines[0].rstrip("\r"))
        headers = _headers(lines[1:])
        return Response(self, version, status, headers)

    def _head(self) -> bytes:
        data, searched = self.rest, 0
        while (found := _BLANK_LINE.search(data, searched)) is None:
            if len(data) > MAX_HEAD_BYTES:
                raise ProtocolError(f"response headers longer than {MAX_HEAD_BYTES} bytes")
            more = self._recv_more()
            if not more:
                if data.strip():
                    raise ProtocolError("connection closed inside the response headers")
                raise Disconnected("remote end closed connection without response")
            searched = max(0, len(data) - 3)
            data += more
        self.rest = data[found.end() :]
        return data[: found.start()]


class Response:
    """Status, headers (names lower-cased) and the body of one response, to be read
    with :meth:`read` until it returns ``b""``."""

    __slots__ = ("_left", "_mode", "complete", "conn", "headers", "status", "version", "will_close")

    def __init__(
        self, conn: Connection, version: str, status: int, headers: dict[str, str]
    ) -> None:
        self.conn = conn
        self.version = version
        self.status = status
        self.headers = headers
        self._mode, self._left = _framing(status, headers)  # "length", "chunked", "close"
        self.will_close = self._mode == "close" or _closes(version, headers)
        self.complete = self._mode == "length" and self._left == 0

    def header(self, name: str) -> str | None:
        """The header's value (repeated headers joined by ", "); ``name`` lower-case."""
        return self.headers.get(name)

    def read(self, limit: int) -> bytes:
        """Up to ``limit`` (> 0) more bytes of the body; ``b""`` once it is complete."""
        if self.complete:
            return b""
        if self._mode == "length":
            return self._read_length(limit)
        if self._mode == "chunked":
            return self._read_chunked(limit)
        data = self.conn.recv(limit)
        self.complete = not data
        return data

    def close(self) -> None:
        """Give up on the rest of the body: the connection cannot be reused."""
        self.complete = True
        self.will_close = True
        self.conn.close()

    def _read_length(self, limit: int) -> bytes:
        data = self.conn.recv(min(limit, self._left))
        if not data:
            raise ProtocolError(f"connection closed with {self._left} body bytes unread")
        self._left -= len(data)
        self.complete = self._left == 0
        return data

    def _read_chunked(self, limit: int) -> bytes:
        if self._left == 0:
            self._left = _chunk_size(self.conn.line())
            if self._left == 0:
                self._skip_trailers()
                return b""
        data = self.conn.recv(min(limit, self._left))
        if not data:
            raise ProtocolError("connection closed inside a chunked body")
        self._left -= len(data)
        if self._left == 0 and self.conn.line():
            raise ProtocolError("a chunk is longer than its size")
        return data

    def _skip_trailers(self) -> None:
        for _ in range(MAX_HEADERS + 1):
            if not self.conn.line():
                self.complete = True
                return
        raise ProtocolError(f"more than {MAX_HEADERS} trailer lines")


def _status_line(line: str) -> tuple[str, int]:
    parts = line.split(None, 2)
    if len(parts) < 2 or parts[0] not in ("HTTP/1.1", "HTTP/1.0") or not _is_status(parts[1]):
        raise ProtocolError(f"malformed status line {line[:80]!r}")
    return parts[0], int(parts[1])


def _is_status(text: str) -> bool:
    return len(text) == 3 and text.isascii() and text.isdigit() and text[0] != "0"


def _headers(lines: list[str]) -> dict[str, str]:
    if len(lines) > MAX_HEADERS:
        raise ProtocolError(f"got more than {MAX_HEADERS} headers")
    headers: dict[str, str] = {}
    last = ""
    for raw in lines:
        line = raw.rstrip("\r")
        if line[:1] in (" ", "\t"):  # obs-fold: a continuation of the previous value
            if last:
                headers[last] = f"{headers[last]} {line.strip()}".strip()
            continue
        name, colon, value = line.partition(":")
        name = name.strip().lower()
        if not colon or not name:
            last = ""  # not a header line: skipped, as http.client does
            continue
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
        last = name
    return headers


def _framing(status: int, headers: dict[str, str]) -> tuple[str, int]:
    """How the body ends: ("length", n), ("chunked", 0) or ("close", 0) (RFC 9112 6.3)."""
    if status in _NO_BODY:
        return "length", 0
    coding = headers.get("transfer-encoding")
    if coding is not None:
        last = coding.rsplit(",", 1)[-1].strip().lower()
        return ("chunked", 0) if last == "chunked" else ("close", 0)
    length = headers.get("content-length")
    if length is not None:
        values = {v.strip() for v in length.split(",")}
        if len(values) == 1 and (value := values.pop()).isascii() and value.isdigit():
            return "length", int(value)
    return "close", 0  # no usable length: the body ends when the server closes


def _closes(version: str, headers: dict[str, str]) -> bool:
    tokens = {t.strip() for t in headers.get("connection", "").lower().split(",")}
    if version == "HTTP/1.1":
        return "close" in tokens
    return "keep-alive" not in tokens


def _chunk_size(line: bytes) -> int:
    text = line.split(b";", 1)[0].strip()
    if not 0 < len(text) <= 16 or text.strip(b"0123456789abcdefABCDEF"):
        raise ProtocolError(f"bad chunk size {line[:40]!r}")  # hex digits only: no sign, no 0x
    return int(text, 16)


def _path_bytes(path: str) -> bytes:
    if not path.isascii() or not path.isprintable() or " " in path:
        raise ProtocolError(f"URL path is not printable ASCII without spaces: {path[:80]!r}")
    return path.encode()


def _host_header(host: str, port: int, tls: bool) -> str:
    try:
        name = host.encode("ascii").decode()
    except UnicodeEncodeError:
        name = host.encode("idna").decode()
    if ":" in name:  # an IPv6 literal
        name = f"[{name}]"
    return name if port == (443 if tls else 80) else f"{name}:{port}"
