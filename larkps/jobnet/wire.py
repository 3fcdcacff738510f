"""JSON lines over a Unix stream socket: the privileged helper's talk with the builder.

Each message is one JSON object on one line. A :class:`Channel` reads whole lines
within a size limit; the peer's credentials come from the kernel (``SO_PEERCRED``),
never from a message. Loads only os, json and socket: it is on a job's start.
"""

from __future__ import annotations

import json
import socket
import struct
import time

from larkps.errors import LarkpsError


class WireError(LarkpsError):
    """The other end sent something unreadable, too much, too late, or went away."""


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end, as the kernel knows it."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


class Channel:
    """Whole JSON objects, one per line, over a connected stream socket."""

    def __init__(self, sock: socket.socket, limit: int) -> None:
        self.sock = sock
        self.limit = limit
        self._buffer = b""

    def send(self, doc: dict[str, object]) -> None:
        """One message (WireError when the other end is gone)."""
        try:
            self.sock.sendall(json.dumps(doc, separators=(",", ":")).encode() + b"\n")
        except OSError as exc:
            raise WireError(f"the other end went away ({exc.strerror or exc})") from None

    def receive(self, deadline: float | None = None) -> dict[str, object] | None:
        """The next message; None at end of file (the other end closed).

        ``deadline`` (time.monotonic) bounds the wait for the whole message.
        """
        while b"\n" not in self._buffer:
            if len(self._buffer) > self.limit:
                raise WireError(f"a message larger than {self.limit} bytes")
            chunk = self._read(deadline)
            if not chunk:
                if self._buffer:
                    raise WireError("the other end went away in the middle of a message")
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        if len(line) > self.limit:
            raise WireError(f"a message larger than {self.limit} bytes")
        try:
            doc = json.loads(line)
        except ValueError:
            raise WireError("a message that is not JSON") from None
        if not isinstance(doc, dict):
            raise WireError("a message that is not a JSON object")
        return doc

    def _read(self, deadline: float | None) -> bytes:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WireError("no whole message in time")
            self.sock.settimeout(left)
        else:
            self.sock.settimeout(None)
        try:
            return self.sock.recv(65536)
        except TimeoutError:
            raise WireError("no whole message in time") from None
        except OSError as exc:
            raise WireError(f"the other end went away ({exc.strerror or exc})") from None
