"""``larkps jobnet accounting|gc|planner|builder``: the node's job-network ledger,
summarised and cleaned, the planner service the job wrapper asks, and privileged
mode's builder service."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from larkps.cli.commands.common import Subparsers, add_command, duration_arg
from larkps.errors import UsageError
from larkps.jobnet.helper import BUILDER_SOCKET
from larkps.jobnet.planner import DEFAULT_SOCKET

if TYPE_CHECKING:
    from larkps.jobnet.accounting import Accounting, Totals
    from larkps.jobnet.gc import Report
    from larkps.jobnet.ledger import LedgerFile

DEFAULT_LEDGER = Path("/var/lib/larkps/jobnet/ledger.sqlite")
ACCOUNTING_EXAMPLE = "larkps jobnet accounting --config /etc/larkps/larkps.toml --by owner"
GC_EXAMPLE = "larkps jobnet gc --config /etc/larkps/larkps.toml --dry-run"
PLANNER_EXAMPLE = "larkps jobnet planner --config /etc/larkps/larkps.toml"
BUILDER_EXAMPLE = "larkps jobnet builder --config /etc/larkps/jobnet.toml"


def register(commands: Subparsers) -> None:
    group = add_command(
        commands,
        "jobnet",
        _missing_action,
        "per-job networks on this execute node: accounting, leftovers, the planner and the"
        " builder (accounting, gc, planner, builder)",
        ACCOUNTING_EXAMPLE,
    )
    actions = group.add_subparsers(dest="jobnet_action", required=True, metavar="ACTION")
    sub = add_command(
        actions,
        "accounting",
        cmd_accounting,
        "bytes and packets in and out of jobs, per job, owner or destination class",
        ACCOUNTING_EXAMPLE,
    )
    _add_ledger(sub)
    sub.add_argument(
        "--by",
        choices=("job", "owner", "class"),
        default="job",
        help="a row per job, owner or destination class (default: job)",
    )
    sub.add_argument(
        "--since",
        type=duration_arg,
        metavar="DURATION",
        help="only runs still running or ended this long ago or later, e.g. 24h, 7d",
    )
    sub.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    sub = add_command(
        actions,
        "gc",
        cmd_gc,
        "remove namespaces, links, nft tables, qdiscs and processes of dead job runs",
        GC_EXAMPLE,
    )
    _add_ledger(sub)
    sub.add_argument("--dry-run", action="store_true", help="say what would go, remove nothing")
    sub.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    sub = add_command(
        actions,
        "planner",
        cmd_planner,
        "answer the job wrapper's requests for plans on a Unix socket, until SIGTERM",
        PLANNER_EXAMPLE,
    )
    sub.add_argument(
        "--config", required=True, type=Path, metavar="FILE", help="the node's config ([jobnet])"
    )
    sub.add_argument(
        "--socket",
        default=DEFAULT_SOCKET,
        metavar="PATH",
        help=f"where to answer (default: {DEFAULT_SOCKET}, where the wrapper asks)",
    )
    sub.set_defaults(default_log_level=logging.INFO)  # a line per refusal in the journal
    sub = add_command(
        actions,
        "builder",
        cmd_builder,
        "privileged mode, as root: plan and make each job's network for the helper, until SIGTERM",
        BUILDER_EXAMPLE,
    )
    sub.add_argument(
        "--config",
        required=True,
        type=Path,
        metavar="FILE",
        help="root's own jobnet config (the helper's, /etc/larkps/jobnet.toml)",
    )
    sub.add_argument(
        "--socket",
        default=BUILDER_SOCKET,
        metavar="PATH",
        help=f"where to listen (default: {BUILDER_SOCKET}, where the helper connects)",
    )
    sub.set_defaults(default_log_level=logging.INFO)


def _missing_action(args: argparse.Namespace) -> int:
    raise UsageError("jobnet: name an action: accounting, gc, planner or builder")


def _add_ledger(sub: argparse.ArgumentParser) -> None:
    where = sub.add_mutually_exclusive_group()
    where.add_argument("--ledger", type=Path, metavar="FILE", help="one ledger file")
    where.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help=f"the node's config: its [jobnet] ledger and every job user's beside it "
        f"(default: {DEFAULT_LEDGER} and those beside it)",
    )


def _files(args: argparse.Namespace) -> tuple[list[LedgerFile], str]:
    """The ledger files to read, and a description of where they came from."""
    import os

    from larkps.jobnet.ledger import LedgerFile, ledger_files

    if args.ledger is not None:
        try:
            st = os.lstat(args.ledger)
        except OSError as exc:
            raise UsageError(f"--ledger {args.ledger}: {exc.strerror}") from None
        return [LedgerFile(args.ledger, st.st_uid)], str(args.ledger)
    configured = _configured(args.config)
    if not configured.parent.is_dir():
        return [], str(configured)
    return ledger_files(configured), str(configured)


def _configured(config: Path | None) -> Path:
    """The ledger path of the node's config, or the default."""
    if config is None:
        return DEFAULT_LEDGER
    import tomllib

    from larkps.config.jobnet import load_jobnet
    from larkps.config.settings import load_settings

    try:
        with open(config, "rb") as handle:
            only_jobnet = set(tomllib.load(handle)) == {"jobnet"}  # the helper's own file
    except (OSError, tomllib.TOMLDecodeError):
        only_jobnet = False  # load_settings says what is wrong with it
    if only_jobnet:
        return Path(load_jobnet(config).ledger)
    return Path(load_settings(config).jobnet.ledger)


