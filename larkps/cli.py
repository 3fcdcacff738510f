"""The ``larkps`` command: thin argument parsing around the pipeline.

Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error. Errors
are one line on stderr; ``-v`` adds the traceback. Each group of subcommands lives
in a module of :mod:`larkps.commands` with a ``register(subparsers)`` function.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from larkps import __version__
from larkps.commands import COMMAND_MODULES, Handler
from larkps.commands.common import add_global_options, merge_global_options
from larkps.errors import LarkpsError
from larkps.logs import configure as configure_logging

log = logging.getLogger("larkps")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and of ``python -m larkps``."""
    parser = build_parser()
    args = merge_global_options(parser.parse_args(argv))
    configure_logging(args.verbose, args.log_format)
    handler: Handler = args.handler
    try:
        return handler(args)
    except LarkpsError as exc:
        return _fail(args, exc, exc.exit_code)
    except KeyboardInterrupt:
        return _fail(args, LarkpsError("interrupted"), 130)


def _fail(args: argparse.Namespace, exc: BaseException, code: int) -> int:
    if args.verbose:
        log.error("larkps failed", exc_info=exc)
    print(f"larkps: error: {exc}", file=sys.stderr)
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="larkps",
        description="perfSONAR measurements as HTCondor ClassAds and throttles.",
    )
    parser.add_argument("--version", action="version", version=f"larkps {__version__}")
    add_global_options(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(commands)
    return parser
