"""``python -m larkps.embedded``: run the embedded archive in the foreground."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from larkps.embedded.config import MeshConfig
from larkps.embedded.mesh import Mesh
from larkps.embedded.server import EmbeddedArchive


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m larkps.embedded",
        description="Serve a synthetic perfSONAR mesh as an esmond/elmond archive.",
    )
    parser.add_argument("--sites", type=int, default=4, help="number of sites (3..512)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the mesh")
    parser.add_argument("--flavour", choices=("esmond", "elmond"), default="esmond")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=0, help="port (0 = any free port)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start the server, print its URL, and stop on SIGINT/SIGTERM."""
    args = _parse(argv)
    try:
        config = MeshConfig(sites=args.sites, seed=args.seed, flavour=args.flavour)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    with EmbeddedArchive(Mesh(config), host=args.host, port=args.port) as archive:
        print(archive.url, flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
