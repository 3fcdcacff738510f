"""The embedded archive's lean HTTP layer: raw bytes on 127.0.0.1, and its fast paths
checked against the slow code they replace (json.dumps, parse_qsl, Hist.take)."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Iterator
from urllib.parse import parse_qsl

import numpy as np
import pytest

from larkps.embedded import EmbeddedArchive, Mesh, MeshConfig
from larkps.embedded.histo import Hist
from larkps.embedded.render import histogram_dicts, labels_for
from larkps.embedded.routes import Request
from larkps.embedded.wire import HeaderError, json_body, read_headers

NOW = 1_700_000_000
SITES = b"/larkps/sites"


@pytest.fixture(scope="module")
def archive() -> Iterator[EmbeddedArchive]:
    mesh = Mesh(MeshConfig(sites=3, seed=5))
    with EmbeddedArchive(mesh, clock=lambda: NOW) as served:
        yield served


def exchange(archive: EmbeddedArchive, data: bytes, wait_close: bool = True) -> bytes:
    """Send ``data`` on one connection; everything received until the server closes
    (or, without ``wait_close``, until one whole response has arrived)."""
    with socket.create_connection(("127.0.0.1", archive.port), timeout=30) as sock:
        sock.sendall(data)
        raw = b""
        try:
            while chunk := sock.recv(65536):
                raw += chunk
                if not wait_close and _one_response(raw):
                    break
        except TimeoutError:
            pytest.fail("the server kept the connection open" if wait_close else "no answer")
    return raw


def _one_response(raw: bytes) -> bool:
    head, blank, rest = raw.partition(b"\r\n\r\n")
    if not blank:
        return False
    lines = head.decode("latin-1").split("\r\n")[1:]
    length = dict(line.split(": ", 1) for line in lines).get("Content-Length", "0")
    return len(rest) >= int(length)


def responses(raw: bytes, heads: tuple[int, ...] = ()) -> list[tuple[str, dict[str, str], bytes]]:
    """Split concatenated HTTP responses into parts; those numbered in ``heads`` are
    answers to HEAD (no body whatever their Content-Length)."""
    out: list[tuple[str, dict[str, str], bytes]] = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        status, *lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines)
        length = 0 if len(out) in heads else int(headers.get("Content-Length", len(rest)))
        out.append((status, headers, rest[:length]))
        raw = rest[length:]
    return out


def sites_body(archive: EmbeddedArchive) -> bytes:
    return json.dumps(archive.mesh.site_map(), separators=(",", ":")).encode()


def test_keep_alive_pipelined_requests_then_close(archive: EmbeddedArchive) -> None:
    raw = exchange(
        archive,
        b"GET /larkps/sites HTTP/1.1\r\nHost: a\r\n\r\n"
        b"HEAD /larkps/sites HTTP/1.1\r\nHost: a\r\n\r\n"
        b"GET /nothing HTTP/1.1\r\nhost: a\r\nCONNECTION: close\r\n\r\n",
    )
    (status, headers, body), head, (status3, headers3, body3) = responses(raw, heads=(1,))
    assert status == "HTTP/1.1 200 OK" and body == sites_body(archive)
    assert headers["Content-Type"] == "application/json"
    assert head[0] == status and head[2] == b""
    assert head[1]["Content-Length"] == headers["Content-Length"] == str(len(body))
    assert status3 == "HTTP/1.1 404 Not Found" and headers3["Content-Type"] == "application/json"
    assert json.loads(body3) == {"detail": "Not found."}


def test_http_1_0_closes_unless_keep_alive(archive: EmbeddedArchive) -> None:
    (one,) = responses(exchange(archive, b"GET /larkps/sites HTTP/1.0\r\n\r\n"))
    assert one[0] == "HTTP/1.1 200 OK" and one[2] == sites_body(archive)
    kept = exchange(
        archive, b"GET /larkps/sites HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", wait_close=False
    )
    assert responses(kept)[0][2] == sites_body(archive)


def test_post_body_is_drained_and_answered_405(archive: EmbeddedArchive) -> None:
    raw = exchange(
        archive,
        b'POST /larkps/sites HTTP/1.1\r\nContent-Length: 7\r\n\r\n{"a":1}'
        b"GET /larkps/sites HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    (status, _, body), (status2, _, body2) = responses(raw)
    assert status == "HTTP/1.1 405 Method Not Allowed"
    assert json.loads(body) == {"detail": 'Method "POST" not allowed.'}
    assert status2 == "HTTP/1.1 200 OK" and body2 == sites_body(archive)


def test_host_header_any_case_and_bare_lf_lines(archive: EmbeddedArchive) -> None:
    raw = exchange(
        archive,
        b"GET /esmond/perfsonar/archive/?limit=1 HTTP/1.1\nhOsT: mirror.test:81\n"
        b"Connection: close\n\n",
    )
    ((status, _, body),) = responses(raw)
    assert status == "HTTP/1.1 200 OK"
    assert json.loads(body)[0]["url"].startswith("http://mirror.test:81/esmond/")


def test_too_many_headers_is_431_and_closes(archive: EmbeddedArchive) -> None:
    raw = exchange(archive, b"GET /larkps/sites HTTP/1.1\r\n" + b"X-A: b\r\n" * 100 + b"\r\n")
    assert raw.startswith(b"HTTP/1.1 431 Too many headers\r\n")  # as http.server words it
    ok = exchange(
        archive,
        b"GET /larkps/sites HTTP/1.1\r\n" + b"X-A: b\r\n" * 98 + b"Connection: close\r\n\r\n",
    )
    assert responses(ok)[0][2] == sites_body(archive)


def test_read_headers_line_by_line_and_buffered_agree() -> None:
    block = b"Host: a\r\nX-Fold: one\r\n  two\r\nno colon\r\nhost: second\r\nE: \r\n\r\nrest"
    buffered = io.BufferedReader(io.BytesIO(block))  # peek sees the whole block
    plain = io.BytesIO(block)  # no peek: line by line
    want = {"host": "a", "x-fold": "one two", "e": ""}
    assert read_headers(buffered) == want and buffered.read() == b"rest"
    assert read_headers(plain) == want and plain.read() == b"rest"
    with pytest.raises(HeaderError, match="100 headers"):
        read_headers(io.BufferedReader(io.BytesIO(b"A: b\r\n" * 100 + b"\r\n")))


@pytest.mark.parametrize(
    "value",
    [
        [{"ts": NOW, "val": {"12.50": 3, "0.01": 597}}],
        [{"ts": NOW, "val": 1e-05}, {"ts": NOW, "val": 2.5e-07}, {"ts": 1, "val": 0.00012}],
        {"b": [1e16, 9.4e9, -0.0, True, None], "a": "é ü", "c": {"z": 1, "y": 2}},
        {1: "int key"},
        [2**70],
    ],
)
def test_json_body_is_json_dumps_bytes(value: object) -> None:
    for sort in (False, True):
        want = json.dumps(value, separators=(",", ":"), sort_keys=sort, allow_nan=False)
        assert json_body(value, sort) == want.encode()


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_json_body_refuses_nan_as_json_dumps_does(bad: float) -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        json_body([{"ts": NOW, "val": bad}], False)


@pytest.mark.parametrize(
    "query",
    ["", "a=1&b=2&a=3", "&&x&y=&=z&limit=10", "time-start=1&time-end=2", "q=a%20b+c&d=%2B"],
)
def test_request_params_as_parse_qsl(query: str) -> None:
    want = dict(parse_qsl(query, keep_blank_values=True))
    assert Request(path="/", query=query, root="http://h").params == want


def test_histogram_runs_render_as_taken_rows() -> None:
    rng = np.random.default_rng(3)
    lengths = rng.integers(0, 6, 12)
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    size = int(offsets[-1])
    hist = Hist(rng.integers(1, 5000, size).astype(np.int32), rng.integers(1, 9, size), offsets)
    labels = labels_for("esmond", "histogram-owdelay", 1)
    for first in range(12):
        for stop in range(first, 13):
            rows = np.arange(first, stop, dtype=np.int64)
            taken = hist.take(rows)
            want = [
                {
                    f"{v / 100:.2f}": int(c)
                    for v, c in zip(taken.values[a:b], taken.counts[a:b], strict=True)
                }
                for a, b in zip(taken.offsets[:-1], taken.offsets[1:], strict=True)
            ]
            assert histogram_dicts(hist, labels, first, stop) == want
            assert histogram_dicts(taken, labels) == want
            every = [
                {
                    f"{v / 100:.2f}": int(c)
                    for v, c in zip(hist.values[a:b], hist.counts[a:b], strict=True)
                }
                for a, b in zip(offsets[first:stop], offsets[first + 1 : stop + 1], strict=True)
            ]
            assert want == every
