"""DAGMan in a real pool: the limits larkps writes or sends are the limits that hold.

Each DAG has more nodes of the throttled category than the limit, and the pool has
more slots (4) than the limit, with other nodes running beside them: the limit is
what binds. Concurrency is read from the DAG's nodes log, the events DAGMan itself
acts on, and counted here from the text: a node counts from its submit event to
its terminate (or abort) event, which is what DAGMan's throttles count.

larkps runs as root, as an admin's cron would; the DAGs belong to the pool's job
user, who submits them with condor_submit_dag.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from minipool import Pool, minipool, wait_until

SLOTS = 4
SUBMIT = """\
executable = /bin/sleep
arguments = $(secs)
request_memory = 32
queue
"""
_EVENT = re.compile(r"^(\d{3}) \((\d+)\.\d+\.\d+\) ")
_NODE = re.compile(r'DAGNodeName = "([^"]+)"')


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    with minipool(num_cpus=SLOTS) as running:
        yield running


def expected_jobs(bandwidth: float, rate: float, previous: int | None) -> int:
    """The default policy (u 0.8, s 0.9, +2 up per decision) worked out here."""
    target = math.floor(0.8 * 0.9 * bandwidth / rate + 1e-9)
    return target if previous is None else min(target, previous + 2)


@dataclass(frozen=True)
class Event:
    code: str  # 000 submit, 001 execute, 005 terminated, 009 aborted, ...
    cluster: int
    node: str | None  # DAGNodeName, on submit events


def node_events(log: Path) -> list[Event]:
    """The events of a DAG's nodes log, in the order DAGMan wrote (and read) them."""
    events: list[Event] = []
    for block in log.read_text().split("...\n"):
        match = _EVENT.match(block.lstrip("\n"))
        if match:
            node = _NODE.search(block)
            events.append(Event(match[1], int(match[2]), node[1] if node else None))
    return events


def peak(events: list[Event], nodes: set[str] | None = None) -> tuple[int, int]:
    """(most nodes submitted at once, most running at once), of `nodes` or of all."""
    names = {e.cluster: e.node for e in events if e.code == "000"}
    submitted: set[int] = set()
    running: set[int] = set()
    most = (0, 0)
    for event in events:
        if nodes is not None and names.get(event.cluster) not in nodes:
            continue
        if event.code == "000":
            submitted.add(event.cluster)
        elif event.code == "001":
            running.add(event.cluster)
        elif event.code in ("004", "005", "009"):
            running.discard(event.cluster)
            if event.code != "004":
                submitted.discard(event.cluster)
        most = (max(most[0], len(submitted)), max(most[1], len(running)))
    return most


def larkps(pool: Pool, *argv: str | Path) -> tuple[int, str]:
    """``larkps`` as root with the pool's configuration in the environment."""
    done = pool.run(sys.executable, "-m", "larkps", *argv, check=False)
    return done.returncode, done.stdout + done.stderr


def own(pool: Pool, *paths: Path) -> None:
    if os.geteuid() == 0:
        for path in paths:
            shutil.chown(path, pool.job_user, pool.job_user)


def submit_dag(pool: Pool, dag: Path, *options: str) -> int:
    out = pool.as_job_user("condor_submit_dag", *options, dag.name, cwd=dag.parent).stdout
    found = re.search(r"submitted to cluster (\d+)", out)
    assert found, out
    return int(found[1])


def wait_for_dag(dag: Path) -> None:
    """Wait for the DAGMan to exit; it must exit 0 (every node succeeded)."""
    out = Path(f"{dag}.dagman.out")

    def exited() -> str | None:
        text = out.read_text() if out.exists() else ""
        found = re.search(r"EXITING WITH STATUS (\d+)", text)
        return found[1] if found else None

    status = wait_until(exited, 600, f"DAGMan of {dag.name} to exit")
    assert status == "0", out.read_text()[-3000:]


def nodes_text(fetches: list[str], others: list[str]) -> str:
    lines = [f'JOB {n} sleep.sub\nVARS {n} secs="6"' for n in fetches]
    lines += [f'JOB {n} sleep.sub\nVARS {n} secs="20"' for n in others]
    return "\n".join(lines) + "\n"


