"""The privileged side's config: root's own file, refused if anyone but root could change it.

Both the helper (run through sudo) and the builder (``larkps jobnet builder``) plan
from ``/etc/larkps/jobnet.toml``; the helper takes ``LARKPS_JOBNET_CONFIG`` instead
only when that file and every directory above it are root's and writable by root
alone. The same check guards the builder's socket path.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping

from larkps import TYPE_CHECKING
from larkps.errors import LarkpsError

if TYPE_CHECKING:
    from larkps.config.jobnet import NodeJobNet

CONFIG = "/etc/larkps/jobnet.toml"
HELPER_CONFIG_VARIABLE = "LARKPS_JOBNET_CONFIG"
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"  # where the privileged side finds ip, tc, nft


class HelperRefused(LarkpsError):
    """The helper will not run this job (the job is not started)."""


def root_only(path: str) -> str | None:
    """Why path (a regular file) or a directory above it could be changed by someone but
    root; None: only root can."""
    part = os.path.abspath(path)
    first = True
    while True:
        try:
            info = os.lstat(part) if first else os.stat(part)
        except OSError as exc:
            return f"{part}: {exc.strerror}"
        if first and not stat.S_ISREG(info.st_mode):
            return f"{part} is not a regular file"
        if info.st_uid != 0:
            return f"{part} is not owned by root"
        writable = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        sticky_dir = not first and info.st_mode & stat.S_ISVTX
        if writable and not sticky_dir:
            return f"{part} is writable by group or others"
        if part == "/":
            return None
        part, first = os.path.dirname(part), False


def config_path(environ: Mapping[str, str]) -> str:
    """The helper's config: CONFIG, or LARKPS_JOBNET_CONFIG if only root can change it."""
    path = environ.get(HELPER_CONFIG_VARIABLE) or CONFIG
    if not path.startswith("/"):
        raise HelperRefused(f"{HELPER_CONFIG_VARIABLE} must be an absolute path")
    problem = root_only(path)
    if problem is not None:
        raise HelperRefused(f"config refused: {problem}")
    return path


def load_node(path: str) -> NodeJobNet:
    """The ``[jobnet]`` settings of a root-only config in privileged mode (HelperRefused:
    the file is not root's alone, or privileged mode is off)."""
    from larkps.config.jobnet import Mode, load_jobnet

    problem = root_only(path)
    if problem is not None:
        raise HelperRefused(f"config refused: {problem}")
    node = load_jobnet(path)
    if node.mode is not Mode.PRIVILEGED:
        raise HelperRefused('the helper\'s config has mode = "rootless": privileged mode is off')
    return node
