"""The central manager's snippet as shipped on a real pool, and larkps advertising to it.

The pool gets ``config/condor/50-larkps-collector.conf`` appended unchanged, on top
of a policy of the pool's own (not a shipped file) where both knobs the snippet
extends are unset, as on a central manager that never set them: ALLOW_DAEMON falls
back to ALLOW_WRITE, SEC_DAEMON_AUTHENTICATION_METHODS to the DEFAULT list (FS).
ALLOW_WRITE holds only the pool's condor identity, so the job user larkps runs as
has no grant of its own: whatever it advertises, it advertises with its IDTOKEN.
CLASSAD_LIFETIME is small so that the collector's housekeeper (which runs every
CLASSAD_LIFETIME seconds) sweeps expired ads within the test.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import classad2
import pytest
from minipool import Install, Pool, minipool, shipped, wait_until

from larkps.config.settings import CollectorTarget
from larkps.publish.ads import render_old
from larkps.publish.collector import CollectorPublisher, Spool

SNIPPET = "config/condor/50-larkps-collector.conf"
LARKPS_ADS = 'MyType == "LarkPSPath" || MyType == "LarkPSSite"'
POOL_POLICY = """
ALLOW_DAEMON =
ALLOW_WRITE = condor@minipool
CLASSAD_LIFETIME = 20
"""
IDENTITY = "larkps@minipool"  # the snippet's larkps@$(UID_DOMAIN) on this pool


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    if os.geteuid() != 0:
        pytest.skip("needs root: the pool's daemons and larkps's job user must be two identities")
    with minipool(extra_config=POOL_POLICY + shipped(SNIPPET, {})) as running:
        yield running


@pytest.fixture(scope="module")
def token(pool: Pool) -> Path:
    """larkps's collector token, made by condor_token_create, readable by the job user only."""
    home = pool.job_dir("larkps-token")
    return pool.job_file(home, "collector.token", pool.token(IDENTITY) + "\n", mode=0o400)


def workspace(
    pool: Pool,
    name: str,
    publish: bool = False,
    token: Path | None = None,
    lifetime: str = "15m",
    seed: int = 1,
    interval: str = "5m",
) -> Path:
    """A job-user directory with a config over the embedded mesh; the config's path.

    The cycle writes its ads file in ``state/``; with `publish` it also advertises to
    the pool's collector (with `token`, if given).
    """
    home = pool.job_dir(name)
    state = home / "state"
    lines = [
        "[larkps]",
        f'state_dir = "{state}"',
        f'interval = "{interval}"',
        "[[archives]]",
        'name = "mesh"',
        'kind = "embedded"',
        "[archives.embedded]",
        "sites = 4",
        f"seed = {seed}",
        "[publish]",
        f'ad_lifetime = "{lifetime}"',
        "[publish.file]",
        f'path = "{state / "larkps.ads"}"',
    ]
    if publish:
        lines += ["[publish.collector]", f'pool = "{pool.collector}"']
        if token is not None:
            lines.append(f'token_file = "{token}"')
    return pool.job_file(home, "larkps.toml", "\n".join(lines) + "\n")


