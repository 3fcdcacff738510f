"""The job-network ledger: what a run leaves in it, crash safety, upgrades, file safety."""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from larkps.config.jobnet import Mode, Policy
from larkps.jobnet.accounting import Counter
from larkps.jobnet.ledger import (
    JobObject,
    Ledger,
    LedgerFile,
    LedgerRecorder,
    ProcessId,
    as_owner,
    ledger_files,
    process_start,
    read_runs,
    writer_path,
)
from larkps.jobnet.request import JobPlan
from larkps.jobnet.schema import LEDGER_STEPS, LEDGER_VERSION, LedgerError

FIXTURE_V1 = Path(__file__).parent / "fixtures" / "ledger-v1.sqlite"
NOBODY = 65534


def plan(job_id: str = "41.0", owner: str = "alice", rate: int | None = 100_000_000) -> JobPlan:
    return JobPlan(job_id, owner, Mode.PRIVILEGED, Policy.NAT, rate_bps=rate)


def test_a_run_is_recorded_at_start_and_closed_at_end(tmp_path: Path):
    path = tmp_path / "ledger.sqlite"
    clock = iter([1000.0, 1060.5])
    recorder = LedgerRecorder(path, clock=lambda: next(clock))
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        recorder.start(
            plan(),
            [{"kind": "netns", "name": "larkps-41-0"}, JobObject("process", str(sleeper.pid))],
        )
        with Ledger(path) as ledger:
            (open_run,) = ledger.open_runs()
            assert ledger.runs()[0].ended is None
        assert open_run.process == ProcessId.of(os.getpid())
        assert open_run.process.alive()
        names = [(o.kind, o.name) for _, o, _ in open_run.objects]
        assert names == [
            ("netns", "larkps-41-0"),
            ("process", f"{sleeper.pid} {process_start(sleeper.pid)}"),  # pid + start time
        ]
        recorder.end(plan(), 3, {("out", "elsewhere"): (5000, 7), ("in", "same-site"): (900, 4)})
    finally:
        sleeper.kill()
        sleeper.wait()
    with Ledger(path) as ledger:
        (run,) = ledger.runs()
        assert ledger.open_runs() == []
    assert (run.job_id, run.owner, run.mode, run.policy, run.rate_bps) == (
        "41.0", "alice", "privileged", "nat", 100_000_000,
    )  # fmt: skip
    assert (run.started, run.ended, run.exit_status) == (1000.0, 1060.5, 3)
    assert set(run.counters) == {
        Counter("out", "elsewhere", 5000, 7),
        Counter("in", "same-site", 900, 4),
    }


def test_ending_a_job_that_never_started_is_an_error(tmp_path: Path):
    with pytest.raises(LedgerError, match="no run started"):
        LedgerRecorder(tmp_path / "l.sqlite").end(plan(), 0, {})


def test_a_reused_pid_or_another_boot_is_not_the_run():
    me = ProcessId.of(os.getpid())
    assert me.alive()
    assert not ProcessId(me.pid, me.start + 1, me.boot).alive()
    assert not ProcessId(me.pid, me.start, "another-boot").alive()
    child = subprocess.Popen(["true"])
    child.wait()
    assert process_start(child.pid) is None


# -- crash safety ---------------------------------------------------------------------
WRITER = textwrap.dedent(
    """
    import sys, os
    from pathlib import Path
    from larkps.jobnet.accounting import Counter
    from larkps.jobnet.ledger import JobObject, Ledger, ProcessId
    path, hold = Path(sys.argv[1]), sys.argv[2] == "hold"
    me = ProcessId.of(os.getpid())
    objects = [JobObject("netns", f"larkps-9-{i}") for i in range(5)]
    counters = [Counter("in", "elsewhere", 10, 1), Counter("out", "same-site", 20, 2)]
    with Ledger(path) as ledger:
        for n in range(10**6):
            if hold and n == 3:
                db = ledger.connection
                db.execute("BEGIN IMMEDIATE")
                db.execute("INSERT INTO runs (job_id, owner, mode, policy, pid, pid_start, "
                           "boot_id, started) VALUES ('uncommitted', 'x', 'm', 'p', 1, 1, 'b', 0)")
                print("holding", flush=True)
                os.kill(os.getpid(), 19)  # SIGSTOP: the parent kills it mid-transaction
            run = ledger.start_run(f"{n}.0", "bob", "rootless", "nat", None, me, objects, n)
            ledger.end_run(run, 0, counters, n + 1.0)
            print(run, flush=True)
    """
)


def writer(path: Path, hold: bool) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), "hold" if hold else "loop"],
        stdout=subprocess.PIPE,
        text=True,
    )


