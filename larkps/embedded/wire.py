"""The embedded archive's HTTP/1.1 wire format, kept lean (benches send it ~20,000 small GETs).

``http.server`` parses every request's headers with the email package and writes a
response in two ``sendall`` calls; these helpers read the header block by hand and
build a whole response (head and body) as one ``bytes``.
"""

from __future__ import annotations

import io
import json
import time
from email.utils import formatdate
from http import HTTPStatus

import orjson

MAX_LINE = 65536  # as http.client
MAX_HEADERS = 100
_REASONS = {s.value: s.phrase for s in HTTPStatus}
_date: tuple[int, str] = (0, "")


class HeaderError(Exception):
    """A header block too long; answered with HTTP 431 ``message`` (``explain`` below)."""

    def __init__(self, message: str, explain: str) -> None:
        super().__init__(explain)
        self.message = message
        self.explain = explain


def read_headers(rfile: io.BufferedIOBase) -> dict[str, str]:
    """Header fields up to the blank line, names lower-cased (the first of repeats wins).

    Values keep trailing blanks, as the email parser's do; obsolete line folding
    continues the previous field and a line without a colon is skipped.
    """
    lines = _buffered_lines(rfile) if isinstance(rfile, io.BufferedReader) else None
    return _fields(_read_lines(rfile) if lines is None else lines)


def _buffered_lines(rfile: io.BufferedReader) -> list[str] | None:
    """The header lines in one read when the whole block has arrived, all ending in CRLF.

    None (nothing consumed) for anything else: :func:`_read_lines` takes it line by line.
    """
    buffered = rfile.peek(MAX_LINE)
    end = buffered.find(b"\r\n\r\n")
    if end <= 0:
        return None
    head = buffered[:end]
    if head.startswith(b"\r\n") or head.count(b"\n") != head.count(b"\r\n"):
        return None  # a blank line first, or bare LF line ends
    lines = head.decode("iso-8859-1").split("\r\n")
    if len(lines) >= MAX_HEADERS or max(map(len, lines)) > MAX_LINE - 2:
        return None
    rfile.read(end + 4)
    return lines


def _read_lines(rfile: io.BufferedIOBase) -> list[str]:
    """The header lines, read one by one, with http.client's limits."""
    lines: list[str] = []
    for count in range(MAX_HEADERS + 1):
        line = rfile.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise HeaderError(
                "Line too long", f"got more than {MAX_LINE} bytes when reading header line"
            )
        if count == MAX_HEADERS:  # http.client counts the blank line too
            break
        if line in (b"\r\n", b"\n", b""):
            return lines
        lines.append(line.decode("iso-8859-1"))
    raise HeaderError("Too many headers", f"got more than {MAX_HEADERS} headers")


def _fields(lines: list[str]) -> dict[str, str]:
    fields: dict[str, str] = {}
    last = ""
    for line in lines:
        text = line.rstrip("\r\n")
        if text[:1] in (" ", "\t"):
            if last:
                fields[last] += " " + text.strip()
            continue
        name, colon, value = text.partition(":")
        if not colon:
            continue
        key = name.lower()
        last = key if key not in fields else ""
        fields.setdefault(key, value.lstrip(" \t"))
    return fields


def http_date(now: float | None = None) -> str:
    """RFC 7231 date of ``now`` (the current time by default), cached per second."""
    global _date
    second = int(time.time() if now is None else now)
    cached = _date
    if cached[0] != second:
        cached = _date = (second, formatdate(second, usegmt=True))
    return cached[1]


def response_head(status: int, server: str, length: int, extra: dict[str, str]) -> bytes:
    """Status line and headers of a JSON response, up to and including the blank line."""
    lines = [
        f"HTTP/1.1 {status} {_REASONS.get(status, '')}",
        f"Server: {server}",
        f"Date: {http_date()}",
        "Content-Type: application/json",
        f"Content-Length: {length}",
        *(f"{name}: {value}" for name, value in extra.items()),
        "\r\n",
    ]
    return "\r\n".join(lines).encode("latin-1")


def json_body(value: object, sort_keys: bool) -> bytes:
    """``json.dumps(value, separators=(",", ":"), sort_keys=..., allow_nan=False)`` bytes.

    orjson writes the same bytes for what the archive serves, faster; a body
    where the two could differ (see :func:`_same_as_json`) or that orjson refuses goes
    through json.dumps.
    """
    try:
        body = orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else 0)
        if _same_as_json(body):
            return body
    except TypeError:  # orjson.JSONEncodeError included
        pass
    text = json.dumps(value, separators=(",", ":"), sort_keys=sort_keys, allow_nan=False)
    return text.encode()


def _same_as_json(body: bytes) -> bool:
    """False when orjson's ``body`` might differ from json.dumps's (conservatively).

    They differ on floats below 1e-4 (``1e-05`` vs ``0.00001``, ``2.5e-07`` vs
    ``2.5e-7``), on non-ASCII text (json.dumps escapes it) and on NaN and infinities
    (orjson writes ``null``, json.dumps refuses them: the request fails as before).
    """
    return body.isascii() and all(s not in body for s in (b"e-", b"0.0000", b"null"))