def larkps(pool: Pool, install: Install, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return pool.as_job_user(install.larkps, *args, cwd=Path("/tmp"), check=False, timeout=600)


def ads_file(config: Path) -> list[classad2.ClassAd]:
    text = (config.parent / "state" / "larkps.ads").read_text()
    return list(classad2.parseAds(text, classad2.ParserType.Old))


def key(ad: classad2.ClassAd) -> tuple[str, str]:
    return str(ad["MyType"]), str(ad["Name"])


def in_collector(pool: Pool) -> dict[tuple[str, str], classad2.ClassAd]:
    return {key(ad): ad for ad in pool.ads("-any", "-constraint", LARKPS_ADS)}


def differences(
    sent: list[classad2.ClassAd], held: dict[tuple[str, str], classad2.ClassAd]
) -> list[str]:
    """Every attribute of `sent` that the collector's copy lacks or holds otherwise."""
    wrong = []
    for ad in sent:
        there = held.get(key(ad))
        if there is None:
            wrong.append(f"{key(ad)} missing")
            continue
        wrong += [
            f"{key(ad)} {name}: {there.lookup(name) if name in there else '-'} != {ad.lookup(name)}"
            for name in ad
            if name not in there or str(there.lookup(name)) != str(ad.lookup(name))
        ]
    return wrong


def knob(env: dict[str, str], config: Path, name: str) -> list[str]:
    """The value of a knob, as HTCondor expands it, split into a list ([] when unset)."""
    done = subprocess.run(
        ["condor_config_val", name],
        env={**env, "CONDOR_CONFIG": str(config)},
        capture_output=True,
        text=True,
        check=False,
    )
    return (
        re.split(r"[\s,]+", done.stdout.strip())
        if done.returncode == 0 and done.stdout.strip()
        else []
    )


@pytest.mark.parametrize(
    "base",
    [
        "",  # nothing set: HTCondor's built-in defaults
        "SEC_DEFAULT_AUTHENTICATION_METHODS = FS\nALLOW_WRITE = *",  # like this pool
        "use SECURITY : recommended_v9_0",  # what the packaged condor_config uses
        "SEC_DAEMON_AUTHENTICATION_METHODS = FS, SSL\nALLOW_DAEMON = condor@cm.example.org",
    ],
    ids=["defaults", "only-default-methods", "recommended", "both-set"],
)
def test_the_snippet_extends_what_the_pool_had(pool: Pool, tmp_path: Path, base: str):
    before = tmp_path / "before"
    before.write_text(f"LOCAL_CONFIG_DIR =\n{base}\n")
    after = tmp_path / "after"
    after.write_text(before.read_text() + shipped(SNIPPET, {}))
    had_methods = knob(pool.env, before, "SEC_DAEMON_AUTHENTICATION_METHODS") or knob(
        pool.env, before, "SEC_DEFAULT_AUTHENTICATION_METHODS"
    )
    had_daemon = knob(pool.env, before, "ALLOW_DAEMON") or knob(pool.env, before, "ALLOW_WRITE")
    uid_domain = knob(pool.env, before, "UID_DOMAIN")
    assert had_methods, "HTCondor has a built-in default authentication method list"
    assert knob(pool.env, after, "SEC_DAEMON_AUTHENTICATION_METHODS") == [*had_methods, "IDTOKENS"]
    assert knob(pool.env, after, "ALLOW_DAEMON") == [*had_daemon, f"larkps@{uid_domain[0]}"]


def test_the_pools_daemons_keep_reaching_the_collector(pool: Pool):
    def heard() -> dict[str, int]:
        out = pool.status("-any", "-constraint", 'MyType == "Machine" || MyType == "Scheduler"',
                          "-af", "Name", "LastHeardFrom")  # fmt: skip
        return {n: int(t) for n, t in (line.split() for line in out.splitlines() if line.strip())}

    first = heard()
    assert len([n for n in first if n.startswith("slot")]) == 2, first
    wait_until(
        lambda: all(t > first[n] for n, t in heard().items()) and heard().keys() == first.keys(),
        timeout=90,
        what=f"every slot and the schedd to update the collector again after {first}",
    )
    started = pool.status("-af", "DaemonStartTime").split()
    pool.run("condor_restart", "-startd")
    wait_until(
        lambda: (
            (now := pool.status("-const", "MiniPool_Ready =?= true", "-af", "DaemonStartTime"))
            and len(now.split()) == 2
            and set(now.split()) != set(started)
        ),
        timeout=180,
        what="the restarted startd's slots to register again",
    )


def test_once_advertises_exactly_what_it_writes(pool: Pool, larkps_install: Install, token: Path):
    config = workspace(pool, "collector-once", publish=True, token=token)
    done = larkps(pool, larkps_install, "once", "--config", config)
    assert done.returncode == 0, done.stderr[-2000:]
    written = ads_file(config)
    held = in_collector(pool)
    assert differences(written, held) == []
    paths = int(re.search(r"(\d+) paths from", done.stdout).group(1))  # type: ignore[union-attr]
    assert sum(1 for ad in written if ad["MyType"] == "LarkPSPath") == paths
    sites = {str(ad["LarkPS_SourceSite"]) for ad in written if ad["MyType"] == "LarkPSPath"}
    assert {str(ad["LarkPS_Site"]) for ad in written if ad["MyType"] == "LarkPSSite"} == sites
    for ad in written:
        assert held[key(ad)]["AuthenticatedIdentity"] == IDENTITY
        assert held[key(ad)]["AuthenticationMethod"] == "IDTOKENS"


@pytest.mark.parametrize("identity", [None, "intruder@minipool"], ids=["no-token", "other-token"])
def test_without_a_granted_token_the_collector_refuses(
    pool: Pool, larkps_install: Install, identity: str | None
):
    name = f"collector-refused-{identity or 'none'}"
    token = None
    if identity is not None:  # a valid token of this pool, for an identity with no grant
        token = pool.job_file(pool.job_dir(name), "other.token", pool.token(identity), mode=0o400)
    config = workspace(pool, name, publish=True, token=token, seed=3)
    done = larkps(pool, larkps_install, "once", "--config", config)
    assert done.returncode == 1, done.stderr[-2000:]
    assert f"collector {pool.collector}: UPDATE_AD_GENERIC failed" in done.stderr
    assert "ads wait in the spool for the next cycle" in done.stdout
    spool = config.parent / "state" / "spool"
    assert (spool / "pending.ads").exists() and not (spool / "published.ads").exists()
    log = (pool.logs / "CollectorLog").read_text()
    who = identity or f"{pool.job_user}@minipool"  # without a token: its own Unix user, by FS
    assert f"PERMISSION DENIED to {who} from host 127.0.0.1 for command 58 " in log
    held = in_collector(pool)
    assert all(differences([ad], held) for ad in ads_file(config))  # none of them arrived


def _sites_of(ad: classad2.ClassAd) -> set[str]:
    names = ("LarkPS_Site", "LarkPS_SourceSite", "LarkPS_DestinationSite")
    return {str(ad[n]) for n in names if n in ad}


def test_invalidation_removes_the_ads_that_vanished(
    pool: Pool, larkps_install: Install, token: Path
):
    """One site's ads leave the set: the publisher a cycle uses must invalidate them.

    Driven through :class:`CollectorPublisher` (what every cycle calls, with its child
    process and the token) with a real cycle's ads, because which paths a later cycle
    still computes from its stored points is the state store's business.
    """
    config = workspace(pool, "collector-invalidate", seed=4)
    done = larkps(pool, larkps_install, "once", "--config", config)
    assert done.returncode == 0, done.stderr[-2000:]
    every = ads_file(config)
    gone_site = str(next(ad["LarkPS_Site"] for ad in every if ad["MyType"] == "LarkPSSite"))
    kept = [ad for ad in every if gone_site not in _sites_of(ad)]
    gone = [ad for ad in every if gone_site in _sites_of(ad)]
    assert kept and gone
    target = CollectorTarget(pool=pool.collector, token_file=str(token))
    publisher = CollectorPublisher(target, Spool(config.parent / "publisher-spool"))
    now = int(time.time())
    assert publisher.publish_text(render_old(every, now)).invalidated == 0
    assert differences(every, in_collector(pool)) == []
    delivery = publisher.publish_text(render_old(kept, now))
    assert (delivery.sent, delivery.invalidated) == (len(kept), len(gone))
    held = in_collector(pool)
    assert differences(kept, held) == []
    assert {key(ad) for ad in gone} & held.keys() == set()


def test_ads_no_longer_refreshed_expire(pool: Pool, larkps_install: Install, token: Path):
    config = workspace(pool, "collector-expiry", publish=True, token=token, lifetime="20s", seed=5)
    done = larkps(pool, larkps_install, "once", "--config", config)
    assert done.returncode == 0, done.stderr[-2000:]
    written = ads_file(config)
    assert {int(ad["ClassAdLifetime"]) for ad in written} == {20}
    assert differences(written, in_collector(pool)) == []
    names = {key(ad) for ad in written}
    wait_until(
        lambda: not names & in_collector(pool).keys(),
        timeout=180,
        what="the collector to drop ads 20 s after their last update",
    )


def test_run_keeps_the_collector_up_to_date_and_stops_on_sigterm(
    pool: Pool, larkps_install: Install, token: Path
):
    config = workspace(pool, "collector-run", publish=True, token=token, interval="10s", seed=6)
    user = {"user": pool.job_user, "group": pool.job_user} if os.geteuid() == 0 else {}
    keep = {k: pool.env[k] for k in ("CONDOR_CONFIG", "PATH", "LD_LIBRARY_PATH")}
    daemon = subprocess.Popen(
        [str(larkps_install.larkps), "run", "--config", str(config)],
        env=keep, cwd="/tmp", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        **user,  # type: ignore[arg-type]
    )  # fmt: skip
    try:

        def second_cycle() -> bool:
            ads = [
                ad
                for ad in pool.ads("-any", "-constraint", 'MyType == "LarkPSSite"')
                if "UpdateSequenceNumber" in ad
            ]
            return any(int(ad["UpdateSequenceNumber"]) >= 1 for ad in ads)

        wait_until(second_cycle, timeout=300, what="a second cycle of larkps run in the collector")
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=120)
    assert daemon.returncode == 0, err[-2000:]
    assert differences(ads_file(config), in_collector(pool)) == []


def test_condor_advertise_takes_the_ads_file(pool: Pool, larkps_install: Install):
    config = workspace(pool, "collector-file", seed=7)
    done = larkps(pool, larkps_install, "once", "--config", config)
    assert done.returncode == 0, done.stderr[-2000:]
    path = config.parent / "state" / "larkps.ads"
    written = ads_file(config)
    sent = pool.run(
        "condor_advertise", "-pool", pool.collector, "-tcp", "-multiple", "UPDATE_AD_GENERIC", path,
        check=False,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    assert f"Sent {len(written)} of {len(written)} ads" in sent.stdout
    held = in_collector(pool)
    assert differences(written, held) == []
    # root's tools authenticate as condor: DAEMON through the pool's ALLOW_WRITE, kept
    # by the snippet where ALLOW_DAEMON was unset
    assert {str(held[key(ad)]["AuthenticatedIdentity"]) for ad in written} == {"condor@minipool"}
