"""The node's job-network ledger: one SQLite file per writer (WAL, explicit transactions).

A run row is written when a job's network is set up (job id, owner, mode, policy,
rate, the supervising process as pid + start time + boot id, and the objects it
made) and closed when the job ends (exit status, counters per direction and
destination class), or by gc after a crash. A crash at any moment loses nothing
committed. The file has its own schema version (``PRAGMA user_version``, ordered
steps in :mod:`larkps.jobnet.schema`, all run in one transaction when the file is
opened, to write or to read); a file of a newer larkps is refused.

Who writes where: the configured ``ledger`` path is written by the owner of its
directory (root, in privileged mode). Anyone else (the job users of rootless mode)
writes ``<dir>/<stem>.<uid>/<name>``, a directory of their own made inside the
configured one, which the admin then makes mode 1777 (sticky: nobody removes or
renames another's entry). Every file is opened only after its directory was opened
with O_NOFOLLOW and found to be owned by the writer and writable by nobody else, and
the file itself with O_NOFOLLOW and found to be a regular file of the writer's, so
nobody can plant a symlink where the writer (or SQLite's -wal and -shm beside it)
would follow it. A file of another user is never opened by path: root reads and
closes runs in it from a child process running as that user (:func:`as_owner`).
"""

from __future__ import annotations

import json
import os
import pwd
import sqlite3
import stat
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from larkps.jobnet.accounting import Counter, RunRecord, counters_from
from larkps.jobnet.request import JobPlan
from larkps.jobnet.schema import (
    LEDGER_STEPS,
    LedgerError,
    refuse_newer_ledger,
    upgrade_ledger,
)
from larkps.store.db import write_transaction
from larkps.store.schema import Step, version

KINDS = ("netns", "link", "nft-table", "qdisc", "process")
#: Other names callers give kinds by (the privileged helper's), and kinds that are
#: not network objects (its address leases, which it releases itself).
ALIASES = {"veth": "link", "nft": "nft-table"}
NOT_OBJECTS = ("lease",)
CLOSERS = ("wrapper", "gc")  # who closes a run: its own supervisor, or gc after a crash
SQLITE_HEADER = b"SQLite format 3\x00"


# -- processes --------------------------------------------------------------------------
def boot_id() -> str:
    """This boot's id: a pid and start time from another boot name nothing alive."""
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def process_start(pid: int) -> int | None:
    """The process's start time (clock ticks after boot), or None when there is none."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = text[text.rfind(")") + 2 :].split()
    return int(fields[19])  # field 22 of proc(5); the list starts at field 3


def process_uid(pid: int) -> int | None:
    """The real uid of the process, or None when there is none."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


@dataclass(frozen=True, slots=True)
class ProcessId:
    """A process as it is remembered: pid, start time, boot; a reused pid is another."""

    pid: int
    start: int
    boot: str

    @classmethod
    def of(cls, pid: int) -> ProcessId:
        start = process_start(pid)
        if start is None:
            raise LedgerError(f"process {pid} does not exist")
        return cls(pid, start, boot_id())

    def alive(self) -> bool:
        return self.boot == boot_id() and process_start(self.pid) == self.start