def test_maxjobs_from_throttle_dag_holds_with_an_include(pool: Pool):
    home = pool.job_dir("dag-include")
    fetches = [f"fetch{i}" for i in range(1, 7)]
    (home / "sleep.sub").write_text(SUBMIT)
    cats = "".join(f"CATEGORY {n} xfer\n" for n in fetches)
    top = home / "top.dag"
    top.write_text(nodes_text(fetches, ["calc1", "calc2"]) + cats + "MAXJOBS xfer 3\n"
                   "INCLUDE limits.dag\n")  # fmt: skip
    limits = home / "limits.dag"
    limits.write_text("# the included line comes later, so DAGMan uses it\nMAXJOBS xfer 1\n")
    own(pool, top, limits)

    code, out = larkps(pool, "throttle", "dag", top, "--category", "xfer", "--in-place",
                       "--bandwidth", "1Gbit", "--per-job-rate", "300Mbit")  # fmt: skip
    jobs = expected_jobs(1e9, 300e6, previous=1)
    assert code == 0, out
    assert f"MAXJOBS xfer {jobs} (was 1 at {limits}:2)" in out
    assert top.read_text().endswith(f"INCLUDE limits.dag\nMAXJOBS xfer {jobs}\n")
    assert (top.stat().st_uid, top.stat().st_mode & 0o777) == (limits.stat().st_uid, 0o644)

    submit_dag(pool, top)
    wait_for_dag(top)
    events = node_events(home / "top.dag.nodes.log")
    assert sum(e.code == "005" for e in events) == 8
    assert peak(events, set(fetches)) == (jobs, jobs)  # reached, never passed
    assert peak(events)[1] > jobs  # the slots allowed more: the limit was what bound


def test_maxjobs_from_throttle_dag_holds_across_splices(pool: Pool):
    home = pool.job_dir("dag-splices")
    (home / "sleep.sub").write_text(SUBMIT)
    part = home / "part.dag"
    part.write_text(nodes_text(["f1", "f2", "f3"], []) + "CATEGORY ALL_NODES +xfer\n"
                    "MAXJOBS +xfer 1\n")  # fmt: skip
    top = home / "top.dag"
    top.write_text("SPLICE one part.dag\nSPLICE two part.dag\n" + nodes_text([], ["calc1"]))
    own(pool, top, part)

    code, out = larkps(pool, "throttle", "dag", top, "--category", "+xfer", "--in-place",
                       "--bandwidth", "1Gbit", "--per-job-rate", "300Mbit")  # fmt: skip
    jobs = expected_jobs(1e9, 300e6, previous=1)
    assert code == 0, out
    assert f"MAXJOBS +xfer {jobs} (was 1 at splice one, {part}:8)" in out

    submit_dag(pool, top)
    wait_for_dag(top)
    events = node_events(home / "top.dag.nodes.log")
    fetches = {f"{s}+{n}" for s in ("one", "two") for n in ("f1", "f2", "f3")}
    assert {e.node for e in events if e.code == "000"} == fetches | {"calc1"}
    assert peak(events, fetches) == (jobs, jobs)
    assert peak(events)[1] > jobs


def test_throttle_running_changes_a_running_dagman(pool: Pool):
    home = pool.job_dir("dag-running")
    (home / "sleep.sub").write_text(SUBMIT)
    nodes = [f"n{i}" for i in range(1, 9)]
    dag = home / "run.dag"
    dag.write_text("".join(f'JOB {n} sleep.sub\nVARS {n} secs="8"\n' for n in nodes))
    own(pool, dag)
    cluster = submit_dag(pool, dag, "-maxjobs", "1")
    log = home / "run.dag.nodes.log"

    def max_jobs() -> str:
        query = ["-all", "-constraint", f"ClusterId == {cluster}", "-af", "DAGMan_MaxJobs"]
        return pool.run("condor_q", *query).stdout.strip()

    wait_until(lambda: max_jobs() == "1", 120, "DAGMan_MaxJobs = 1 in the DAGMan's job ad")
    wait_until(lambda: log.exists() and node_events(log), 120, "the first node's submission")

    # no --previous: larkps reads DAGMan_MaxJobs = 1 and steps up from it (+2), not to
    # the target of 7 it would take for a DAG with no limit yet
    inputs = ["--bandwidth", "1Gbit", "--per-job-rate", "100Mbit"]
    jobs = expected_jobs(1e9, 100e6, previous=1)
    assert jobs < expected_jobs(1e9, 100e6, previous=None)
    code, out = larkps(pool, "throttle", "running", str(cluster), *inputs)
    assert code == 0, out
    assert f"DAGMan {cluster}: would set max_nodes = {jobs} (was 1) (dry run)" in out
    assert max_jobs() == "1"
    before = len(node_events(log))
    code, out = larkps(pool, "throttle", "running", str(cluster), *inputs, "--apply")
    assert code == 0, out
    assert f"DAGMan {cluster}: max_nodes = {jobs} set (was 1): DAGMan_MaxJobs = {jobs}," in out
    wait_until(lambda: max_jobs() == str(jobs), 120, f"DAGMan_MaxJobs = {jobs} in the job ad")

    wait_for_dag(dag)
    events = node_events(log)
    assert sum(e.code == "005" for e in events) == len(nodes)
    assert max(peak(events[:before])) <= 1  # the throttle as submitted
    assert peak(events)[0] == jobs  # after the change: more at once, never more than set