def cmd_accounting(args: argparse.Namespace) -> int:
    """Exit 1 when a ledger could not be read: the others are still summed, each
    unread one named on stderr (``--ledger``: that file's error alone)."""
    from larkps.errors import LarkpsError
    from larkps.jobnet.accounting import summarize
    from larkps.jobnet.ledger import read_runs

    files, where = _files(args)
    since = None if args.since is None else time.time() - args.since
    runs, read, unread = [], [], []
    for file in files:
        try:
            runs += read_runs(file)
        except LarkpsError as exc:
            if args.ledger is not None:
                raise
            unread.append(str(exc))
        else:
            read.append(str(file.path))
    summary = summarize(runs, args.by, since, tuple(read))
    for problem in unread:
        print(f"larkps: warning: {_printable(problem)}", file=sys.stderr)
    if args.format == "json":
        print(json.dumps(summary_doc(summary) | {"unread": unread}, indent=2, sort_keys=True))
    elif not files:
        print(f"no ledger at {where}")
    else:
        print(render_summary(summary), end="")
    return 1 if unread else 0


def summary_doc(summary: Accounting) -> dict[str, Any]:
    return {
        "by": summary.by,
        "since": summary.since,
        "ledgers": list(summary.ledgers),
        "rows": [{"key": row.key, **_totals_doc(row.totals)} for row in summary.rows],
        "total": _totals_doc(summary.total),
    }


def _totals_doc(totals: Totals) -> dict[str, int]:
    return {
        "runs": totals.runs,
        "bytes_in": totals.bytes_in,
        "bytes_out": totals.bytes_out,
        "packets_in": totals.packets_in,
        "packets_out": totals.packets_out,
    }


def render_summary(summary: Accounting) -> str:
    """One row per key and a total: runs, bytes and packets in and out."""
    header = (summary.by, "runs", "bytes in", "bytes out", "packets in", "packets out")
    rows = [_cells(_printable(r.key), r.totals) for r in summary.rows]
    lines = [header, *rows, _cells("total", summary.total)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in lines
    ]
    return "\n".join(text) + "\n"


def _cells(key: str, t: Totals) -> tuple[str, ...]:
    return (key, str(t.runs), *(str(n) for n in (t.bytes_in, t.bytes_out)),
            str(t.packets_in), str(t.packets_out))  # fmt: skip


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)


def cmd_gc(args: argparse.Namespace) -> int:
    from larkps.jobnet.gc import collect

    files, _ = _files(args)
    report = collect(files, dry_run=args.dry_run)
    if args.format == "json":
        print(json.dumps(report_doc(report, args.dry_run), indent=2, sort_keys=True))
    else:
        print(render_report(report, args.dry_run), end="")
    return 1 if report.failed else 0


def cmd_planner(args: argparse.Namespace) -> int:
    from larkps.jobnet.planner_service import run_planner

    return run_planner(str(args.config), args.socket)


def cmd_builder(args: argparse.Namespace) -> int:
    from larkps.jobnet.builder import run_builder

    return run_builder(str(args.config), args.socket)


def report_doc(report: Report, dry_run: bool) -> dict[str, Any]:
    import dataclasses

    return {
        "dry_run": dry_run,
        "actions": [dataclasses.asdict(a) for a in report.actions],
        "closed": [{"ledger": f, "run": r, "job": j} for f, r, j in report.closed],
        "live": [{"ledger": f, "run": r, "job": j} for f, r, j in report.live],
        "problems": report.problems,
    }


def render_report(report: Report, dry_run: bool) -> str:
    lines = []
    for a in report.actions:
        job = f" (job {a.job_id})" if a.job_id else ""
        lines.append(f"{a.outcome}: {a.kind} {_printable(a.name)}{job}: {_printable(a.reason)}")
    for _, run_id, job in report.closed:
        lines.append(f"closed: run {run_id} of job {_printable(job)}")
    lines.extend(f"problem: {_printable(p)}" for p in report.problems)
    live = len(report.live)
    verb = "would be removed" if dry_run else "removed"
    done = sum(a.outcome in ("removed", "would remove") for a in report.actions)
    lines.append(f"{done} objects {verb}; {live} live runs left alone")
    return "\n".join(lines) + "\n"
