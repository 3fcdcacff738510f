"""``larkps fetch``: backfill the state store from the configured archives."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from larkps.cli.commands.common import Subparsers, add_command, duration_arg
from larkps.config.settings import load_settings
from larkps.daemon.logs import one_line
from larkps.model import ProblemKind

if TYPE_CHECKING:
    from larkps.ingest.runner import IngestReport

BAR_WIDTH = 30
MAX_PROBLEMS_SHOWN = 20


def register(commands: Subparsers) -> None:
    sub = add_command(
        commands,
        "fetch",
        cmd_fetch,
        "backfill the local state store from every configured archive",
        "larkps fetch --config /etc/larkps/larkps.toml --since 24h",
    )
    sub.add_argument("--config", required=True, type=Path, help="TOML configuration file")
    sub.add_argument(
        "--since", type=duration_arg, default=86400, help="how far back to fetch (default 24h)"
    )
    sub.add_argument(
        "--deadline", type=duration_arg, help="stop after this long, keeping what was fetched"
    )
    sub.add_argument("--quiet", action="store_true", help="no progress bar")


class ProgressBar:
    """A one-line progress bar; redrawn in place on a terminal, else printed sparsely."""

    def __init__(self, stream: TextIO, every: float | None = None) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.every = every if every is not None else (0.1 if self.tty else 5.0)
        self.started = time.monotonic()
        self.last = 0.0

    def update(self, done: int, total: int, points: int, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.last < self.every:
            return
        self.last = now
        filled = BAR_WIDTH * done // total if total else BAR_WIDTH
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        line = f"[{bar}] {done}/{total} series, {points} points, {now - self.started:.0f} s"
        end = "\n" if final or not self.tty else ""
        self.stream.write(("\r" if self.tty else "") + line + end)
        self.stream.flush()


def cmd_fetch(args: argparse.Namespace) -> int:
    from larkps.pipeline import ingest_cycle, open_sources
    from larkps.sources import split_modes

    settings = load_settings(args.config)
    now = int(time.time())
    bar = None if args.quiet else ProgressBar(sys.stderr)
    with open_sources(settings) as sources:
        raw, _ = split_modes(sources)  # summary-mode archives store nothing
        report, _ = ingest_cycle(
            settings, raw, now, now - args.since, args.deadline, bar.update if bar else None
        )
    if bar is not None:
        bar.update(report.series, report.series, report.points, final=True)
    for line in summary(report):
        print(line)
    return 1 if report.answers.archive_errors and not report.archives_ok else 0


def summary(report: IngestReport) -> list[str]:
    """The closing account: series, points, errors, time."""
    errors = [p for p in report.problems if p.kind != ProblemKind.BAD_VALUES]
    rejected = [p for p in report.problems if p.kind == ProblemKind.BAD_VALUES]
    lines = [
        f"fetched {report.series} series: {report.points} new points, "
        f"{len(errors)} errors, {len(rejected)} series with rejected points, "
        f"{report.requests} requests ({report.retries} retries) in {report.duration_s:.1f} s"
        + (" (partial)" if report.partial else "")
    ]
    for problem in report.problems[:MAX_PROBLEMS_SHOWN]:
        lines.append(
            one_line(f"warning: archive {problem.archive}: {problem.what}: {problem.problem}")
        )
    if len(report.problems) > MAX_PROBLEMS_SHOWN:
        lines.append(f"... and {len(report.problems) - MAX_PROBLEMS_SHOWN} more problems")
    return lines
