"""`larkps explain A->B`: one path's published figures with their inputs, quality and rule."""

from __future__ import annotations

import argparse
from pathlib import Path

from larkps.cli.commands.common import Subparsers, add_command, add_window


def register(commands: Subparsers) -> None:
    sub = add_command(
        commands,
        "explain",
        cmd_explain,
        "explain one path's published figures: inputs, quality and the rule behind each",
        "larkps explain 'UNL->WISC' --config /etc/larkps/larkps.toml",
    )
    sub.add_argument(
        "path", type=_path_arg, help="'SOURCE->DEST[/ipv4|/ipv6]' (quoted: > redirects)"
    )
    sub.add_argument("--config", required=True, type=Path, help="TOML configuration file")
    add_window(sub)


def _path_arg(text: str) -> object:
    from larkps.report.document import parse_path

    try:
        return parse_path(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_explain(args: argparse.Namespace) -> int:
    import time

    from larkps.cli.commands.core import check_path
    from larkps.config.settings import load_settings
    from larkps.pipeline import run_cycle
    from larkps.report.explain import PathFacts, Rules, explain_path
    from larkps.stats.analysis import Policies
    from larkps.stats.estimates import window_estimates

    settings = load_settings(args.config)
    now = int(time.time())
    result = run_cycle(settings, now, args.window, publish=False)
    check_path(args.path, result.stats)
    policies = Policies.from_settings(settings, args.window)
    estimates = window_estimates(result.stats, result.estimates, settings.windows.stale_after)
    blocks = []
    for main in result.stats:
        p = main.path
        if not args.path.matches(p.source_site, p.destination_site, p.family.value):
            continue
        facts = PathFacts(
            windows=[s for s in result.windows if s.path == p] or [main],
            main_window=main.window,
            estimate=estimates.get(p),
            forecasts=[f for f in result.forecasts if f.path == p],
            health=next(
                (h for h in result.health if h.path == p and h.window == main.window), None
            ),
            alarms=[a for a in result.alarms if a.subject == p.name],
        )
        rules = Rules(
            stale_after=settings.windows.stale_after,
            min_completeness=settings.quality.min_completeness,
            clock_error_ms=settings.quality.clock_error_ms,
            min_quality=settings.throttle.policy.min_quality,
            model=settings.model,
            capacity_bps=policies.capacity(p),
        )
        blocks.append("\n".join(_printable(line) for line in explain_path(facts, rules, now)))
    print("\n\n".join(blocks))
    return 0


def _printable(line: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in line)
