"""Subcommands of ``larkps``, one module per group, each with ``register(subparsers)``."""

from __future__ import annotations

from larkps.commands import (
    achieved,
    advise,
    core,
    daemon,
    explain,
    fetch,
    ratelimit,
    report,
    sites,
    throttle,
)
from larkps.commands.common import Handler

COMMAND_MODULES = (
    core, daemon, throttle, ratelimit, fetch, sites, report, advise, explain, achieved,
)  # fmt: skip

__all__ = ["COMMAND_MODULES", "Handler"]
