"""The lean HTTP/1.1 reader (larkps.sources.http.wire) against a scripted server on 127.0.0.1.

The server answers each request with the next scripted reply, sent as raw bytes in
the given pieces (a pause between pieces, so the client sees them in separate
reads), and records every request and connection. Expected values are the scripted
documents themselves.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from larkps.errors import ArchiveUnavailable
from larkps.sources import HttpOptions, JsonClient, ResponseTooLarge
from larkps.sources.http.wire import Connection, Disconnected, ProtocolError

DOC = [{"ts": 1_700_000_000, "val": 1.5}, {"ts": 1_700_000_060, "val": {"3.5": 2}}]
BODY = json.dumps(DOC).encode()


@dataclass
class Reply:
    pieces: list[bytes]
    close: bool = False  # hang up after sending (with or without saying so)
    gap: float = 0.02  # seconds between two pieces


@dataclass
class Scripted:
    """Raw-socket server: one thread per connection, replies taken in order."""

    replies: list[Reply]
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while True:
                while b"\r\n\r\n" not in data:
                    more = conn.recv(65536)
                    if not more:
                        return
                    data += more
                request, _, data = data.partition(b"\r\n\r\n")
                with self.lock:
                    self.requests.append(request)
                    reply = self.replies.pop(0) if self.replies else None
                if reply is None:
                    return
                if not self._send(conn, reply):
                    return

    @staticmethod
    def _send(conn: socket.socket, reply: Reply) -> bool:
        """Send the pieces; False once the connection is to be (or was) closed."""
        try:
            for i, piece in enumerate(reply.pieces):
                if i:
                    time.sleep(reply.gap)
                conn.sendall(piece)
        except OSError:  # the client hung up (a size cap or a timeout)
            return False
        return not reply.close

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def scripted() -> Iterator[list[Scripted]]:
    servers: list[Scripted] = []
    yield servers
    for server in servers:
        server.close()


def serve(servers: list[Scripted], *replies: Reply) -> Scripted:
    server = Scripted(list(replies))
    servers.append(server)
    return server


def port_of(server: Scripted) -> int:
    return int(server.url.rsplit(":", 1)[1])


def client(**overrides: object) -> JsonClient:
    base: dict[str, object] = {"retries": 1, "backoff": 0.01, "read_timeout": 2.0}
    return JsonClient("t", HttpOptions(**(base | overrides)))  # type: ignore[arg-type]


def ok(body: bytes = BODY, extra: str = "") -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra}"
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


def chunked(body: bytes, size: int) -> list[bytes]:
    parts = [
        f"{len(body[i : i + size]):x};ext=1\r\n".encode() + body[i : i + size] + b"\r\n"
        for i in range(0, len(body), size)
    ]
    return [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        *parts,
        b"0\r\nX-T: 1\r\n\r\n",
    ]


def test_content_length_and_keep_alive_reuse(scripted: list[Scripted]):
    server = serve(scripted, Reply([ok()]), Reply([ok(b"[]")]), Reply([ok()]))
    http = client()
    assert http.get(f"{server.url}/a/b", {"x": 1}) == DOC
    assert http.get(f"{server.url}/c") == []
    assert http.get(f"{server.url}/d?y=2") == DOC
    assert server.connections == 1  # one keep-alive connection for all three
    first = server.requests[0].decode().split("\r\n")
    assert first[0] == "GET /a/b?x=1 HTTP/1.1"
    assert f"Host: 127.0.0.1:{port_of(server)}" in first
    assert "Accept-Encoding: gzip" in first and "Accept: application/json" in first
    assert http.stats.requests == 3


def test_chunked_body_with_extensions_and_trailers(scripted: list[Scripted]):
    server = serve(scripted, Reply(chunked(BODY, 7)), Reply([ok(b"[1]")]))
    http = client()
    assert http.get(f"{server.url}/x") == DOC
    assert http.get(f"{server.url}/y") == [1]  # the connection stayed usable
    assert server.connections == 1


def test_gzip_over_chunked(scripted: list[Scripted]):
    packed = gzip.compress(BODY)
    pieces = chunked(packed, 10)
    pieces[0] = pieces[0].replace(b"\r\n\r\n", b"\r\nContent-Encoding: gzip\r\n\r\n")
    server = serve(scripted, Reply(pieces))
    assert client().get(f"{server.url}/x") == DOC


def test_connection_close_without_length_reads_to_the_end(scripted: list[Scripted]):
    head = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
    server = serve(scripted, Reply([head, BODY[:9], BODY[9:]], close=True), Reply([ok(b"[2]")]))
    http = client()
    assert http.get(f"{server.url}/x") == DOC
    assert http.get(f"{server.url}/y") == [2]
    assert server.connections == 2  # the first connection was not reused


def test_http_10_closes_unless_kept_alive(scripted: list[Scripted]):
    one = f"HTTP/1.0 200 OK\r\nContent-Length: {len(BODY)}\r\n\r\n".encode() + BODY
    server = serve(scripted, Reply([one], close=True), Reply([ok(b"[3]")]))
    http = client()
    assert http.get(f"{server.url}/x") == DOC
    assert http.get(f"{server.url}/y") == [3]
    assert server.connections == 2


def test_headers_split_across_reads_bare_lf_folds_and_repeats(scripted: list[Scripted]):
    raw = ok(extra="X-Folded: a\r\n  b\r\nX-Twice: 1\nX-Twice: 2\r\nno colon line\r\n")
    pieces = [raw[i : i + 5] for i in range(0, len(raw), 5)]
    server = serve(scripted, Reply(pieces))
    conn = Connection("127.0.0.1", port_of(server), None, ())
    conn.connect(2.0)
    assert conn.sock is not None
    conn.sock.settimeout(2.0)
    response = conn.request("GET", "/x")
    assert response.status == 200
    assert response.header("x-folded") == "a b" and response.header("x-twice") == "1, 2"
    body = b"".join(iter(lambda: response.read(4), b""))
    assert json.loads(body) == DOC and response.complete and not response.will_close
    conn.close()


def test_oversize_bodies_are_refused(scripted: list[Scripted]):
    big = json.dumps([{"ts": i, "val": 1.0} for i in range(400)]).encode()
    server = serve(scripted, Reply([ok(big)]), Reply(chunked(big, 100)), Reply([ok(b"[4]")]))
    http = client(max_response_bytes=1000)
    with pytest.raises(ResponseTooLarge, match="larger than 1000 bytes"):
        http.get(f"{server.url}/declared")
    with pytest.raises(ResponseTooLarge, match="larger than 1000 bytes"):
        http.get(f"{server.url}/chunked")
    assert http.get(f"{server.url}/small") == [4]


@pytest.mark.parametrize(
    "status_line", [b"HTTP/1.1 2x0 OK", b"ICY 200 OK", b"garbage", b"HTTP/2 200"]
)
def test_malformed_status_line_is_a_retried_connection_failure(
    scripted: list[Scripted], status_line: bytes
):
    bad = Reply([status_line + b"\r\nContent-Length: 2\r\n\r\n[]"], close=True)
    server = serve(scripted, bad, bad)
    with pytest.raises(ArchiveUnavailable, match="malformed status line"):
        client().get(f"{server.url}/x")
    assert len(server.requests) == 2  # tried, then retried once


def test_stale_keep_alive_connection_is_replaced_at_once(scripted: list[Scripted]):
    server = serve(scripted, Reply([ok()], close=True), Reply([ok(b"[5]")]))
    http = client(retries=0)  # no retries: the stale connection must not count as one
    assert http.get(f"{server.url}/x") == DOC
    time.sleep(0.05)  # the server has hung up without saying so
    assert http.get(f"{server.url}/y") == [5]
    assert server.connections == 2 and http.stats.retries == 0


def test_truncated_body_and_bad_chunk_size_are_protocol_errors(scripted: list[Scripted]):
    short = b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n[1, 2"
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    bad_chunks = [chunked + size + b"\r\n[]\r\n0\r\n\r\n" for size in (b"zz", b"-2", b"0x2")]
    for raw, error in [(short, "body bytes unread")] + [(b, "bad chunk size") for b in bad_chunks]:
        server = serve(scripted, Reply([raw], close=True))
        conn = Connection("127.0.0.1", port_of(server), None, ())
        conn.connect(2.0)
        response = conn.request("GET", "/x")
        with pytest.raises(ProtocolError, match=error):
            while response.read(1024):
                pass
        conn.close()
    server = serve(scripted)  # answers nothing: closes at once
    conn = Connection("127.0.0.1", port_of(server), None, ())
    conn.connect(2.0)
    with pytest.raises(Disconnected):
        conn.request("GET", "/x")
    conn.close()


def test_slow_server_times_out(scripted: list[Scripted]):
    raw = ok()
    # The rest comes far past the read timeout, however late the client starts waiting.
    server = serve(scripted, Reply([raw[:20], raw[20:]], gap=30.0))
    with pytest.raises(ArchiveUnavailable, match="timed out reading"):
        client(read_timeout=0.3).get(f"{server.url}/x")
