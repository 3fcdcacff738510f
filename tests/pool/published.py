"""LarkPS ads in a real pool's collector, advertised by the installed larkps itself.

The central larkps polls its embedded synthetic archive once and advertises to the
pool's collector with an IDTOKEN from the real ``condor_token_create``. Its state
(a 0700 directory) and token (0400, in the config's directory as docs/operations.md
installs it) are root's alone, so a STARTD_CRON hook, which runs as the daemons'
account, proves it needs neither. The config names this host (its
``socket.getfqdn()``, which the hook sees too) as a host of ``home_site``.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path

import classad2
from minipool import Install, Pool, wait_until, world_dir

SITES = ("ALPHA-T2", "BRAVO-T1", "CHARLIE-T2", "DELTA-T2")  # the embedded mesh of 4 sites
PATH_TYPE = "LarkPSPath"


@dataclass(frozen=True)
class Published:
    """Where the configs live and what the collector holds."""

    config: Path  # the central larkps's, with the token
    node_config: Path  # the execute nodes' copy: the same without token_file
    home_site: str
    path_ads: list[classad2.ClassAd]


def etc_dir() -> Path:
    """A world-readable stand-in for /etc/larkps."""
    return world_dir("larkps-etc-")


def write_config(pool: Pool, etc: Path, home_site: str) -> tuple[Path, Path]:
    """World-readable ``etc/central.toml`` for this pool (state and token stay root's)
    and ``etc/larkps.toml``, its copy for execute nodes, as docs/operations.md says."""
    private = Path(etc, "private")
    private.mkdir(mode=0o700)
    token = etc / "collector.token"  # as docs/operations.md: in /etc/larkps, mode 0400
    token.write_text(pool.token() + "\n")
    token.chmod(0o400)
    text = f"""[larkps]
state_dir = "{private / "state"}"
interval = "5m"

[[archives]]
name = "mesh"
kind = "embedded"

[archives.embedded]
sites = {len(SITES)}
seed = 1
flavour = "esmond"

[sites.{home_site}]
hosts = [{classad2.quote(socket.getfqdn())}]

[windows]
list = ["1h", "24h"]
default = "24h"
stale_after = "6h"

[publish]
ad_lifetime = "2h"

[publish.collector]
pool = "{pool.collector}"
timeout = "60s"
token_file = "{token}"
"""
    config, node_config = etc / "central.toml", etc / "larkps.toml"
    config.write_text(text)
    node_config.write_text("".join(text.splitlines(keepends=True)[:-1]))
    for path in (config, node_config):
        path.chmod(0o644)
    return config, node_config


def publish(pool: Pool, install: Install, etc: Path, home_site: str) -> Published:
    """Write the config, run ``larkps once`` against the pool, read back the path ads."""
    config, node_config = write_config(pool, etc, home_site)
    done = pool.run(install.larkps, "once", "--config", config, check=False, timeout=300)
    assert done.returncode == 0, f"larkps once failed:\n{done.stderr[-2000:]}"
    ads = path_ads(pool)
    assert ads, "larkps once advertised no LarkPSPath ads"
    return Published(config, node_config, home_site, ads)


def path_ads(pool: Pool) -> list[classad2.ClassAd]:
    return pool.ads("-any", "-constraint", f'MyType == "{PATH_TYPE}"')


def wait_for_larkps_slots(pool: Pool, want: int, timeout: float = 240) -> None:
    """Wait until ``want`` slots carry LarkPS partners, after ``condor_reconfig``.

    The hook reruns on each reconfig (the snippet's RECONFIG_RERUN); a run that
    failed on a loaded machine would otherwise wait for its 5 minute period, so
    the wait asks again every 30 s. On failure it shows what the hooks logged.
    """
    deadline = time.monotonic() + timeout
    while True:
        pool.reconfig()
        try:
            wait_until(lambda: len(_larkps_slots(pool)) >= want, 30, "slots")
            return
        except AssertionError:
            if time.monotonic() > deadline:
                break
    cron = [
        f"{log.name}: {line}"
        for log in sorted(pool.logs.glob("StartLog*"))
        for line in log.read_text(errors="replace").splitlines()
        if "LARKPS" in line or "larkps" in line
    ]
    raise AssertionError(
        f"timed out after {timeout:.0f} s waiting for {want} slots with LarkPS_* attributes"
        f" ({len(_larkps_slots(pool))} have them); the hooks logged:\n" + "\n".join(cron[-40:])
    )


def _larkps_slots(pool: Pool) -> list[classad2.ClassAd]:
    return pool.ads("-constraint", "size(LarkPS_Partners) > 0")
