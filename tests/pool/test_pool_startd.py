"""The shipped execute-node snippet on a real startd: slots carry their site's figures.

The pool's startd runs ``config/condor/50-larkps-startd-cron.conf`` as shipped, with
only the installed larkps and the config path put in. The config is the execute
nodes' copy docs/operations.md describes (the central one without ``token_file``).
The hook runs as the daemons' account, cannot read larkps's state, and has no ads
file: it must read the collector named by the config and derive the node's site
from the config's site map. The slot attributes are checked against the
collector's own LarkPSPath ads, and against ``larkps startd-cron --pool --config``
run by hand as another user with the central config (whose token that user cannot
read).
"""

from __future__ import annotations

import re
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import classad2
import pytest
from minipool import COLLECTOR_SNIPPET, REPO, Install, Pool, minipool, shipped
from published import Published, etc_dir, publish, wait_for_larkps_slots

from larkps.publish.identifiers import site_fragment

SNIPPET = "config/condor/50-larkps-startd-cron.conf"
INSTALLED = "/opt/larkps/venv/bin/larkps"
CONFIG = "/etc/larkps/larkps.toml"
HOME = "CHARLIE-T2"  # the site the config's map gives this host
STALE_AFTER, MIN_QUALITY = 6 * 3600, 0.5


@pytest.fixture(scope="module")
def deployed(larkps_install: Install) -> Iterator[tuple[Pool, Published]]:
    """The snippet is in the pool from the start; the config appears later, as the
    collector's ads do, and condor_reconfig runs the hook again."""
    etc = etc_dir()
    config = etc / "larkps.toml"
    snippet = shipped(SNIPPET, {INSTALLED: str(larkps_install.larkps), CONFIG: str(config)})
    try:
        with minipool(extra_config=shipped(COLLECTOR_SNIPPET, {}) + snippet) as pool:
            published = publish(pool, larkps_install, etc, HOME)
            wait_for_larkps_slots(pool, 2)
            yield pool, published
    finally:
        shutil.rmtree(etc, ignore_errors=True)


def _trusted(ad: classad2.ClassAd, now: int) -> bool:
    return (
        ad.get("LarkPS_ExpectedStale") is False
        and ad.get("LarkPS_ExpectedQuality", 0) >= MIN_QUALITY
        and now - ad["LarkPS_UpdateTime"] <= STALE_AFTER
    )


def _lower(ad: classad2.ClassAd) -> float:
    return max(0.0, ad["LarkPS_ExpectedMbps"] - ad["LarkPS_ExpectedErrorMbps"])


def test_the_shipped_executable_is_the_install_path_of_operations_md():
    operations = (REPO / "docs" / "operations.md").read_text()
    venv = re.search(r"python3 -m venv (\S+)", operations)
    assert venv is not None, "docs/operations.md no longer shows the venv it installs"
    executable = re.search(r"^STARTD_CRON_LARKPS_EXECUTABLE = (\S+)$", shipped(SNIPPET, {}), re.M)
    assert executable is not None
    assert executable.group(1) == f"{venv.group(1)}/bin/larkps" == INSTALLED


def test_every_slot_stands_for_the_site_of_the_config_map(deployed):
    pool, published = deployed
    slots = pool.ads("-constraint", "MiniPool_Ready =?= true")
    assert len(slots) == 2
    assert {slot.get("LarkPS_Site") for slot in slots} == {HOME}
    assert "token_file" not in published.node_config.read_text()


def test_the_partners_are_the_sites_the_collector_pairs_with_home(deployed):
    pool, published = deployed
    pairs = {(a["LarkPS_SourceSite"], a["LarkPS_DestinationSite"]) for a in published.path_ads}
    partners = {s for s, d in pairs if d == HOME} | {d for s, d in pairs if s == HOME}
    assert partners, "the collector has no path of the home site"
    for slot in pool.ads("-constraint", "MiniPool_Ready =?= true"):
        assert set(slot["LarkPS_Partners"]) == partners - {HOME}


@pytest.mark.parametrize("direction", ["From", "To"])
def test_slot_figures_are_the_collector_ads_of_the_expected_family(deployed, direction):
    pool, published = deployed
    slot = pool.ads("-constraint", "MiniPool_Ready =?= true")[0]
    checked = 0
    for partner in slot["LarkPS_Partners"]:
        source, destination = (partner, HOME) if direction == "From" else (HOME, partner)
        prefix = f"LarkPS_{direction}_{site_fragment(partner)}"
        candidates = [
            ad
            for ad in published.path_ads
            if (ad["LarkPS_SourceSite"], ad["LarkPS_DestinationSite"]) == (source, destination)
        ]
        family = slot[f"{prefix}_Family"]
        (ad,) = [a for a in candidates if a["LarkPS_AddressFamily"] == family]
        now = int(time.time())  # minutes after the hook ran; figures stay fresh for hours
        trusted = [a for a in candidates if _trusted(a, now)]
        if trusted:
            assert _lower(ad) == min(_lower(a) for a in trusted)  # the conservative family
        assert slot[f"{prefix}_Trusted"] is _trusted(ad, now)
        assert slot[f"{prefix}_BandwidthMbps"] == pytest.approx(ad["LarkPS_ExpectedMbps"])
        assert slot[f"{prefix}_BandwidthErrorMbps"] == pytest.approx(ad["LarkPS_ExpectedErrorMbps"])
        assert slot[f"{prefix}_BandwidthLowMbps"] == pytest.approx(_lower(ad), abs=1e-5)
        assert slot[f"{prefix}_Quality"] == pytest.approx(ad["LarkPS_ExpectedQuality"], abs=1e-4)
        assert slot[f"{prefix}_UpdateTime"] == ad["LarkPS_UpdateTime"]
        checked += 1
    assert checked == len(slot["LarkPS_Partners"]) > 0


def test_the_hook_output_is_what_the_slots_carry(deployed, larkps_install):
    """larkps startd-cron with --pool and --config, run by another user, agrees."""
    pool, published = deployed
    home = pool.job_dir("startd-cron-by-hand")
    out = pool.as_job_user(
        larkps_install.larkps, "startd-cron", "--config", published.config,
        "--pool", pool.collector, cwd=home,
    ).stdout  # fmt: skip
    assert out.endswith("- update:true\n")
    printed = classad2.parseOne(out.rsplit("- update", 1)[0], classad2.ParserType.Old)
    assert printed["LarkPS_Site"] == HOME
    slot = pool.ads("-constraint", "MiniPool_Ready =?= true")[0]
    names = [k for k in printed if k.startswith("LarkPS_")]
    assert len(names) > 10
    for name in names:
        if isinstance(printed[name], float):
            assert slot[name] == pytest.approx(printed[name]), name
        else:
            assert slot[name] == printed[name], name


def test_without_a_collector_the_hook_says_so_in_one_line(deployed, larkps_install):
    pool, published = deployed
    home = pool.job_dir("startd-cron-refused")
    with _closed_port() as port:
        done = pool.as_job_user(
            larkps_install.larkps, "startd-cron", "--config", published.config,
            "--pool", f"127.0.0.1:{port}", cwd=home, check=False,
        )  # fmt: skip
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0], done.stderr


@contextmanager
def _closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound, never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