# -- objects ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class JobObject:
    """Something a run made that must not outlive it.

    Names: ``netns`` a namespace name, ``link`` an interface of the host's
    namespace, ``nft-table`` "FAMILY NAME" (or NAME: inet), ``qdisc`` "DEV" or
    "DEV root" or "DEV ingress", ``process`` "PID START" (START: its start time,
    filled in when the run is recorded from "PID"). Names are checked again before
    gc uses them in a command.
    """

    kind: str
    name: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise LedgerError(f"object kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if not 0 < len(self.name) <= 100 or not self.name.isprintable():
            raise LedgerError(f"{self.kind} name {self.name!r} is empty, long or unprintable")


def _with_start(item: JobObject) -> JobObject | None:
    """A process named by pid alone gets its start time (a reused pid is then another);
    one that has ended already is nothing to clean up (None)."""
    if item.kind != "process" or " " in item.name:
        return item
    if not item.name.isdigit():
        raise LedgerError(f"process name {item.name!r} is not a pid")
    start = process_start(int(item.name))
    return None if start is None else JobObject("process", f"{item.name} {start}")


def _started(objects: Iterable[JobObject]) -> list[JobObject]:
    return [o for o in map(_with_start, objects) if o is not None]


@dataclass(frozen=True, slots=True)
class OpenRun:
    """A run without an end: what gc needs to judge and clean it."""

    run_id: int
    job_id: str
    owner: str
    process: ProcessId
    objects: tuple[tuple[int, JobObject, float | None], ...]  # seq, object, removed


#: What a start call may name its objects by (see :meth:`LedgerRecorder.start`).
ObjectsGiven = Iterable[JobObject | Mapping[str, str] | tuple[str, str]] | Mapping[str, str]


# -- where files are and how they are opened --------------------------------------------
def writer_path(configured: Path, uid: int | None = None) -> Path:
    """The file a writer of ``uid`` (default: this process) uses for ``configured``.

    The owner of the configured directory writes the configured file, unless that
    directory is writable by others; everyone else writes in a directory of their own.
    """
    uid = os.geteuid() if uid is None else uid
    try:
        st = os.stat(configured.parent)
    except FileNotFoundError:
        if uid == 0:
            return configured  # root makes the directory, mode 0755
        raise LedgerError(
            f"ledger directory {configured.parent} does not exist: for job users to write "
            "their ledgers in it, the admin makes it with mode 1777"
        ) from None
    except OSError as exc:
        raise LedgerError(f"ledger directory {configured.parent}: {exc.strerror}") from None
    if st.st_uid == uid and not st.st_mode & 0o022:
        return configured
    return own_directory(configured, uid) / configured.name


def own_directory(configured: Path, uid: int) -> Path:
    return configured.parent / f"{configured.stem}.{uid}"


@dataclass(frozen=True, slots=True)
class LedgerFile:
    path: Path
    uid: int


def ledger_files(configured: Path) -> list[LedgerFile]:
    """The configured file and every writer's own file beside it, those that exist."""
    found = []
    candidates = [configured]
    try:
        for entry in sorted(configured.parent.iterdir()):
            suffix = entry.name.removeprefix(f"{configured.stem}.")
            if entry.name != suffix and suffix.isdigit():
                candidates.append(entry / configured.name)
    except OSError as exc:
        raise LedgerError(f"ledger directory {configured.parent}: {exc.strerror}") from None
    for path in candidates:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode):
            found.append(LedgerFile(path, st.st_uid))
    return found


def _checked_directory(path: Path, create: bool) -> int:
    """An O_NOFOLLOW descriptor of ``path``, a directory of this user writable by nobody else."""
    if create:
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            pass
        except OSError as exc:
            raise LedgerError(f"cannot make ledger directory {path}: {exc.strerror}") from None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise LedgerError(f"ledger directory {path}: {exc.strerror}") from None
    st = os.fstat(fd)
    problem = None
    if st.st_uid != os.geteuid():
        problem = f"owned by uid {st.st_uid}, not by this user (uid {os.geteuid()})"
    elif st.st_mode & 0o022:
        problem = f"writable by others (mode {stat.S_IMODE(st.st_mode):o})"
    if problem:
        os.close(fd)
        raise LedgerError(
            f"ledger directory {path} is {problem}: a ledger lives in a directory only "
            "its writer can write"
        )
    return fd


