"""gc against real namespaces, veth pairs, nft tables, qdiscs and processes made here.

Needs root and iproute2 + nftables. Every name carries this run's random cluster
number, and gc's untracked scan is narrowed to those names, so other work on the
machine is never touched.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from larkps.cli.app import main
from larkps.jobnet.gc import Prefixes, collect
from larkps.jobnet.ledger import (
    JobObject,
    Ledger,
    LedgerFile,
    ProcessId,
    as_owner,
    ledger_files,
    process_start,
    writer_path,
)

NOBODY = 65534


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create network namespaces, links and nft tables"
    for tool in ("ip", "nft", "tc", "sleep"):
        if shutil.which(tool) is None:
            return f"needs {tool} (Debian packages iproute2, nftables)"
    return None


_reason = _missing()
if _reason:
    pytest.skip(_reason, allow_module_level=True)
pytestmark = pytest.mark.root


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


@dataclass
class Made:
    cluster: int
    prefixes: Prefixes
    processes: list[subprocess.Popen[bytes]]

    def netns(self, proc: int) -> str:
        return f"larkps-{self.cluster}-{proc}"

    def link(self, proc: int) -> str:
        return f"lk{self.cluster}h{proc}"

    def table(self, proc: int) -> str:
        return f"larkps_{self.cluster}_{proc}"

    def job(self, proc: int) -> str:
        return f"{self.cluster}.{proc}"

    def network(self, proc: int) -> list[JobObject]:
        """A job's namespace, a veth pair into it (198.18.x.x), an nft table and a tbf."""
        ns, link = self.netns(proc), self.link(proc)
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", link, "type", "veth", "peer", "name", f"lk{self.cluster}j{proc}")
        sh("ip", "link", "set", f"lk{self.cluster}j{proc}", "netns", ns)
        sh("ip", "addr", "add", f"198.18.{200 + proc}.1/30", "dev", link)
        sh("ip", "link", "set", link, "up")
        sh(
            "tc",
            "qdisc",
            "replace",
            "dev",
            link,
            "root",
            "tbf",
            "rate",
            "10mbit",
            "burst",
            "20000",
            "latency",
            "50ms",
        )
        sh("nft", "add", "table", "inet", self.table(proc))
        return [
            JobObject("netns", ns),
            JobObject("link", link),
            JobObject("qdisc", link),
            JobObject("nft-table", f"inet {self.table(proc)}"),
        ]

    def sleeper(self, user: int | None = None) -> subprocess.Popen[bytes]:
        child = subprocess.Popen(["sleep", "300"], user=user)
        self.processes.append(child)
        return child


@pytest.fixture
def made() -> Iterator[Made]:
    cluster = random.randint(100000, 999999)
    prefixes = Prefixes(f"larkps-{cluster}-", f"lk{cluster}", f"larkps_{cluster}_")
    state = Made(cluster, prefixes, [])
    yield state
    for child in state.processes:
        child.kill()
        child.wait()
    for proc in range(6):
        for argv in (
            ("ip", "link", "del", state.link(proc)),
            ("ip", "netns", "del", state.netns(proc)),
            ("nft", "delete", "table", "inet", state.table(proc)),
        ):
            subprocess.run(argv, capture_output=True, check=False)


def dead_process() -> ProcessId:
    child = subprocess.Popen(["true"])
    found = ProcessId.of(child.pid) if process_start(child.pid) else None
    child.wait()
    return found or ProcessId(child.pid, 1, ProcessId.of(os.getpid()).boot)


def exists() -> dict[str, set[str]]:
    netns = {n["name"] for n in json.loads(sh("ip", "-j", "netns", "list") or "[]")}
    links = {n["ifname"] for n in json.loads(sh("ip", "-j", "link", "show"))}
    tables = {
        t["table"]["name"]
        for t in json.loads(sh("nft", "-j", "list", "tables"))["nftables"]
        if "table" in t
    }
    return {"netns": netns, "link": links, "table": tables}


def root_kind(dev: str) -> str | None:
    shown = json.loads(sh("tc", "-j", "qdisc", "show", "dev", dev))
    return next((q["kind"] for q in shown if q.get("root")), None)


def later() -> float:
    return time.time() + 120  # past the grace period of freshly made namespaces


