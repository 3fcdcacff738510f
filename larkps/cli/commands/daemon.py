"""The daemon commands: run (scheduled cycles) and status (health from the state store)."""

from __future__ import annotations

import argparse
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from larkps.cli.commands.common import Subparsers, add_command
from larkps.config.settings import load_settings
from larkps.daemon.logs import one_line
from larkps.store import runs as runlog
from larkps.store.db import STATE_FILE, Store
from larkps.store.runs import ArchiveHealth


def register(commands: Subparsers) -> None:
    run = add_command(
        commands,
        "run",
        cmd_run,
        "run cycles on a schedule until SIGTERM (SIGHUP reloads)",
        "larkps --log-format json run --config /etc/larkps/larkps.toml",
    )
    run.add_argument("--config", required=True, type=Path, help="TOML configuration file")
    run.set_defaults(default_log_level=logging.INFO)  # one line per cycle in the journal
    status = add_command(
        commands,
        "status",
        cmd_status,
        "show recent cycles (of run and once) and failing archives",
        "larkps status --config /etc/larkps/larkps.toml --last 5",
    )
    status.add_argument("--config", required=True, type=Path, help="TOML configuration file")
    status.add_argument("--last", type=int, default=10, help="how many cycles to show")


def cmd_run(args: argparse.Namespace) -> int:
    from larkps.daemon.service import Daemon

    return Daemon(args.config).run()


def cmd_status(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    database = settings.state_dir / STATE_FILE
    if not database.exists():
        print(f"no state yet at {database}: has `larkps run` or `larkps once` run?")
        return 1
    with Store(database) as store:
        documents = runlog.latest(store, max(1, args.last))
        last_ok = runlog.last_success(store)
        health = runlog.archive_health(store)
    for line in status_lines(documents, last_ok):
        print(line)
    for line in archive_lines([a.name for a in settings.archives], health):
        print(line)
    failing = any(health[a.name].failing_since for a in settings.archives if a.name in health)
    return 0 if documents and documents[0]["ok"] and not failing else 1


def _when(ts: int | None) -> str:
    if ts is None:
        return "never"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def status_lines(documents: list[dict[str, Any]], last_ok: int | None) -> list[str]:
    """Newest cycle first, then the sources that failed in it."""
    lines = [f"last successful cycle: {_when(last_ok)}", "recent cycles:"]
    for doc in documents:
        outcome = "FAILED" if not doc["ok"] else "partial" if doc.get("partial") else "ok"
        detail = doc.get("error") or (
            f"{doc.get('paths', 0)} paths, {doc.get('points', 0)} points, "
            f"{doc.get('ads_written', 0)} ads, {doc.get('duration_s', 0):.1f} s"
        )
        mode = doc.get("mode", "run")
        lines.append(one_line(f"  {_when(doc['started'])}  {mode:4}  {outcome:7}  {detail}"))
    if documents:
        problems = documents[0].get("problems", [])
        lines.append("problems in the last cycle:" if problems else "no problems in the last cycle")
        lines += [one_line(f"  {p['archive']}: {p['what']}: {p['problem']}") for p in problems]
        skipped = documents[0].get("skipped", [])
        if skipped:
            lines.append(f"not due in the last cycle (own interval): {', '.join(skipped)}")
    return lines


def archive_lines(archives: list[str], health: dict[str, ArchiveHealth]) -> list[str]:
    """Each configured archive: answering or failing (since when, why), last success."""
    failing = [a for a in archives if a in health and health[a].failing_since is not None]
    lines = [f"failing archives: {', '.join(failing)}" if failing else "no failing archives"]
    width = max((len(a) for a in archives), default=0)
    for name in archives:
        one = health.get(name)
        if one is None:
            lines.append(f"  {name:{width}}  not polled yet")
        elif one.failing_since is None:
            lines.append(f"  {name:{width}}  ok       last success {_when(one.last_success)}")
        else:
            lines.append(
                one_line(
                    f"  {name:{width}}  FAILING  since {_when(one.failing_since)}, last success"
                    f" {_when(one.last_success)}: {one.problem}"
                )
            )
    return lines