def check_whole(path: Path, committed: set[int]) -> None:
    """The file opens, is intact, holds every committed run, and only whole runs."""
    with Ledger(path) as ledger:
        assert ledger.connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        runs = {r.run_id: r for r in ledger.runs()}
        objects = dict(
            ledger.connection.execute("SELECT run_id, count(*) FROM objects GROUP BY run_id")
        )
    assert committed <= set(runs)
    assert all(r.job_id != "uncommitted" for r in runs.values())
    for run_id, run in runs.items():  # a run is there whole, or not at all
        assert objects.get(run_id) == 5
        if run.ended is not None:
            assert len(run.counters) == 2


def test_kill_9_in_the_middle_of_a_transaction_loses_nothing_committed(tmp_path: Path):
    path = tmp_path / "ledger.sqlite"
    child = writer(path, hold=True)
    assert child.stdout is not None
    committed = set()
    for line in child.stdout:
        if line.strip() == "holding":
            break
        committed.add(int(line))
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert len(committed) == 3
    check_whole(path, committed)
    with Ledger(path) as ledger:  # nothing stays locked: the next writer writes at once
        ledger.start_run(
            "after", "bob", "rootless", "nat", None, ProcessId.of(os.getpid()), [], 1.0
        )


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_nothing_committed(tmp_path: Path):
    path = tmp_path / "ledger.sqlite"
    rng = random.Random(16)
    committed: set[int] = set()
    for _ in range(8):
        child = writer(path, hold=False)
        assert child.stdout is not None
        time.sleep(rng.uniform(0.2, 0.8))
        child.send_signal(signal.SIGKILL)
        committed.update(int(line) for line in child.stdout if line.strip())
        child.wait()
        check_whole(path, committed)
    assert len(committed) > 8


# -- versions -------------------------------------------------------------------------
def make_v1_fixture(path: Path) -> None:
    """How tests/jobnet/fixtures/ledger-v1.sqlite was made (a larkps of ledger version 1)."""
    with Ledger(path, steps=LEDGER_STEPS[:1]) as ledger, ledger.transaction() as db:
        db.execute(
            "INSERT INTO runs (job_id, owner, mode, policy, rate_bps, pid, pid_start, boot_id, "
            "started, ended, exit_status, objects) VALUES "
            "('7.0', 'alice', 'privileged', 'bridge', 50000000, 4242, 99, 'old-boot', 100.0, "
            '160.0, 0, \'[{"kind": "netns", "name": "larkps-7-0"}, '
            '{"kind": "link", "name": "lk7a"}]\'), '
            "('8.0', 'bob', 'rootless', 'nat', NULL, 4343, 98, 'old-boot', 200.0, NULL, NULL, "
            '\'[{"kind": "process", "name": "4344 97"}]\')'
        )
        db.execute(
            "INSERT INTO counters VALUES (1, 'in', 'same-site', 1000, 10), "
            "(1, 'out', 'elsewhere', 2000, 20)"
        )
    db = sqlite3.connect(path)  # one file: reading it makes no -wal or -shm beside it
    db.execute("PRAGMA journal_mode = DELETE")
    db.close()


def test_the_committed_v1_fixture_is_what_version_1_wrote(tmp_path: Path):
    made = tmp_path / "v1.sqlite"
    make_v1_fixture(made)
    contents = []
    for path in (FIXTURE_V1, made):
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1
        assert "objects" in [r[1] for r in db.execute("PRAGMA table_info(runs)")]
        assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 2
        tables = ("runs", "counters")
        contents.append([db.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in tables])
        db.close()
    assert contents[0] == contents[1]
    assert sorted(p.name for p in FIXTURE_V1.parent.iterdir()) == ["ledger-v1.sqlite"]


def test_a_version_1_ledger_is_upgraded_with_every_run_kept(tmp_path: Path):
    path = tmp_path / "ledger.sqlite"
    shutil.copy(FIXTURE_V1, path)
    with Ledger(path) as ledger:
        version = ledger.connection.execute("PRAGMA user_version").fetchone()[0]
        runs = ledger.runs()
        open_runs = ledger.open_runs()
        closed_by = dict(ledger.connection.execute("SELECT job_id, closed_by FROM runs"))
    assert version == LEDGER_VERSION == 2
    assert [(r.job_id, r.ended, r.exit_status) for r in runs] == [
        ("7.0", 160.0, 0),
        ("8.0", None, None),
    ]
    assert set(runs[0].counters) == {
        Counter("in", "same-site", 1000, 10),
        Counter("out", "elsewhere", 2000, 20),
    }
    assert closed_by == {"7.0": "wrapper", "8.0": None}
    (still_open,) = open_runs
    assert still_open.job_id == "8.0"
    assert still_open.process == ProcessId(4343, 98, "old-boot")
    assert [(s, o.kind, o.name) for s, o, _ in still_open.objects] == [(0, "process", "4344 97")]
    with Ledger(path) as ledger:
        objects = ledger.connection.execute(
            "SELECT run_id, seq, kind, name FROM objects ORDER BY run_id, seq"
        ).fetchall()
    assert objects == [
        (1, 0, "netns", "larkps-7-0"),
        (1, 1, "link", "lk7a"),
        (2, 0, "process", "4344 97"),
    ]


