"""The real negotiator places jobs with larkps advise's requirements and rank.

Four startds in one pool stand for the four sites of the embedded mesh: the pool's
own startd gets its site from the config's site map (the shipped snippet as is),
three more (local names B, C, D) are pinned with ``--site`` as a per-startd
setting. The data site is chosen from ``larkps advise --format json`` so that the
slowest remote site is clearly slower than the next; a deadline between the two
makes the advisor exclude it. Then the placements must follow the advice: the
first jobs fill the data site and the fastest remote site, later ones the next
allowed site, and the excluded site's free slots never run any.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from minipool import COLLECTOR_SNIPPET, Install, Pool, extra_startds, minipool, shipped, wait_until
from published import SITES, Published, etc_dir, publish, wait_for_larkps_slots

SNIPPET = "config/condor/50-larkps-startd-cron.conf"
CONFIG = "/etc/larkps/larkps.toml"
SIZE = "50GB"
SIZE_BYTES = 50 * 10**9
SLOTS_PER_STARTD = 2
PINNED = {"B": SITES[1], "C": SITES[2], "D": SITES[3]}  # local name -> site
MAPPED = SITES[0]  # the pool's own startd: this host's site in the config's map
SLEEP = 900  # the jobs outlive the test (condor_rm at the end): no slot frees up early


@dataclass(frozen=True)
class Setup:
    pool: Pool
    published: Published
    install: Install


@pytest.fixture(scope="module")
def setup(larkps_install: Install) -> Iterator[Setup]:
    etc = etc_dir()
    config = str(etc / "larkps.toml")
    larkps = str(larkps_install.larkps)
    snippet = shipped(SNIPPET, {"/opt/larkps/venv/bin/larkps": larkps, CONFIG: config})
    pinned = {
        name: {"STARTD_CRON_LARKPS_ARGS": f"startd-cron --config {config} --site {site}"}
        for name, site in PINNED.items()
    }
    # a central manager set up as docs/operations.md says, execute nodes with the hook
    extra = shipped(COLLECTOR_SNIPPET, {}) + snippet + "\n" + extra_startds(pinned)
    try:
        with minipool(extra_config=extra, num_cpus=SLOTS_PER_STARTD) as pool:
            published = publish(pool, larkps_install, etc, MAPPED)
            wait_for_larkps_slots(pool, SLOTS_PER_STARTD * (1 + len(PINNED)))
            yield Setup(pool, published, larkps_install)
    finally:
        shutil.rmtree(etc, ignore_errors=True)


def _advise(setup: Setup, data_site: str, *extra: str) -> dict:
    out = setup.pool.run(
        setup.install.larkps, "advise", "--config", setup.published.config,
        "--data-site", data_site, "--input-size", SIZE, "--format", "json", *extra,
    )  # fmt: skip
    return json.loads(out.stdout)


def _remote_rows(advice: dict) -> list[dict]:
    rows = [r for r in advice["rows"] if r["site"] != advice["data_site"]]
    assert all(r["rank"] is not None for r in rows), rows  # all trusted in this mesh
    return sorted(rows, key=lambda r: r["rank"])


def _site_of(remote_host: str) -> str:
    """slotN@HOST for the pool's own startd, slotN@name@HOST for the others."""
    parts = remote_host.split("@")
    if len(parts) == 2:
        return MAPPED
    return PINNED[parts[1].upper()]


@dataclass(frozen=True)
class Plan:
    data_site: str
    advice: dict
    allowed: list[str]  # remote sites the advice lets jobs run at, best first
    excluded: str


@pytest.fixture(scope="module")
def plan(setup: Setup) -> Plan:
    """The data site whose slowest remote site stands out most, and a deadline that
    only that site misses, both from the advisor's own JSON."""
    gaps = {}
    for site in SITES:
        rows = _remote_rows(_advise(setup, site))
        gaps[site] = rows[-2]["transfer_s"] / rows[-1]["transfer_s"], rows
    data_site = min(gaps, key=lambda s: gaps[s][0])
    ratio, rows = gaps[data_site]
    print(f"data site {data_site}: transfer times {[(r['site'], r['transfer_s']) for r in rows]}")
    assert ratio < 0.9, f"no remote site stands out as slow enough: {gaps}"
    deadline = math.ceil(math.sqrt(rows[-2]["transfer_s"] * rows[-1]["transfer_s"]))
    advice = _advise(setup, data_site, "--deadline", f"{deadline}s")
    remote = _remote_rows(advice)
    excluded = [r["site"] for r in remote if r["meets_deadline"] is False]
    assert excluded == [rows[-1]["site"]], remote
    allowed = [r["site"] for r in remote if r["meets_deadline"]]
    return Plan(data_site, advice, allowed, excluded[0])


def _submit(setup: Setup, plan: Plan, name: str, count: int) -> int:
    home = setup.pool.job_dir(name)
    lines = [line for line in plan.advice["submit"] if not line.startswith("#")]
    (home / "job.sub").write_text(
        "\n".join(
            [
                "universe = vanilla",
                "executable = /bin/sleep",
                f"arguments = {SLEEP}",
                "log = job.log",
                "output = job.$(Process).out",
                "error = job.$(Process).err",
                "request_cpus = 1",
                "request_memory = 64",
                "should_transfer_files = NO",
                *lines,
                f"queue {count}",
            ]
        )
        + "\n"
    )
    out = setup.pool.as_job_user("condor_submit", "-terse", "job.sub", cwd=home).stdout
    return int(out.split(".")[0])


