"""Subcommands of ``larkps``, one module per group, each with ``register(subparsers)``."""

from __future__ import annotations

from larkps.commands import core, daemon
from larkps.commands.common import Handler

COMMAND_MODULES = (core, daemon)

__all__ = ["COMMAND_MODULES", "Handler"]
