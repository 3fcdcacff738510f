"""Subcommands of ``larkps``, one module per group, each with ``register(subparsers)``."""

from __future__ import annotations

from larkps.cli.commands import (
    achieved,
    advise,
    core,
    daemon,
    explain,
    fetch,
    jobnet,
    plan,
    ratelimit,
    report,
    sites,
    throttle,
)
from larkps.cli.commands.common import Handler

COMMAND_MODULES = (
    core, daemon, throttle, ratelimit, fetch, sites, report, advise, explain, plan, achieved,
    jobnet,
)  # fmt: skip

__all__ = ["COMMAND_MODULES", "Handler"]
