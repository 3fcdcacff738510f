"""A small esmond-shaped archive on 127.0.0.1 whose data routes can misbehave on purpose.

Metadata comes from fixture objects; each series' points are plain lists. A test
installs a behaviour for one metadata key to make that series' data requests fail in
one particular way while every other series is served normally.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qsl, urlsplit

ARCHIVE_PATH = "/esmond/perfsonar/archive/"
Behaviour = Callable[["Handler", dict[str, str]], None]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        archive = self.server.archive
        parts = urlsplit(self.path)
        params = dict(parse_qsl(parts.query))
        archive.enter(parts.path)
        try:
            if parts.path == ARCHIVE_PATH:
                self.send_json(archive.metadata_page(params))
                return
            key = parts.path[len(ARCHIVE_PATH) :].split("/")[0]
            behaviour = archive.behaviours.get(key)
            if behaviour is not None:
                behaviour(self, params)
            elif parts.path in archive.points:
                self.send_json(archive.data_page(parts.path, params))
            else:
                self.send_json({"detail": "not found"}, 404)
        finally:
            archive.leave()

    def send_json(self, body: object, status: int = 200) -> None:
        self.send_raw(json.dumps(body).encode(), status)

    def send_raw(
        self, data: bytes, status: int = 200, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    archive: FakeArchive

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients that give up mid-answer (timeouts, size caps) are what the tests do."""


class FakeArchive:
    """Serve ``metadata`` and ``points`` ({data path: [{"ts", "val"}]}) on 127.0.0.1."""

    def __init__(
        self,
        metadata: list[dict[str, object]],
        points: dict[str, list[dict[str, object]]],
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.metadata = metadata
        self.points = points
        self.behaviours: dict[str, Behaviour] = {}
        self.hits: Counter[str] = Counter()
        self.active = 0
        self.max_active = 0
        self.sleeping = 0
        self.max_sleeping = 0
        self.lock = threading.Lock()
        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.archive = self
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> FakeArchive:
        self.thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server.server_address[1]}"

    def enter(self, path: str) -> None:
        with self.lock:
            self.hits[path] += 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)

    def leave(self) -> None:
        with self.lock:
            self.active -= 1

    def data_hits(self) -> int:
        return sum(n for path, n in self.hits.items() if path != ARCHIVE_PATH)

    def metadata_page(self, params: dict[str, str]) -> list[dict[str, object]]:
        wanted = params.get("event-type")
        matching = [
            o
            for o in self.metadata
            if wanted is None or any(e["event-type"] == wanted for e in o["event-types"])  # type: ignore[attr-defined]
        ]
        offset, limit = int(params.get("offset", 0)), int(params.get("limit", 1000))
        return matching[offset : offset + limit]

    def data_page(self, path: str, params: dict[str, str]) -> list[dict[str, object]]:
        start = int(params.get("time-start", 0))
        end = int(params.get("time-end", 2**62))
        limit = int(params.get("limit", 1000))
        rows = [p for p in self.points[path] if start <= int(p["ts"]) <= end]  # type: ignore[call-overload]
        return rows[:limit]


def path_name(key: str, event_type: str = "throughput") -> str:
    """How larkps names the series of :func:`throughput_metadata` in its problems."""
    return f"ps-bw.{key[:4]}.example.org -> ps-bw.far.example.org {event_type}"


def throughput_metadata(key: str, source: str, destination: str) -> dict[str, object]:
    """One esmond throughput metadata object (values as real esmond gives them)."""
    uri = f"{ARCHIVE_PATH}{key}/"
    return {
        "metadata-key": key,
        "subject-type": "point-to-point",
        "source": source,
        "destination": destination,
        "measurement-agent": source,
        "input-source": f"ps-bw.{key[:4]}.example.org",
        "input-destination": "ps-bw.far.example.org",
        "tool-name": "pscheduler/iperf3",
        "time-duration": "30",
        "uri": uri,
        "event-types": [
            {
                "event-type": "throughput",
                "base-uri": f"{uri}throughput/base",
                "time-updated": "1700000000",
                "summaries": [],
            },
            {
                "event-type": "failures",
                "base-uri": f"{uri}failures/base",
                "time-updated": None,
                "summaries": [],
            },
        ],
    }


def sleeper(seconds: float) -> Behaviour:
    """Answer [] after a pause; the pauses that overlap are counted in ``max_sleeping``.

    The count drops before the answer is sent, so a client that waits for an answer
    before its next request can never be seen over its limit (``max_active`` can: a
    handler leaves only after its answer is out).
    """

    def behaviour(handler: Handler, params: dict[str, str]) -> None:
        archive = handler.server.archive
        with archive.lock:
            archive.sleeping += 1
            archive.max_sleeping = max(archive.max_sleeping, archive.sleeping)
        time.sleep(seconds)
        with archive.lock:
            archive.sleeping -= 1
        handler.send_json([])

    return behaviour
