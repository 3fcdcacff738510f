"""The ``larkps`` command: thin argument parsing around the pipeline.

Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error. Errors
are one line on stderr; ``-v`` adds the traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from importlib import resources
from pathlib import Path

from larkps import __version__
from larkps.config import FileTarget, Settings, adhoc_settings, load_settings
from larkps.errors import LarkpsError, UsageError
from larkps.fetch import archive_url
from larkps.pipeline import CycleResult, run_cycle
from larkps.publish import AD_FORMATS, render
from larkps.report import STATS_FORMATS, describe_settings, render_stats, summary_lines
from larkps.units import parse_duration

log = logging.getLogger("larkps")
Handler = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and of ``python -m larkps``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
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


def _setup_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def _duration_arg(text: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="larkps",
        description="perfSONAR measurements as HTCondor ClassAds and throttles.",
    )
    parser.add_argument("--version", action="version", version=f"larkps {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_demo(commands)
    _add_once(commands)
    _add_stats(commands)
    _add_ads(commands)
    _add_check_config(commands)
    return parser


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    handler: Handler,
    summary: str,
    example: str,
) -> argparse.ArgumentParser:
    sub = commands.add_parser(name, help=summary, description=summary, epilog=f"example: {example}")
    sub.set_defaults(handler=handler)
    return sub


def _add_window(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--window", type=_duration_arg, help="statistics window, e.g. 1h, 24h, 7d")


def _add_archive(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--archive", required=True, help="archive host or full /esmond/perfsonar/archive/ URL"
    )
    sub.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    sub.add_argument("--ca-bundle", help="CA bundle to verify the archive's certificate")
    _add_window(sub)


def _add_demo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub = _command(
        commands,
        "demo",
        cmd_demo,
        "run one cycle on the embedded archive and show what it found",
        "larkps demo --out ./larkps-demo",
    )
    sub.add_argument("--out", type=Path, default=Path("larkps-demo"), help="output directory")
    _add_window(sub)


def _add_once(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub = _command(
        commands,
        "once",
        cmd_once,
        "run one cycle: fetch, aggregate, publish",
        "larkps once --config /etc/larkps/larkps.toml",
    )
    sub.add_argument("--config", required=True, type=Path, help="TOML configuration file")
    _add_window(sub)


def _add_stats(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub = _command(
        commands,
        "stats",
        cmd_stats,
        "print per-path statistics of one archive",
        "larkps stats --archive ps.example.org --window 24h --format table",
    )
    _add_archive(sub)
    sub.add_argument("--format", choices=STATS_FORMATS, default="table")


def _add_ads(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub = _command(
        commands,
        "ads",
        cmd_ads,
        "print the ClassAds larkps would publish for one archive",
        "larkps ads --archive https://ps.example.org --format old",
    )
    _add_archive(sub)
    sub.add_argument("--format", choices=AD_FORMATS, default="old")


def _add_check_config(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub = _command(
        commands,
        "check-config",
        cmd_check_config,
        "validate a configuration file and print the resolved settings",
        "larkps check-config /etc/larkps/larkps.toml",
    )
    sub.add_argument("file", type=Path)


def _now() -> int:
    return int(time.time())


def demo_settings(out: Path) -> Settings:
    """The packaged demo configuration, writing under `out`."""
    demo = resources.files("larkps").joinpath("data/demo.toml")
    with resources.as_file(demo) as path:
        settings = load_settings(path)
    publish = replace(settings.publish, file=FileTarget(out / "larkps.ads"))
    return replace(settings, state_dir=out, publish=publish)


def cmd_demo(args: argparse.Namespace) -> int:
    result = run_cycle(demo_settings(args.out), _now(), args.window)
    print(render_stats(result.stats, "table"), end="")
    _print_summary(result)
    return 0


def cmd_once(args: argparse.Namespace) -> int:
    result = run_cycle(load_settings(args.config), _now(), args.window)
    _print_summary(result)
    return 1 if result.report.problems and not result.stats else 0


def _print_summary(result: CycleResult) -> None:
    for line in summary_lines(result.report):
        print(line)


def _adhoc(args: argparse.Namespace) -> Settings:
    try:
        url = archive_url(args.archive)
    except ValueError as exc:
        raise UsageError(f"--archive: {exc}") from None
    return adhoc_settings(url, args.window or 86400, not args.insecure, args.ca_bundle)


def cmd_stats(args: argparse.Namespace) -> int:
    result = run_cycle(_adhoc(args), _now(), publish=False)
    print(render_stats(result.stats, args.format), end="")
    return 0


def cmd_ads(args: argparse.Namespace) -> int:
    result = run_cycle(_adhoc(args), _now(), publish=False)
    print(render(list(result.ads), args.format, result.report.started), end="")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = load_settings(args.file)
    print(describe_settings(settings), end="")
    return 0
