"""EmbeddedArchive: an esmond/elmond-compatible HTTP server over a :class:`Mesh`.

A ``ThreadingHTTPServer`` speaking HTTP/1.1 with keep-alive, bound to loopback by
default, serving on a daemon thread; requests are parsed and answered lean
(larkps.embedded.wire).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from larkps.embedded.mesh import Mesh
from larkps.embedded.metadata import ARCHIVE_PATH
from larkps.embedded.routes import ArchiveApp, Request, Response
from larkps.embedded.wire import HeaderError, json_body, read_headers, response_head

log = logging.getLogger(__name__)
_MAX_BODY = 1 << 20
_POLL_SECONDS = 0.05
_PLAIN_VERSIONS = (b"HTTP/1.1", b"HTTP/1.0")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], archive: EmbeddedArchive) -> None:
        self.archive = archive
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.address_family = family
        super().__init__(address, _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that went away mid-answer is routine; log it instead of printing."""
        log.debug("request from %s ended early: %s", client_address, sys.exc_info()[1])


class _Handler(BaseHTTPRequestHandler):
    """http.server's request loop, with a lean parser for plain HTTP/1.x requests.

    ``fields`` holds the request's headers (lower-cased names), whichever parser ran.
    """

    protocol_version = "HTTP/1.1"
    server_version = "larkps-embedded-archive/1"
    timeout = 60
    server: _Server
    raw_requestline: bytes
    fields: dict[str, str]

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.conn_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.conn_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def parse_request(self) -> bool:
        """``METHOD path HTTP/1.x`` in ASCII read here; any other request line by http.server."""
        raw = self.raw_requestline
        words = raw.split()
        if len(words) != 3 or words[2] not in _PLAIN_VERSIONS or not raw.isascii():
            return self._parse_as_stdlib()
        command, path, version = (word.decode("ascii") for word in words)
        self.command, self.request_version = command, version
        self.requestline = raw.decode("ascii").rstrip("\r\n")
        self.path = "/" + path.lstrip("/") if path.startswith("//") else path
        self.close_connection = True
        try:
            self.fields = read_headers(self.rfile)
        except HeaderError as err:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, err.message, err.explain)
            return False
        connection = self.fields.get("connection", "").lower()
        self.close_connection = connection == "close" or (
            version != "HTTP/1.1" and connection != "keep-alive"
        )
        expect = self.fields.get("expect", "").lower()
        if expect == "100-continue" and version == "HTTP/1.1":
            return self.handle_expect_100()
        return True

    def _parse_as_stdlib(self) -> bool:
        ok = super().parse_request()
        if ok:
            self.fields = {}
            for name, value in self.headers.items():
                self.fields.setdefault(name.lower(), value)
        return ok

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def _not_allowed(self) -> None:
        self._drain()
        self._send(Response(405, {"detail": f'Method "{self.command}" not allowed.'}), head=False)

    def _drain(self) -> None:
        """Consume a request body so the next request on this connection parses."""
        try:
            length = int(self.fields.get("content-length") or 0)
        except ValueError:
            length = -1
        if 0 <= length <= _MAX_BODY:
            self.rfile.read(length)
        else:
            self.close_connection = True

    do_POST = do_PUT = do_DELETE = do_PATCH = _not_allowed

    def _serve(self, head: bool) -> None:
        self._drain()
        path, _, query = self.path.partition("?")
        host = self.fields.get("host") or self.server.archive.authority
        request = Request(path=path, query=query, root=f"http://{host}")
        try:
            response = self.server.archive.app.handle(request)
        except Exception:
            log.exception("embedded archive failed on %s", self.path)
            response = Response(500, {"detail": "internal error"})
        self._send(response, head)

    def _send(self, response: Response, head: bool) -> None:
        """Write status line, headers and (unless ``head``) body in one ``sendall``."""
        archive = self.server.archive
        body = json_body(response.body, archive.sort_keys)
        out = b""
        if self.request_version != "HTTP/0.9":
            out = response_head(response.status, self.version_string(), len(body), response.headers)
        if log.isEnabledFor(logging.DEBUG):
            self.log_request(response.status)
        archive.count_request()
        self.wfile.write(out if head else out + body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class EmbeddedArchive:
    """Serve ``mesh`` as a perfSONAR measurement archive on ``host``:``port``.

    ``port=0`` picks a free port. ``clock`` is the archive's notion of now (Unix
    seconds); no point with a later timestamp is ever served.
    """

    def __init__(
        self,
        mesh: Mesh,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.mesh = mesh
        self.host = host
        self.port = port
        self.app = ArchiveApp(mesh, clock)
        self.sort_keys = mesh.config.flavour == "elmond"  # elmond's JSON has sorted keys
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._served = 0
        self._count_lock = threading.Lock()

    def start(self) -> EmbeddedArchive:
        """Bind and serve on a daemon thread; returns self."""
        if self._server is not None:
            return self
        self._server = _Server((self.host, self.port), self)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            args=(_POLL_SECONDS,),
            name=f"embedded-archive-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and the listening socket."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        with server.conn_lock:
            for conn in list(server.connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if thread is not None:
            thread.join()
        self._server = self._thread = None

    def __enter__(self) -> EmbeddedArchive:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def authority(self) -> str:
        """host:port as it appears in URLs."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:40123``."""
        return f"http://{self.authority}"

    @property
    def archive_url(self) -> str:
        """The archive root: ``url + "/esmond/perfsonar/archive/"``."""
        return f"{self.url}{ARCHIVE_PATH}/"

    @property
    def requests_served(self) -> int:
        """Number of responses sent so far."""
        with self._count_lock:
            return self._served

    def count_request(self) -> None:
        """Record one served response (called by the handler)."""
        with self._count_lock:
            self._served += 1
