"""``larkps report``: the mesh grid and path histories as an offline HTML page (and PNGs)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from larkps.cli.commands.common import Subparsers, add_command, add_window
from larkps.config.settings import load_settings


def register(commands: Subparsers) -> None:
    sub = add_command(
        commands,
        "report",
        cmd_report,
        "write the mesh grid and path histories as an offline HTML page (and PNGs with --png)",
        "larkps report --config /etc/larkps/larkps.toml --out /var/www/larkps --png",
    )
    sub.add_argument("--config", required=True, type=Path, help="TOML configuration file")
    sub.add_argument("--out", required=True, type=Path, help="directory for index.html")
    sub.add_argument("--png", action="store_true", help="also write grid.png and paths/<path>.png")
    add_window(sub)


def cmd_report(args: argparse.Namespace) -> int:
    from larkps.pipeline import run_cycle
    from larkps.report.adapter import report_input
    from larkps.report.output import write_report

    settings = load_settings(args.config)
    now = int(time.time())
    result = run_cycle(settings, now, args.window, publish=False, history=True)
    written = write_report(report_input(result, settings, now), args.out, png=args.png)
    print(f"wrote {written.index} ({len(result.stats)} paths)")
    if written.grid is not None:
        print(f"wrote {written.grid} and {written.pictures} path pictures")
    if result.report.problems:
        print(f"{len(result.report.problems)} problems in this cycle (listed on the page)")
    return 0