def _jobs(pool: Pool, cluster: int) -> list[dict]:
    text = pool.run("condor_q", str(cluster), "-json").stdout
    return json.loads(text) if text.strip() else []


def _running_sites(pool: Pool, cluster: int, count: int) -> list[str] | None:
    jobs = _jobs(pool, cluster)
    running = [j for j in jobs if j.get("JobStatus") == 2 and j.get("RemoteHost")]
    return sorted(_site_of(j["RemoteHost"]) for j in running) if len(running) == count else None


@pytest.fixture(scope="module")
def placements(setup: Setup, plan: Plan) -> Iterator[dict[str, object]]:
    """Two waves of jobs; the second has more jobs than the allowed sites' free slots."""
    pool = setup.pool
    first_count = 2 * SLOTS_PER_STARTD
    first = _submit(setup, plan, "jobs-first", first_count)
    first_sites = wait_until(
        lambda: _running_sites(pool, first, first_count), 120, "the first wave running"
    )
    second_count = 2 * SLOTS_PER_STARTD
    second = _submit(setup, plan, "jobs-second", second_count)
    try:  # a busy machine's negotiator may take a few cycles
        second_sites = wait_until(
            lambda: _running_sites(pool, second, SLOTS_PER_STARTD), 300, "the second wave placed"
        )
        rejected = wait_until(
            lambda: _rejected_idle(pool, second, second_count - SLOTS_PER_STARTD),
            300,
            "the negotiator to turn the rest of the second wave down",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}; {_states(pool, first, second)}") from None
    excluded_slots = [ad for ad in pool.ads() if _site_of(ad["Name"]) == plan.excluded]
    yield {
        "first": first_sites,
        "second": second_sites,
        "rejected": rejected,
        "excluded_slots": excluded_slots,
    }
    pool.as_job_user("condor_rm", str(first), str(second), cwd=pool.job_dir("jobs-first"))


def _states(pool: Pool, *clusters: int) -> str:
    """The jobs' states and hosts, and the slots' states, for a failure's message."""
    jobs = [
        f"{j.get('ClusterId')}.{j.get('ProcId')}:{j.get('JobStatus')}@{j.get('RemoteHost')}"
        for cluster in clusters
        for j in _jobs(pool, cluster)
    ]
    slots = [f"{ad.get('Name')}:{ad.get('State')}" for ad in pool.ads()]
    return f"jobs {jobs}, slots {slots}"


def _rejected_idle(pool: Pool, cluster: int, count: int) -> list[dict] | None:
    """The idle jobs, once the negotiator has considered them and found no match.

    The schedd records the rejection on one job of the cluster (its autocluster's
    representative), so one ``LastRejMatchTime`` stands for all of them.
    """
    idle = [j for j in _jobs(pool, cluster) if j.get("JobStatus") == 1]
    rejected = any(j.get("LastRejMatchTime", 0) >= j.get("QDate", 0) for j in idle)
    return idle if len(idle) == count and rejected else None


def test_the_first_jobs_fill_the_data_site_then_the_best_remote_site(placements, plan):
    expected = sorted([plan.data_site] * SLOTS_PER_STARTD + [plan.allowed[0]] * SLOTS_PER_STARTD)
    assert placements["first"] == expected


def test_later_jobs_go_to_the_next_allowed_site(placements, plan):
    assert len(plan.allowed) == 2
    assert placements["second"] == [plan.allowed[1]] * SLOTS_PER_STARTD


def test_the_excluded_site_stays_free_while_jobs_wait(placements, plan):
    assert placements["rejected"]
    slots = placements["excluded_slots"]
    assert len(slots) == SLOTS_PER_STARTD
    assert all(slot["State"] == "Unclaimed" for slot in slots), [s["State"] for s in slots]
    assert all(slot["LarkPS_Site"] == plan.excluded for slot in slots)


def test_the_excluded_startd_never_was_claimed(setup, placements, plan):
    """Its own log: no slot of it ever left Unclaimed for a match or a claim."""
    name = next((n for n, site in PINNED.items() if site == plan.excluded), None)
    log = setup.pool.logs / ("StartLog" if name is None else f"StartLog.{name.lower()}")
    changes = [line for line in log.read_text().splitlines() if "Changing state:" in line]
    assert any("-> Unclaimed" in line for line in changes)
    assert not [line for line in changes if "Matched" in line or "Claimed" in line]


def test_each_startd_stands_for_its_site(setup):
    slots = setup.pool.ads("-constraint", "MiniPool_Ready =?= true")
    assert len(slots) == SLOTS_PER_STARTD * len(SITES)
    assert {(s["Name"], s["LarkPS_Site"]) for s in slots} == {
        (s["Name"], _site_of(s["Name"])) for s in slots
    }
    assert sorted(s["LarkPS_Site"] for s in slots) == sorted(SITES * SLOTS_PER_STARTD)