def test_a_dead_runs_objects_go_a_live_runs_stay(made: Made, tmp_path: Path):
    path = tmp_path / "ledger.sqlite"
    me = ProcessId.of(os.getpid())  # the live run's supervisor: this test
    live_helper, dead_helper = made.sleeper(), made.sleeper()
    with Ledger(path) as ledger:
        untracked_table = JobObject("nft-table", f"inet {made.table(0)}")
        live_objects = [o for o in made.network(0) if o != untracked_table]
        live_objects.append(JobObject("process", str(live_helper.pid)))
        live = ledger.start_run(
            made.job(0), "alice", "privileged", "bridge", 10**7, me, live_objects, 1.0
        )
        dead_objects = [*made.network(1), JobObject("process", str(dead_helper.pid))]
        dead = ledger.start_run(
            made.job(1), "bob", "privileged", "nat", None, dead_process(), dead_objects, 2.0
        )
        # an earlier run of the live job, dead, naming the namespace the live run now owns
        rerun = ledger.start_run(
            made.job(0),
            "alice",
            "privileged",
            "bridge",
            None,
            dead_process(),
            [JobObject("netns", made.netns(0))],
            0.5,
        )
    made.network(2)  # untracked, its job has no run: goes
    sh("nft", "add", "table", "inet", made.table(3))  # untracked, job 3: goes
    files = [LedgerFile(path, 0)]

    report = collect(files, dry_run=True, prefixes=made.prefixes, clock=later)
    assert {(a.kind, a.name) for a in report.actions if a.outcome == "would remove"} >= {
        ("netns", made.netns(1)),
        ("netns", made.netns(2)),
        ("process", f"{dead_helper.pid} {process_start(dead_helper.pid)}"),
    }
    assert made.netns(1) in exists()["netns"]  # a dry run removes nothing
    assert dead_helper.poll() is None
    assert report.closed == []

    report = collect(files, prefixes=made.prefixes, clock=later)
    assert not report.failed, report
    after = exists()
    # the live run's objects, and everything of its job, are untouched
    assert made.netns(0) in after["netns"]
    assert made.link(0) in after["link"]
    assert made.table(0) in after["table"]
    assert root_kind(made.link(0)) == "tbf"
    assert live_helper.poll() is None
    # the dead run's and the untracked ones are gone
    assert made.netns(1) not in after["netns"] and made.link(1) not in after["link"]
    assert made.table(1) not in after["table"]
    assert made.netns(2) not in after["netns"] and made.table(2) not in after["table"]
    assert made.link(2) not in after["link"]
    assert made.table(3) not in after["table"]
    assert dead_helper.wait(timeout=10) == -9
    outcomes = {(a.kind, a.name): a.outcome for a in report.actions}
    assert outcomes[("netns", made.netns(0))] == "kept"  # named by the dead earlier run
    assert outcomes[("nft-table", f"inet {made.table(0)}")] == "kept"
    assert {r for _, r, _ in report.closed} == {dead, rerun}
    assert [r for _, r, _ in report.live] == [live]
    with Ledger(path) as ledger:
        closed = dict(ledger.connection.execute("SELECT id, closed_by FROM runs"))
        removed = ledger.connection.execute(
            "SELECT count(*) FROM objects WHERE run_id = ? AND removed IS NOT NULL", (dead,)
        ).fetchone()[0]
        assert [r.run_id for r in ledger.open_runs()] == [live]
    assert closed == {live: None, dead: "gc", rerun: "gc"}
    assert removed == len(dead_objects)

    again = collect(files, prefixes=made.prefixes, clock=later)  # nothing left to do
    assert [a for a in again.actions if a.outcome not in ("kept",)] == []


def test_a_fresh_untracked_namespace_is_given_time(made: Made):
    made.network(4)
    report = collect([], prefixes=made.prefixes)
    outcomes = {(a.kind, a.name): a.outcome for a in report.actions}
    assert outcomes == {
        ("netns", made.netns(4)): "kept",
        ("link", made.link(4)): "kept",  # its peer is in that namespace
        ("nft-table", f"inet {made.table(4)}"): "kept",  # its job's namespace is that one
    }
    assert made.netns(4) in exists()["netns"]
    report = collect([], prefixes=made.prefixes, clock=later)
    assert {a.outcome for a in report.actions} == {"removed"}
    assert made.netns(4) not in exists()["netns"]


@pytest.fixture
def sticky_ledger() -> Iterator[Path]:
    top = Path(os.path.realpath(os.environ.get("TMPDIR", "/tmp"))) / f"larkps-gc-{os.getpid()}"
    top.mkdir(mode=0o755)
    top.chmod(0o1777)
    yield top / "ledger.sqlite"
    shutil.rmtree(top)


