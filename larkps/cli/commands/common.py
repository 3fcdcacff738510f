"""Helpers shared by the command modules."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeAlias

from larkps.apply.dagfile import check_category
from larkps.config.settings import NAME_PATTERN
from larkps.daemon.logs import LOG_FORMATS
from larkps.errors import FieldError
from larkps.units import parse_duration, parse_rate, parse_size

if TYPE_CHECKING:
    from larkps.model import RunReport

Handler = Callable[[argparse.Namespace], int]
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def duration_arg(text: str) -> int:
    """argparse type for durations such as 90s, 5m, 1h or 7d: the unit is required
    (is ``--window 24`` a day or 24 seconds?)."""
    if text.strip().replace(".", "", 1).isdigit():
        raise argparse.ArgumentTypeError(
            f"{text!r} has no unit: write it as {text.strip()}s, {text.strip()}m, "
            f"{text.strip()}h or {text.strip()}d"
        )
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def rate_arg(text: str) -> float:
    """argparse type for rates such as 100Mbit, 1.5Gbps or 12.5MB/s (bits/s)."""
    try:
        return parse_rate(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def size_arg(text: str) -> int:
    """argparse type for positive sizes such as 2GB or 500MiB (bytes)."""
    try:
        size = parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if size <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive size, got {text!r}")
    return size


def add_global_options(parser: argparse.ArgumentParser, after_command: bool = False) -> None:
    """-v/--verbose and --log-format, before the subcommand or (``after_command``) after it.

    After a subcommand they go to their own names with no default, so that an
    option given only before the subcommand is not reset; :func:`merge_global_options`
    folds them in.
    """
    prefix, unset = ("late_", argparse.SUPPRESS) if after_command else ("", None)
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        dest=f"{prefix}verbose",
        default=unset if after_command else 0,
        help="more logging (-vv: debug)",
    )
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        dest=f"{prefix}log_format",
        default=unset if after_command else "text",
        help="log lines as text or JSON",
    )


def merge_global_options(args: argparse.Namespace) -> argparse.Namespace:
    """Global options given after the subcommand: -v adds up, --log-format wins."""
    args.verbose += vars(args).pop("late_verbose", 0)
    args.log_format = vars(args).pop("late_log_format", args.log_format)
    return args


def add_command(
    commands: Subparsers, name: str, handler: Handler, summary: str, example: str
) -> argparse.ArgumentParser:
    """A subcommand with a one-line summary and an example in its help."""
    sub: argparse.ArgumentParser = commands.add_parser(
        name, help=summary, description=summary, epilog=f"example: {example}"
    )
    add_global_options(sub, after_command=True)
    sub.set_defaults(handler=handler)
    return sub


def add_window(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--window", type=duration_arg, help="statistics window, e.g. 1h, 24h, 7d")


def add_archive(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--archive", required=True, help="archive host or full /esmond/perfsonar/archive/ URL"
    )
    sub.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    sub.add_argument("--ca-bundle", help="CA bundle to verify the archive's certificate")
    add_window(sub)


def warn_problems(report: RunReport) -> None:
    """A cycle's problems on stderr, each once, for commands whose stdout is data."""
    from larkps.daemon.logs import problem_lines

    for line in problem_lines(report.problems + report.publish_problems):
        prefix = "" if line.startswith("partial: ") else "warning: "
        print(f"larkps: {prefix}{line}", file=sys.stderr)


@contextmanager
def flag_errors(flags: Mapping[str, str]) -> Iterator[None]:
    """Re-raise a stage's :class:`FieldError` naming the flag its field came from
    (``flags``: field -> flag); an error about any other field passes unchanged."""
    try:
        yield
    except FieldError as exc:
        if exc.field not in flags:
            raise
        raise exc.for_flag(flags[exc.field]) from None


def field_arg(check: Callable[[str, str], str], field: str) -> Callable[[str], str]:
    """argparse type from a stage's name check: a bad value fails before anything runs,
    reported by argparse under the flag."""

    def parse(text: str) -> str:
        try:
            return check(text, field)
        except FieldError as exc:
            raise argparse.ArgumentTypeError(exc.problem) from None

    return parse


def category_arg(text: str) -> str:
    try:
        return check_category(text)
    except FieldError as exc:
        raise argparse.ArgumentTypeError(exc.problem) from None


def site_arg(text: str) -> str:
    if not NAME_PATTERN.match(text):
        raise argparse.ArgumentTypeError(
            f"expected a site name of letters, digits, '.', '_' or '-', got {text!r}"
        )
    return text


def count_arg(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)
