"""``larkps achieved``: completed jobs' input transfers, read from the schedd's history."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from larkps.cli.commands.common import Subparsers, add_command, duration_arg

if TYPE_CHECKING:
    from larkps.config.settings import Settings
    from larkps.publish.schedd_history import HistoryRead
    from larkps.stats.achieved_state import StoredTransfer

ACHIEVED_EXAMPLE = "larkps achieved --config /etc/larkps/larkps.toml --since 24h"


def register(commands: Subparsers) -> None:
    sub = add_command(
        commands,
        "achieved",
        cmd_achieved,
        "record completed jobs' transfer rates from the schedd's history; show them per path",
        ACHIEVED_EXAMPLE,
    )
    sub.add_argument("--config", required=True, type=Path, help="TOML configuration file")
    sub.add_argument("--pool", help="collector locating the schedd ([calibration] pool)")
    sub.add_argument("--schedd", help="schedd name ([calibration] schedd; default: local)")
    sub.add_argument(
        "--since", type=duration_arg, help="read jobs completed this long ago or later"
    )
    sub.add_argument("--no-read", action="store_true", help="show what is stored, read nothing")
    sub.add_argument("--format", choices=("text", "json"), default="text", help="output format")


def cmd_achieved(args: argparse.Namespace) -> int:
    import time

    from larkps.config.settings import load_settings
    from larkps.publish.schedd_history import read_into_store
    from larkps.stats.achieved_state import stored_transfers
    from larkps.store.db import Store

    settings = load_settings(args.config)
    calibration = dataclasses.replace(
        settings.calibration,
        pool=args.pool or settings.calibration.pool,
        schedd=args.schedd or settings.calibration.schedd,
    )
    now = int(time.time())
    since = None if args.since is None else now - args.since
    with Store.in_directory(settings.state_dir) as store:
        read = None if args.no_read else read_into_store(store, calibration, now, since)
        start = now - (args.since or calibration.policy.max_age)
        stored = stored_transfers(store, lambda host: _site(settings, host), start)
    rows = [_row(item) for item in stored]
    if args.format == "json":
        print(json.dumps({"read": _read_doc(read), "transfers": rows}, indent=2, sort_keys=True))
        return 0
    if read is not None:
        print(
            f"read {read.ads} history ads of {read.schedd} since {read.since}: "
            f"{len(read.transfers)} transfers ({read.recorded} new), {len(read.skipped)} skipped"
        )
        for reason in sorted({s.reason for s in read.skipped}):
            print(f"  skipped {sum(s.reason == reason for s in read.skipped)}: {reason}")
    if not rows:
        print("no transfers recorded")
    for row in rows:
        predicted = "-" if row["predicted_mbps"] is None else f"{row['predicted_mbps']:.4g}"
        print(
            f"{row['path'] or '(unknown site) ' + row['ends']}  {row['job']}  "
            f"{row['mbps']:.4g} Mbps over {row['seconds']} s  predicted {predicted} Mbps"
        )
    return 0


def _site(settings: Settings, host: str) -> str | None:
    site = settings.sites.site_for(host)
    return None if site == host else site


def _row(item: StoredTransfer) -> dict[str, Any]:
    t, pair, predicted = item.transfer, item.pair, item.predicted_bps
    return {
        "job": t.job,
        "completed": t.completed,
        "path": None if pair is None else f"{pair[0]}->{pair[1]}",
        "ends": f"{t.source.text}->{t.destination.text}",
        "bytes": t.bytes,
        "seconds": t.seconds,
        "method": t.method,
        "mbps": t.rate_bps * 1e-6,
        "predicted_mbps": None if predicted is None else predicted * 1e-6,
    }


def _read_doc(read: HistoryRead | None) -> dict[str, object] | None:
    if read is None:
        return None
    return {
        "schedd": read.schedd,
        "since": read.since,
        "ads": read.ads,
        "recorded": read.recorded,
        "skipped": [dataclasses.asdict(s) for s in read.skipped],
    }
