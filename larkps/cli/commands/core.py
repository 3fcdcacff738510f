"""The core commands: demo, once, stats, ads, check-config."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from larkps.cli.commands.common import (
    Subparsers,
    add_archive,
    add_command,
    add_window,
    warn_problems,
)
from larkps.cli.render import STATS_FORMATS, render_stats, summary_lines
from larkps.config.queries import archive_url
from larkps.config.settings import (
    FileTarget,
    Settings,
    adhoc_settings,
    load_settings,
    resolved_config,
)
from larkps.errors import LarkpsError, UsageError
from larkps.model import PathStats
from larkps.publish.ads import AD_FORMATS, render
from larkps.report.document import PathSelector, parse_path, render_document, stats_document

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
        "print per-path statistics of one archive, or of a configuration's archives",
        "larkps stats --config /etc/larkps/larkps.toml --path 'UNL->WISC' --format json",
    )
    source = sub.add_mutually_exclusive_group(required=True)
    source.add_argument("--archive", help="archive host or full /esmond/perfsonar/archive/ URL")
    source.add_argument(
        "--config", type=Path, help="use this configuration's archives, site map and windows"
    )
    sub.add_argument("--insecure", action="store_true", help="(--archive) do not verify TLS")
    sub.add_argument("--ca-bundle", help="(--archive) CA bundle to verify the archive with")
    add_window(sub)
    sub.add_argument(
        "--path", type=path_arg, help="only this path: 'SOURCE->DEST[/ipv4|/ipv6]' (quoted)"
    )
    sub.add_argument(
        "--format",
        choices=STATS_FORMATS,
        default="table",
        help="table: the window's figures; json, csv: every window and every figure of the ads",
    )


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
        "validate a configuration file and print every section and key as read",
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
    print(render_stats(result.stats), end="")
    _print_summary(result)
    return 0


def cmd_once(args: argparse.Namespace) -> int:
    from larkps.pipeline import run_cycle
    from larkps.store import runs as runlog

    settings, now = load_settings(args.config), _now()
    try:
        result = run_cycle(settings, now, args.window)
    except LarkpsError as exc:
        runlog.save_once(settings, None, now, exc)
        raise
    runlog.save_once(settings, result.report, now, None)
    _print_summary(result)
    if result.report.cut_by_deadline or result.report.ads_spooled:  # said by the summary
        return 1
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

    if args.config is not None and (args.insecure or args.ca_bundle):
        raise UsageError("--insecure/--ca-bundle: only with --archive (--config has its own)")
    settings = load_settings(args.config) if args.config else _adhoc(args)
    result = run_cycle(settings, _now(), args.window, publish=False)
    warn_problems(result.report)
    if args.path is not None:
        check_path(args.path, result.stats)
    if args.format == "table":
        print(render_stats(_table_rows(result, args.path)), end="")
        return 0
    ads = [dict(ad) for ad in result.ads]
    print(render_document(stats_document(ads, result.forecasts, args.path), args.format), end="")
    return 0


def _table_rows(result: CycleResult, selector: PathSelector | None) -> list[PathStats]:
    """The cycle's window; with a path, that path over every window."""
    if selector is None:
        return list(result.stats)
    picked = [s for s in result.windows if _is(selector, s)] or [
        s for s in result.stats if _is(selector, s)
    ]
    return sorted(picked, key=lambda s: (s.path.family.value, s.window))


def _is(selector: PathSelector, stats: PathStats) -> bool:
    p = stats.path
    return selector.matches(p.source_site, p.destination_site, p.family.value)


def path_arg(text: str) -> PathSelector:
    """argparse type for SOURCE->DEST[/family]."""
    try:
        return parse_path(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def check_path(selector: PathSelector, stats: Sequence[PathStats]) -> None:
    """Refuse a path the cycle did not measure, naming some that it did."""
    if any(_is(selector, s) for s in stats):
        return
    known = sorted({f"{s.path.source_site}->{s.path.destination_site}" for s in stats})
    shown = ", ".join(known[:20]) + (f", ... ({len(known)} in all)" if len(known) > 20 else "")
    raise UsageError(f"--path: no measured path {selector.describe()} (paths: {shown or 'none'})")


def cmd_ads(args: argparse.Namespace) -> int:
    from larkps.pipeline import run_cycle

    result = run_cycle(_adhoc(args), _now(), publish=False)
    warn_problems(result.report)
    print(render(list(result.ads), args.format, result.report.started), end="")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    print(json.dumps(resolved_config(args.file), indent=2))
    return 0
