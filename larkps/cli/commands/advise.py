"""Commands for execute nodes and workflow authors: startd-cron and advise."""

from __future__ import annotations

import argparse
import json
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from larkps.cli.commands.common import Subparsers, add_command, duration_arg, size_arg
from larkps.config.settings import CollectorTarget, Settings, load_settings
from larkps.decide.advise import Advice, advise
from larkps.decide.views import PathView, views_from_ads
from larkps.errors import LarkpsError, UsageError
from larkps.publish.ads import parse_old
from larkps.publish.collector import query_ads
from larkps.publish.startd import startd_cron_ad, startd_cron_text
from larkps.publish.submit import submit_lines


def register(commands: Subparsers) -> None:
    cron = add_command(
        commands,
        "startd-cron",
        cmd_startd_cron,
        "print this execute node's LarkPS_* machine attributes for STARTD_CRON",
        "larkps startd-cron --config /etc/larkps/larkps.toml --site UNL",
    )
    _add_ad_source(cron)
    cron.add_argument("--site", help="this node's site (default: from its name and addresses)")
    adv = add_command(
        commands,
        "advise",
        cmd_advise,
        "rank execute sites by expected transfer time of a data set; print submit lines",
        "larkps advise --config /etc/larkps/larkps.toml --data-site UNL --input-size 50GB",
    )
    _add_ad_source(adv)
    adv.add_argument("--data-site", required=True, help="site that holds the input data")
    adv.add_argument("--input-size", required=True, type=size_arg, help="e.g. 50GB, 500MiB")
    adv.add_argument("--deadline", type=duration_arg, help="transfer deadline, e.g. 2h")
    adv.add_argument(
        "--strict", action="store_true", help="exclude machines without trusted figures"
    )
    adv.add_argument("--format", choices=("table", "json"), default="table")


def _add_ad_source(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--config",
        type=Path,
        help="site map and trust defaults; the ads come from its [publish.collector]"
        " pool, else from the ads file it names",
    )
    source = sub.add_mutually_exclusive_group()
    source.add_argument("--ads", type=Path, help="an old-syntax ads file written by larkps")
    source.add_argument("--pool", help="query the collector at HOST[:PORT] for LarkPS ads")
    sub.add_argument(
        "--stale-after",
        type=duration_arg,
        default=None,
        help="figures older than this are not trusted (default: config or 6h)",
    )
    sub.add_argument(
        "--min-quality",
        type=float,
        default=None,
        help="minimum completeness 0..1 (default: config or 0.5)",
    )


def _load_views(args: argparse.Namespace) -> tuple[list[PathView], Settings | None]:
    """The path views from --ads, --pool, the config's collector or its ads file."""
    if not (args.config or args.ads or args.pool):
        raise UsageError("give --config, --ads or --pool: where to read the LarkPS ads")
    settings = load_settings(args.config) if args.config else None
    target = _collector(args.pool, settings) if args.ads is None else None
    if target is not None:
        ads: list[Mapping[str, Any]] = list(query_ads(target))
    else:
        path = args.ads or _ads_file(settings)
        try:
            ads = list(parse_old(path.read_text()))
        except OSError as exc:
            raise LarkpsError(f"cannot read ads file {path}: {exc.strerror}") from None
    return views_from_ads(ads), settings


def _collector(pool: str | None, settings: Settings | None) -> CollectorTarget | None:
    """The collector to read: --pool, else the config's [publish.collector], else none.

    Reading needs no DAEMON authorization, so the config's token is used only
    where this user can read it (the startd runs the hook as its own account).
    """
    configured = settings.publish.collector if settings else None
    if pool:
        return CollectorTarget(pool=pool)
    if configured is None:
        return None
    token = configured.token_file
    readable = token is not None and os.access(token, os.R_OK)
    return CollectorTarget(
        pool=configured.pool, token_file=token if readable else None, timeout=configured.timeout
    )


def _ads_file(settings: Settings | None) -> Path:
    assert settings is not None
    if settings.publish.file is not None:
        return settings.publish.file.path
    return settings.state_dir / "spool" / "published.ads"


def _trust(args: argparse.Namespace, settings: Settings | None) -> tuple[int, float]:
    stale = args.stale_after or (settings.windows.stale_after if settings else 6 * 3600)
    quality = args.min_quality
    if quality is None:
        quality = settings.throttle.policy.min_quality if settings else 0.5
    if not 0 <= quality <= 1:
        raise UsageError("--min-quality: expected a fraction between 0 and 1")
    return stale, quality


def _local_site(settings: Settings | None) -> str:
    name = socket.getfqdn()
    addresses = {info[4][0] for info in _addresses(name)}
    if settings is not None:
        for ip in sorted(addresses) or [""]:
            site = settings.sites.site_for(name, str(ip))
            if site != name:
                return site
    raise UsageError(f"--site: cannot derive this host's site from {name!r}; give --site")


def _addresses(name: str) -> list[Any]:
    try:
        return socket.getaddrinfo(name, None)
    except OSError:
        return []


def cmd_startd_cron(args: argparse.Namespace) -> int:
    views, settings = _load_views(args)
    stale, quality = _trust(args, settings)
    site = args.site or _local_site(settings)
    ad = startd_cron_ad(views, site, int(time.time()), stale, quality)
    print(startd_cron_text(ad), end="")
    return 0


def cmd_advise(args: argparse.Namespace) -> int:
    views, settings = _load_views(args)
    stale, quality = _trust(args, settings)
    _check_data_site(args.data_site, views)
    result = advise(
        views, args.data_site, args.input_size, int(time.time()), stale, quality, args.deadline
    )
    if args.format == "json":
        document = asdict(result) | {"submit": submit_lines(result, args.strict)}
        print(json.dumps(document, indent=1))
    else:
        print(advice_table(result))
        print("\n".join(submit_lines(result, args.strict)))
    return 0


def _check_data_site(site: str, views: list[PathView]) -> None:
    """Refuse a data site no path starts from, naming the ones that exist."""
    known = sorted({v.source_site for v in views})
    if site in known:
        return
    shown = ", ".join(repr(k) for k in known[:50]) or "none"
    if len(known) > 50:
        shown += f", ... ({len(known)} in all)"
    same = [k for k in known if k.casefold() == site.casefold()]
    hint = f"; site names are case-sensitive: did you mean {same[0]!r}?" if same else ""
    raise UsageError(f"--data-site: no paths from site {site!r}{hint} (known sites: {shown})")


def advice_table(result: Advice) -> str:
    header = ("rank", "site", "lower Mbps", "transfer", "deadline", "reason")
    rows = [header] + [
        (
            str(r.rank) if r.rank is not None else "-",
            "".join(c if c.isprintable() else "?" for c in r.site),
            "-" if r.lower_mbps is None else f"{r.lower_mbps:.0f}",
            "-" if r.transfer_s is None else _human_seconds(r.transfer_s),
            "-" if r.meets_deadline is None else ("ok" if r.meets_deadline else "MISS"),
            r.reason,
        )
        for r in result.rows
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def _human_seconds(seconds: float) -> str:
    if seconds == float("inf"):
        return "never"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
