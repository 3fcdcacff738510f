"""The core commands: demo, once, stats, ads, check-config."""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from larkps.commands.common import Subparsers, add_archive, add_command, add_window
from larkps.config import FileTarget, Settings, adhoc_settings, load_settings
from larkps.errors import UsageError
from larkps.fetch.options import archive_url
from larkps.publish import AD_FORMATS, render
from larkps.report import STATS_FORMATS, describe_settings, render_stats, summary_lines

if TYPE_CHECKING:
    from larkps.pipeline import CycleResult


def register(commands: Subparsers) -> None:
    _add_demo(commands)
    _add_once(commands)
    _add_stats(commands)
    _add_ads(commands)
    _add_check_config(commands)


def _add_demo(commands: Subparsers) -> None:
    sub = add_command(
        commands,
        "demo",
        cmd_demo,
        "run one cycle on the embedded archive and show what it found",
        "larkps demo --out ./larkps-demo",
    )
    sub.add_argument("--out", type=Path, default=Path("larkps-demo"), help="output directory")
    add_window(sub)


def _add_once(commands: Subparsers) -> None:
    sub = add_command(
        commands,
        "once",
        cmd_once,
        "run one cycle: fetch, aggregate, publish",
        "larkps once --config /etc/larkps/larkps.toml",
    )
    sub.add_argument("--config", required=True, type=Path, help="TOML configuration file")
    add_window(sub)


def _add_stats(commands: Subparsers) -> None:
    sub = add_command(
        commands,
        "stats",
        cmd_stats,
        "print per-path statistics of one archive",
        "larkps stats --archive ps.example.org --window 24h --format table",
    )
    add_archive(sub)
    sub.add_argument("--format", choices=STATS_FORMATS, default="table")


def _add_ads(commands: Subparsers) -> None:
    sub = add_command(
        commands,
        "ads",
        cmd_ads,
        "print the ClassAds larkps would publish for one archive",
        "larkps ads --archive https://ps.example.org --format old",
    )
    add_archive(sub)
    sub.add_argument("--format", choices=AD_FORMATS, default="old")


def _add_check_config(commands: Subparsers) -> None:
    sub = add_command(
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
    from larkps.pipeline import run_cycle

    result = run_cycle(demo_settings(args.out), _now(), args.window)
    print(render_stats(result.stats, "table"), end="")
    _print_summary(result)
    return 0


def cmd_once(args: argparse.Namespace) -> int:
    from larkps.pipeline import run_cycle

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
    from larkps.pipeline import run_cycle

    result = run_cycle(_adhoc(args), _now(), publish=False)
    print(render_stats(result.stats, args.format), end="")
    return 0


def cmd_ads(args: argparse.Namespace) -> int:
    from larkps.pipeline import run_cycle

    result = run_cycle(_adhoc(args), _now(), publish=False)
    print(render(list(result.ads), args.format, result.report.started), end="")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = load_settings(args.file)
    print(describe_settings(settings), end="")
    return 0