def test_a_ledger_of_a_newer_larkps_is_refused_and_left_alone(tmp_path: Path):
    path = tmp_path / "ledger.sqlite"
    Ledger(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {LEDGER_VERSION + 1}")
    db.close()
    before = path.read_bytes()
    with pytest.raises(LedgerError) as caught:
        Ledger(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message == (
        f"ledger {path} has schema version 3, newer than this larkps knows (2): "
        "read it with the larkps that wrote it"
    )
    assert path.read_bytes() == before


# -- who writes where -----------------------------------------------------------------
def test_a_symlink_or_hard_link_is_never_opened(tmp_path: Path):
    target = tmp_path / "elsewhere"
    target.write_text("precious")
    link = tmp_path / "ledger.sqlite"
    link.symlink_to(target)
    with pytest.raises(LedgerError, match="cannot open ledger"):
        Ledger(link)
    link.unlink()
    os.link(target, link)
    with pytest.raises(LedgerError, match="not a plain file"):
        Ledger(link)
    assert target.read_text() == "precious"


def test_a_planted_wal_link_is_refused(tmp_path: Path):
    target = tmp_path / "precious"
    target.write_text("keep")
    Path(str(tmp_path / "ledger.sqlite") + "-wal").symlink_to(target)
    with pytest.raises(LedgerError, match="-wal is not a plain file"):
        Ledger(tmp_path / "ledger.sqlite")
    assert target.read_text() == "keep"


def test_a_directory_others_can_write_is_refused(tmp_path: Path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    with pytest.raises(LedgerError, match="writable by others"):
        Ledger(shared / "ledger.sqlite", create=False)


def test_the_directory_owner_writes_the_configured_file(tmp_path: Path):
    configured = tmp_path / "ledger.sqlite"
    assert writer_path(configured) == configured
    assert writer_path(configured, uid=4321) == tmp_path / "ledger.4321" / "ledger.sqlite"


@pytest.fixture
def sticky_dir() -> Iterator[Path]:
    """A 1777 ledger directory that every user can reach."""
    top = Path(tempfile.mkdtemp(prefix="larkps-ledger-"))
    top.chmod(0o755)
    jobnet = top / "jobnet"
    jobnet.mkdir()
    jobnet.chmod(0o1777)
    yield jobnet / "ledger.sqlite"
    shutil.rmtree(top)


root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")


@root_only
def test_job_users_write_their_own_file_root_reads_them_all(sticky_dir: Path):
    configured = sticky_dir

    def record() -> str:
        recorder = LedgerRecorder(configured, clock=lambda: 5.0)
        recorder.start(plan("50.0", "nobody", None), [])
        recorder.end(plan("50.0", "nobody", None), 0, {("out", "elsewhere"): (77, 1)})
        return str(recorder.path)

    written = Path(as_owner(NOBODY, record))
    assert written == configured.parent / f"ledger.{NOBODY}" / "ledger.sqlite"
    st = os.stat(written.parent)
    assert (st.st_uid, st.st_mode & 0o777) == (NOBODY, 0o755)
    assert os.stat(written).st_uid == NOBODY
    LedgerRecorder(configured, clock=lambda: 6.0).start(
        plan("51.0", "root"), []
    )  # root: the sticky dir is others'
    files = ledger_files(configured)
    assert {(f.path, f.uid) for f in files} == {
        (written, NOBODY), (configured.parent / "ledger.0" / "ledger.sqlite", 0),
    }  # fmt: skip
    runs = [r for f in files for r in read_runs(f)]  # nobody's file read as nobody
    assert sorted((r.job_id, r.owner) for r in runs) == [("50.0", "nobody"), ("51.0", "root")]
    assert os.stat(written).st_uid == NOBODY  # root made no file of its own in nobody's dir
    assert all(os.stat(p).st_uid == NOBODY for p in written.parent.iterdir())


@root_only
def test_a_directory_planted_by_another_user_is_refused(sticky_dir: Path):
    planted = sticky_dir.parent / f"ledger.{NOBODY}"
    planted.mkdir()  # made by root, not by nobody

    def record() -> None:
        LedgerRecorder(sticky_dir).start(plan("52.0", "nobody"), [])

    with pytest.raises(LedgerError, match=f"owned by uid 0, not by this user \\(uid {NOBODY}\\)"):
        as_owner(NOBODY, record)


def test_someone_elses_file_is_not_read_without_root(tmp_path: Path):
    if os.geteuid() == 0:
        pytest.skip("root may read any file (as its owner)")
    with pytest.raises(LedgerError, match="read it as root or as that user"):
        read_runs(LedgerFile(tmp_path / "x", os.geteuid() + 1))


@dataclass(frozen=True)
class Count:  # what the rules read back from nft: bytes and packets of one counter
    bytes: int
    packets: int


@dataclass(frozen=True)
class NftCounters:
    accepted: dict[tuple[str, str], Count]
    refused: dict[str, Count]


def test_the_wrappers_forms_of_objects_and_counters(tmp_path: Path):
    """A mapping of {kind or *pid: name} as the rootless wrapper passes it, and counters
    as an object whose ``accepted`` maps (direction, class) to a count."""
    path = tmp_path / "ledger.sqlite"
    recorder = LedgerRecorder(path)
    helper = subprocess.Popen(["sleep", "30"])
    gone = subprocess.Popen(["true"])
    gone.wait()
    try:
        objects = {"net": "pasta", "pid": str(os.getpid()), "net_pid": str(helper.pid),
                   "old_pid": str(gone.pid), "netns": "4026532999"}  # fmt: skip
        recorder.start(plan("60.0"), objects)
        recorder.start(plan("60.0"), [{"kind": "link", "name": "lk60"}])  # added later
    finally:
        helper.kill()
        helper.wait()
    with Ledger(path) as ledger:
        (run,) = ledger.open_runs()
    assert [(o.kind, o.name.split()[0]) for _, o, _ in run.objects] == [
        ("process", str(os.getpid())),
        ("process", str(helper.pid)),  # the ended one is nothing to clean up
        ("netns", "4026532999"),
        ("link", "lk60"),
    ]
    counted = NftCounters(
        {("out", "elsewhere"): Count(300, 3), ("in", "elsewhere"): Count(100, 1),
         ("out", "same-site"): Count(0, 0)},
        {"in": Count(60, 1)},
    )  # fmt: skip
    recorder.end(plan("60.0"), -9, counted)
    with Ledger(path) as ledger:
        (done,) = ledger.runs()
    assert done.exit_status == -9
    assert set(done.counters) == {
        Counter("out", "elsewhere", 300, 3),
        Counter("in", "elsewhere", 100, 1),
        Counter("out", "same-site", 0, 0),
    }


def test_the_privileged_helpers_forms_of_objects_and_counters(tmp_path: Path):
    """(kind, name) pairs with its kind names, and the totals of the job's veth."""
    path = tmp_path / "ledger.sqlite"
    recorder = LedgerRecorder(path)
    made = [("netns", "larkps-61-0"), ("veth", "lk0123456789"),
            ("nft", "bridge larkps_61_0"), ("lease", "/run/larkps/leases 61.0")]  # fmt: skip
    recorder.start(plan("61.0"), made)
    with Ledger(path) as ledger:
        (run,) = ledger.open_runs()
    assert [(o.kind, o.name) for _, o, _ in run.objects] == [
        ("netns", "larkps-61-0"),
        ("link", "lk0123456789"),
        ("nft-table", "bridge larkps_61_0"),
    ]
    totals = {"bytes_sent": 5000, "packets_sent": 50, "bytes_received": 7000,
              "packets_received": 70}  # fmt: skip
    recorder.end(plan("61.0"), 0, totals)
    with Ledger(path) as ledger:
        (done,) = ledger.runs()
    assert set(done.counters) == {
        Counter("out", "unclassified", 5000, 50),
        Counter("in", "unclassified", 7000, 70),
    }


def test_a_file_that_is_no_sqlite_file_is_not_touched(tmp_path: Path):
    other = tmp_path / "notes.txt"
    other.write_text("not a ledger\n")
    with pytest.raises(LedgerError, match="is not a ledger"):
        Ledger(other, create=False)
    assert other.read_text() == "not a ledger\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_two_openers_of_an_old_ledger_upgrade_it_once(tmp_path: Path):
    """The second opener, once it holds the write lock, finds the new version."""
    from larkps.jobnet.schema import upgrade_ledger

    path = tmp_path / "ledger.sqlite"
    shutil.copy(FIXTURE_V1, path)
    first = sqlite3.connect(path, isolation_level=None)
    first.execute("BEGIN IMMEDIATE")
    upgrade_ledger(first, path)
    upgrade_ledger(first, path)  # what a second opener does after the first committed
    first.execute("COMMIT")
    first.close()
    with Ledger(path) as ledger:
        assert ledger.connection.execute("PRAGMA user_version").fetchone()[0] == LEDGER_VERSION
        assert len(ledger.runs()) == 2
        assert ledger.connection.execute("SELECT count(*) FROM objects").fetchone()[0] == 3