def test_a_job_users_ledger_is_trusted_for_that_users_processes_only(
    made: Made, sticky_ledger: Path
):
    made.network(5)  # a root-made namespace the user's ledger claims
    theirs, not_theirs = made.sleeper(user=NOBODY), made.sleeper()
    gone = ProcessId.of(os.getpid())  # alive, but root's: not a supervisor nobody can claim
    objects = [
        ["process", str(theirs.pid)],
        ["process", str(not_theirs.pid)],
        ["netns", made.netns(5)],
    ]

    supervisor, helper = made.sleeper(user=NOBODY), made.sleeper(user=NOBODY)
    live_objects = [JobObject("process", str(helper.pid))]

    def record() -> list[int]:
        with Ledger(writer_path(sticky_ledger)) as ledger:
            items = [JobObject(k, n) for k, n in objects]
            dead = ledger.start_run(
                made.job(5), "nobody", "rootless", "nat", None, gone, items, 1.0
            )
            live = ledger.start_run(
                "99.0",
                "nobody",
                "rootless",
                "nat",
                None,
                ProcessId.of(supervisor.pid),
                live_objects,
                2.0,
            )
            return [dead, live]

    run_id, live_id = as_owner(NOBODY, record)
    files = ledger_files(sticky_ledger)
    assert [f.uid for f in files] == [NOBODY]
    report = collect(files, prefixes=Prefixes("none-", "none", "none_"), clock=later)
    outcomes = {a.name.split()[0]: (a.outcome, a.reason) for a in report.actions}
    assert outcomes[str(theirs.pid)][0] == "removed"
    assert outcomes[str(not_theirs.pid)] == (
        "left alone",
        f"process {not_theirs.pid} does not run as uid {NOBODY}, whose ledger names it",
    )
    assert outcomes[made.netns(5)] == (
        "left alone",
        f"a netns named in uid {NOBODY}'s ledger is not trusted",
    )
    assert theirs.wait(timeout=10) == -9
    assert not_theirs.poll() is None
    assert made.netns(5) in exists()["netns"]
    assert [r for _, r, _ in report.live] == [live_id]  # its supervisor runs as nobody
    assert helper.poll() is None
    assert [r for _, r, _ in report.closed] == [run_id]  # closed in nobody's file, as nobody
    (path,) = [f.path for f in files]
    assert all(os.stat(p).st_uid == NOBODY for p in path.parent.iterdir())


def test_the_command_dry_run(made: Made, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as ledger:
        ledger.start_run(
            made.job(1),
            "bob",
            "privileged",
            "nat",
            None,
            dead_process(),
            [JobObject("netns", made.netns(1))],
            2.0,
        )
    code = main(["jobnet", "gc", "--ledger", str(path), "--dry-run", "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    assert doc["dry_run"] is True
    mine = [a for a in doc["actions"] if a["job_id"] == made.job(1)]
    assert mine == [
        {
            "kind": "netns",
            "name": made.netns(1),
            "outcome": "absent",
            "reason": "already gone",
            "job_id": made.job(1),
            "ledger": str(path),
            "run_id": 1,
        }
    ]
    assert doc["closed"] == []
    code = main(["jobnet", "gc", "--ledger", str(path), "--dry-run"])
    out = capsys.readouterr().out
    assert f"absent: netns {made.netns(1)} (job {made.job(1)}): already gone" in out
    assert out.splitlines()[-1].endswith("would be removed; 0 live runs left alone")


SUPERVISOR = """
import sys, time
from pathlib import Path
from larkps.config.jobnet import Mode, Policy
from larkps.jobnet.ledger import LedgerRecorder
from larkps.jobnet.request import JobPlan
ledger, job, objects = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
plan = JobPlan(job, "alice", Mode.PRIVILEGED, Policy.BRIDGE, rate_bps=10**7)
pairs = [tuple(o.split("=", 1)) for o in objects]
LedgerRecorder(ledger).start(plan, pairs)
print("recorded", flush=True)
time.sleep(300)
"""


def test_a_supervisor_killed_with_sigkill_leaves_nothing_after_gc(made: Made, tmp_path: Path):
    """A supervisor records its run as the helper does, then dies by SIGKILL: gc removes
    its namespace, veth pair, nft table, tbf and helper process, and closes the run."""
    made.network(0)
    helper = made.sleeper()
    objects = [
        f"netns={made.netns(0)}",
        f"veth={made.link(0)}",
        f"nft=inet {made.table(0)}",
        f"qdisc={made.link(0)}",
        f"process={helper.pid}",
    ]
    path = tmp_path / "ledger.sqlite"
    supervisor = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR, str(path), made.job(0), *objects],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert supervisor.stdout is not None
    assert supervisor.stdout.readline().strip() == "recorded"
    report = collect([LedgerFile(path, 0)], prefixes=made.prefixes, clock=later)
    assert [a for a in report.actions if a.outcome != "kept"] == []  # alive: all stays
    assert made.netns(0) in exists()["netns"]
    supervisor.kill()
    supervisor.wait()
    report = collect([LedgerFile(path, 0)], prefixes=made.prefixes, clock=later)
    assert not report.failed, report
    assert {(a.kind, a.outcome) for a in report.actions} == {
        ("process", "removed"),
        ("qdisc", "removed"),
        ("nft-table", "removed"),
        ("link", "removed"),
        ("netns", "removed"),
    }
    after = exists()
    assert made.netns(0) not in after["netns"]
    assert made.link(0) not in after["link"]
    assert made.table(0) not in after["table"]
    assert helper.wait(timeout=10) == -9
    with Ledger(path) as ledger:
        assert ledger.open_runs() == []
        (run,) = ledger.runs()
    assert run.ended is not None and run.exit_status is None
