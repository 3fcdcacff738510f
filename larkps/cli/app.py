"""The ``larkps`` command: thin argument parsing around the pipeline.

Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error, 141 when
the reader of stdout went away (``larkps ... | head``: quiet, as for SIGPIPE). Errors
are one line on stderr, control characters escaped; ``-v`` adds the traceback. Each
group of subcommands lives in a module of :mod:`larkps.cli.commands` with a
``register(subparsers)`` function.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from larkps import __version__
from larkps.cli.commands import COMMAND_MODULES, Handler
from larkps.cli.commands.common import add_global_options, merge_global_options
from larkps.daemon.logs import configure as configure_logging
from larkps.daemon.logs import one_line
from larkps.errors import LarkpsError

log = logging.getLogger("larkps")
BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a reader that went away


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and of ``python -m larkps``."""
    parser = build_parser()
    try:
        args = merge_global_options(parser.parse_args(argv))
    except SystemExit:  # --help, --version, a usage error: printed already
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            return _stdout_gone()
        raise
    configure_logging(
        args.verbose, args.log_format, getattr(args, "default_log_level", logging.WARNING)
    )
    handler: Handler = args.handler
    try:
        code = handler(args)
        sys.stdout.flush()  # a reader gone away shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        return _stdout_gone()
    except LarkpsError as exc:
        return _fail(args, exc, exc.exit_code)
    except KeyboardInterrupt:
        return _fail(args, LarkpsError("interrupted"), 130)


def _fail(args: argparse.Namespace, exc: BaseException, code: int) -> int:
    if args.verbose:
        log.error("larkps failed", exc_info=exc)
    print(f"larkps: error: {one_line(str(exc))}", file=sys.stderr)
    return code


def _stdout_gone() -> int:
    """Quiet exit once stdout's reader closed the pipe: what is still buffered goes
    nowhere (else Python reports the same BrokenPipeError again at exit)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return BROKEN_PIPE


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
