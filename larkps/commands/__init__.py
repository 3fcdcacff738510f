"""Subcommands of ``larkps``, one module per group, each with ``register(subparsers)``."""

from __future__ import annotations

from larkps.commands import core
from larkps.commands.common import Handler

COMMAND_MODULES = (core,)

__all__ = ["COMMAND_MODULES", "Handler"]