def _check_file(path: Path, create: bool) -> None:
    """Refuse a ledger (or its -wal, -shm, -journal) that is a link or another's file."""
    directory = path.parent
    dfd = _checked_directory(directory, create and directory.name.startswith(path.stem + "."))
    try:
        flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_CREAT if create else 0)
        try:
            fd = os.open(path.name, flags, 0o644, dir_fd=dfd)
        except OSError as exc:
            raise LedgerError(f"cannot open ledger {path}: {exc.strerror}") from None
        try:
            _check_stat(path, os.fstat(fd))
            header = os.pread(fd, len(SQLITE_HEADER), 0)
        finally:
            os.close(fd)
        if header and header != SQLITE_HEADER:
            raise LedgerError(f"{path} is not a ledger (not an SQLite file); it is left alone")
        for suffix in ("-wal", "-shm", "-journal"):
            try:
                st = os.lstat(path.name + suffix, dir_fd=dfd)
            except FileNotFoundError:
                continue
            _check_stat(Path(str(path) + suffix), st)
    finally:
        os.close(dfd)


def _check_stat(path: Path, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        raise LedgerError(f"ledger {path} is not a plain file (a link?): remove it")
    if st.st_uid != os.geteuid():
        raise LedgerError(f"ledger {path} belongs to uid {st.st_uid}, not to this user")


# -- the ledger -------------------------------------------------------------------------
class Ledger:
    """One ledger file of this user's, open for reading and writing."""

    def __init__(
        self, path: Path, create: bool = True, steps: Sequence[Step] = LEDGER_STEPS
    ) -> None:
        self.path = path
        if create and path.parent.name != f"{path.stem}.{os.geteuid()}":
            _make_parents(path.parent)
        _check_file(path, create)
        try:
            self.connection = sqlite3.connect(path, isolation_level=None, timeout=30.0)
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open ledger {path}: {exc}") from None
        try:
            self._open(steps)
        except BaseException:
            self.connection.close()
            raise

    def _open(self, steps: Sequence[Step]) -> None:
        try:
            refuse_newer_ledger(version(self.connection), self.path, len(steps))
            self.connection.execute("PRAGMA journal_mode=WAL")
            self.connection.execute("PRAGMA synchronous=FULL")
            self.connection.execute("PRAGMA foreign_keys=ON")
            if version(self.connection) != len(steps):
                with self.transaction() as db:
                    upgrade_ledger(db, self.path, steps)
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open ledger {self.path} (it is unchanged): {exc}") from None

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception."""
        return write_transaction(self.connection, f"ledger {self.path}", LedgerError)

    def start_run(
        self,
        job_id: str,
        owner: str,
        mode: str,
        policy: str,
        rate_bps: int | None,
        process: ProcessId,
        objects: Iterable[JobObject],
        started: float,
    ) -> int:
        """Record a run and its objects; its id."""
        items = _started(objects)
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO runs (job_id, owner, mode, policy, rate_bps, pid, pid_start, "
                "boot_id, started) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job_id, owner, mode, policy, rate_bps, process.pid, process.start,
                 process.boot, started),
            )  # fmt: skip
            run_id = int(cursor.lastrowid or 0)
            db.executemany(
                "INSERT INTO objects (run_id, seq, kind, name) VALUES (?, ?, ?, ?)",
                [(run_id, seq, o.kind, o.name) for seq, o in enumerate(items)],
            )
        return run_id

    def add_objects(self, run_id: int, objects: Iterable[JobObject]) -> None:
        """More objects of an open run (made after it was recorded)."""
        items = _started(objects)
        with self.transaction() as db:
            first = db.execute(
                "SELECT coalesce(max(seq) + 1, 0) FROM objects WHERE run_id = ?", (run_id,)
            ).fetchone()[0]
            db.executemany(
                "INSERT INTO objects (run_id, seq, kind, name) VALUES (?, ?, ?, ?)",
                [(run_id, first + i, o.kind, o.name) for i, o in enumerate(items)],
            )

    def end_run(
        self,
        run_id: int,
        exit_status: int | None,
        counters: Iterable[Counter],
        ended: float,
        closed_by: str = "wrapper",
    ) -> bool:
        """Close an open run with its counters; False if it was closed already."""
        if closed_by not in CLOSERS:
            raise LedgerError(f"closed_by: expected one of {', '.join(CLOSERS)}, got {closed_by!r}")
        items = counters_from(counters)
        with self.transaction() as db:
            done = db.execute(
                "UPDATE runs SET ended = ?, exit_status = ?, closed_by = ? "
                "WHERE id = ? AND ended IS NULL",
                (ended, exit_status, closed_by, run_id),
            ).rowcount
            if done:
                db.executemany(
                    "INSERT INTO counters (run_id, direction, class, bytes, packets) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [(run_id, c.direction, c.klass, c.bytes, c.packets) for c in items],
                )
        return bool(done)

    def mark_removed(self, run_id: int, seqs: Iterable[int], at: float) -> None:
        with self.transaction() as db:
            db.executemany(
                "UPDATE objects SET removed = ? WHERE run_id = ? AND seq = ?",
                [(at, run_id, seq) for seq in seqs],
            )

    def runs(self) -> list[RunRecord]:
        """Every run with its counters, oldest first."""
        db = self.connection
        counters: dict[int, list[Counter]] = {}
        for run_id, direction, klass, size, packets in db.execute(
            "SELECT run_id, direction, class, bytes, packets FROM counters ORDER BY run_id"
        ):
            counters.setdefault(run_id, []).append(Counter(direction, klass, size, packets))
        rows = db.execute(
            "SELECT id, job_id, owner, mode, policy, rate_bps, started, ended, exit_status "
            "FROM runs ORDER BY id"
        )
        return [
            RunRecord(
                run_id, job_id, owner, mode, policy, rate, started, ended, status,
                tuple(counters.get(run_id, ())), str(self.path),
            )
            for run_id, job_id, owner, mode, policy, rate, started, ended, status in rows
        ]  # fmt: skip

    def open_runs(self) -> list[OpenRun]:
        db = self.connection
        found = []
        for run_id, job_id, owner, pid, start, boot in db.execute(
            "SELECT id, job_id, owner, pid, pid_start, boot_id FROM runs "
            "WHERE ended IS NULL ORDER BY id"
        ).fetchall():
            objects = tuple(
                (seq, JobObject(kind, name), removed)
                for seq, kind, name, removed in db.execute(
                    "SELECT seq, kind, name, removed FROM objects WHERE run_id = ? ORDER BY seq",
                    (run_id,),
                )
            )
            found.append(OpenRun(run_id, job_id, owner, ProcessId(pid, start, boot), objects))
        return found


def _make_parents(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LedgerError(f"cannot make ledger directory {directory}: {exc.strerror}") from None


# -- another user's file ----------------------------------------------------------------
def as_owner(uid: int, work: Callable[[], Any]) -> Any:
    """``work()`` run in a child process as ``uid`` (its primary group, no others); its
    JSON-able result, or its error as LedgerError. Only root can do this."""
    try:
        gid = pwd.getpwuid(uid).pw_gid
    except KeyError:
        raise LedgerError(f"uid {uid} has no account: its ledger is left alone") from None
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        os.close(read_end)
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            payload = {"ok": work()}
        except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
            payload = {"error": str(exc) or type(exc).__name__}
        with os.fdopen(write_end, "w") as out:
            json.dump(payload, out)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as answer:
        text = answer.read()
    os.waitpid(pid, 0)
    try:
        payload = json.loads(text)
    except json.JSONDecodeError:
        raise LedgerError(f"reading the ledger as uid {uid} failed") from None
    if "error" in payload:
        raise LedgerError(str(payload["error"]))
    return payload["ok"]


def _record_doc(run: RunRecord) -> dict[str, Any]:
    doc = {f.name: getattr(run, f.name) for f in fields(RunRecord) if f.name != "counters"}
    doc["counters"] = [[c.direction, c.klass, c.bytes, c.packets] for c in run.counters]
    return doc


def _record_from(doc: Mapping[str, Any]) -> RunRecord:
    given = {f.name: doc[f.name] for f in fields(RunRecord) if f.name != "counters"}
    return RunRecord(**given, counters=tuple(Counter(*c) for c in doc["counters"]))


def read_runs(file: LedgerFile) -> list[RunRecord]:
    """Every run of a ledger file: opened directly if it is this user's, else (root
    only) in a child running as its owner."""
    if file.uid == os.geteuid():
        with Ledger(file.path, create=False) as ledger:
            return ledger.runs()
    if os.geteuid() != 0:
        raise LedgerError(
            f"ledger {file.path} belongs to uid {file.uid}: read it as root or as that user"
        )

    def dump() -> list[dict[str, Any]]:
        with Ledger(file.path, create=False) as ledger:
            return [_record_doc(r) for r in ledger.runs()]

    return [_record_from(d) for d in as_owner(file.uid, dump)]


# -- the wrapper's recorder -------------------------------------------------------------
class LedgerRecorder:
    """The ledger behind the wrapper's start/end calls (one run per job id at a time).

    ``configured`` is the node's ``ledger`` path; the file written is
    :func:`writer_path` of it for this process's user. Each call opens the file,
    commits and closes it again, so nothing is held across the job's life. The run's
    supervising process is ``supervisor`` (a pid; this process when None): the run is
    alive while it is.
    """

    def __init__(
        self,
        configured: Path,
        clock: Callable[[], float] = time.time,
        supervisor: int | None = None,
    ) -> None:
        self.configured = configured
        self.clock = clock
        self.supervisor = supervisor
        self.path = writer_path(configured)
        self._runs: dict[str, int] = {}

    def start(
        self,
        plan: JobPlan,
        objects: Iterable[JobObject | Mapping[str, str] | tuple[str, str]] | Mapping[str, str] = (),
    ) -> None:
        """Record the run (a second call for the same job adds objects to it).

        ``objects``: :class:`JobObject` items, ``{"kind": ..., "name": ...}`` mappings
        or ``(kind, name)`` pairs (kinds ``veth`` and ``nft`` are read as ``link`` and
        ``nft-table``; ``lease`` is no network object); or one mapping ``{kind: name}``
        whose keys ``pid`` and ``*_pid`` name processes and whose keys that are no kind
        (``net = "pasta"``) are not objects.
        """
        items = objects_from(objects)
        with Ledger(self.path) as ledger:
            if plan.job_id in self._runs:
                ledger.add_objects(self._runs[plan.job_id], items)
                return
            self._runs[plan.job_id] = ledger.start_run(
                plan.job_id,
                plan.owner,
                _text(plan.mode),
                _text(plan.policy),
                plan.rate_bps,
                ProcessId.of(os.getpid() if self.supervisor is None else self.supervisor),
                items,
                self.clock(),
            )

    def end(
        self,
        plan: JobPlan,
        exit_status: int | None,
        counters: object,
    ) -> None:
        """Close the run: ``counters`` as :func:`larkps.jobnet.accounting.counters_from` takes."""
        run_id = self._runs.pop(plan.job_id, None)
        if run_id is None:
            raise LedgerError(f"job {plan.job_id} has no run started in {self.path}")
        with Ledger(self.path) as ledger:
            ledger.end_run(run_id, exit_status, counters_from(counters), self.clock())


def objects_from(objects: ObjectsGiven) -> list[JobObject]:
    """The objects of a start call, in any of its forms (see :meth:`LedgerRecorder.start`)."""
    if isinstance(objects, Mapping) and "kind" not in objects:
        pairs = [
            ("process" if key == "pid" or key.endswith("_pid") else key, str(value))
            for key, value in objects.items()
        ]
        return [JobObject(k, n) for k, n in pairs if k in KINDS]
    found = []
    for item in [objects] if isinstance(objects, Mapping) else objects:
        if isinstance(item, JobObject):
            found.append(item)
            continue
        kind, name = (item["kind"], item["name"]) if isinstance(item, Mapping) else item
        if kind not in NOT_OBJECTS:
            found.append(JobObject(ALIASES.get(kind, kind), str(name)))
    return found


def _text(value: object) -> str:
    """An enum's value, or the text of anything else."""
    return str(getattr(value, "value", value))
