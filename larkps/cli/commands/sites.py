"""``larkps sites import-psconfig``: a ``[sites.NAME]`` map from a pSConfig template."""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path

from larkps.cli.commands.common import Subparsers, add_command
from larkps.config.psconfig import import_psconfig, render_toml
from larkps.config.settings import settings_from_dict
from larkps.errors import ConfigError, UsageError
from larkps.publish.ads import write_atomically

MAX_TEMPLATE_BYTES = 64 * 2**20


def register(commands: Subparsers) -> None:
    group = add_command(
        commands,
        "sites",
        _missing_action,
        "build the host -> site map from a pSConfig template (import-psconfig)",
        "larkps sites import-psconfig mesh.json --output /etc/larkps/sites.toml",
    )
    actions = group.add_subparsers(dest="sites_action", required=True, metavar="ACTION")
    sub = add_command(
        actions,
        "import-psconfig",
        cmd_import_psconfig,
        "turn a pSConfig JSON template into [sites.NAME] tables (stdout or --output)",
        "larkps sites import-psconfig mesh.json --output /etc/larkps/sites.toml",
    )
    sub.add_argument("file", type=Path, help="pSConfig JSON template")
    sub.add_argument("--output", type=Path, help="write the TOML here (atomically)")


def _missing_action(args: argparse.Namespace) -> int:
    raise UsageError("sites: name an action: import-psconfig")


def cmd_import_psconfig(args: argparse.Namespace) -> int:
    try:
        result = import_psconfig(_read_template(args.file))
    except ValueError as exc:
        raise UsageError(f"{args.file}: {exc}") from None
    for reason in result.skipped:
        print(f"larkps: skipped {reason}", file=sys.stderr)
    if not result.sites:
        raise UsageError(f"{args.file}: no usable site in the pSConfig template")
    text = render_toml(result, args.file.name)
    _check_accepted(text)
    if args.output is None:
        print(text, end="")
    else:
        write_atomically(args.output, text)
        print(f"wrote {len(result.sites)} sites to {args.output}", file=sys.stderr)
    return 0


def _read_template(path: Path) -> object:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_TEMPLATE_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror})") from None
    if len(data) > MAX_TEMPLATE_BYTES:
        raise UsageError(f"{path}: larger than {MAX_TEMPLATE_BYTES // 2**20} MiB")
    try:
        return json.loads(data)
    except ValueError as exc:
        raise UsageError(f"{path}: not JSON ({str(exc).splitlines()[0]})") from None


def _check_accepted(text: str) -> None:
    """The fragment must load as larkps configuration (never write what cannot)."""
    archive = {"name": "check", "kind": "esmond", "url": "https://archive.invalid"}
    try:
        settings_from_dict({"archives": [archive], "sites": tomllib.loads(text)["sites"]})
    except (tomllib.TOMLDecodeError, ConfigError) as exc:
        raise UsageError(f"the generated site map is not valid configuration ({exc})") from None
