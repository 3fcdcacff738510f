"""Leftovers of job networks after a crash: found, removed, their runs closed.

A run is dead when its supervising process is gone (pid + start time + boot id, so a
reused pid is not mistaken for it). Its objects are removed, processes first and
namespaces last, each only if no live run owns an object of the same kind and name;
then the run is closed (``closed_by = 'gc'``, no exit status, no counters). Objects
named with larkps's prefixes that no run records (netns ``larkps-<cluster>-<proc>``,
host links ``lk...``, nft tables ``larkps_<cluster>_<proc>``) are removed when no
live run has their job, and, for a namespace, when it is older than
:data:`GRACE_S` (a job being set up may not have recorded it yet). A link's job is
the one of the namespace its veth peer lives in.

A ledger written by a job user (rootless mode) is trusted for that user's processes
only: gc kills a process it names only when the process runs as that user, and
leaves every other kind of object it names alone. Commands run as argument lists
of checked names through :func:`larkps.apply.tc.run`; ``dry_run`` runs none of the
removals.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from larkps.apply import tc
from larkps.apply.tc import check_interface, check_netns
from larkps.errors import FieldError, LarkpsError
from larkps.jobnet.ledger import (
    JobObject,
    Ledger,
    LedgerFile,
    OpenRun,
    ProcessId,
    as_owner,
    process_start,
    process_uid,
)
from larkps.jobnet.schema import LedgerError

GRACE_S = 60.0
NETNS_DIR = Path("/run/netns")
NFT_FAMILIES = ("ip", "ip6", "inet", "arp", "bridge", "netdev")
NFT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,63}$")
#: Removal order within a run: what uses an object goes before it.
ORDER = ("process", "qdisc", "nft-table", "link", "netns")

Runner = Callable[[list[str]], str]


@dataclass(frozen=True, slots=True)
class GcError(LarkpsError):
    """A listing of the host's network objects could not be read."""


@dataclass(frozen=True, slots=True)
class Prefixes:
    """Names gc takes for larkps's when no run records them (tests narrow them)."""

    netns: str = "larkps-"
    link: str = "lk"
    nft: str = "larkps_"


@dataclass(frozen=True, slots=True)
class Action:
    """One object gc looked at: what it did or would do, and why."""

    kind: str
    name: str
    outcome: str  # removed, absent, would remove, kept, left alone, failed
    reason: str
    job_id: str | None = None
    ledger: str | None = None
    run_id: int | None = None


@dataclass(slots=True)
class Report:
    actions: list[Action] = field(default_factory=list)
    closed: list[tuple[str, int, str]] = field(default_factory=list)  # ledger, run, job
    live: list[tuple[str, int, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.problems) or any(a.outcome == "failed" for a in self.actions)


# -- what exists ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Inventory:
    """The host namespace's network namespaces (with their ids), links and nft tables."""

    netns: dict[str, int | None]
    links: dict[str, dict[str, object]]
    tables: set[tuple[str, str]]

    @classmethod
    def read(cls, run: Runner) -> Inventory:
        netns: dict[str, int | None] = {}
        for item in _json(run(["ip", "-j", "netns", "list"])):
            nsid = item.get("id")
            netns[str(item["name"])] = nsid if isinstance(nsid, int) else None
        links = {str(i["ifname"]): i for i in _json(run(["ip", "-j", "link", "show"]))}
        tables = set()
        for item in _json(run(["nft", "-j", "list", "tables"]), "nftables"):
            table = item.get("table")
            if isinstance(table, dict):
                tables.add((str(table["family"]), str(table["name"])))
        return cls(netns, links, tables)


def _json(text: str, key: str | None = None) -> list[dict[str, object]]:
    try:
        doc = json.loads(text) if text.strip() else []
    except json.JSONDecodeError:
        raise GcError("a listing was not JSON") from None
    if key is not None:
        doc = doc.get(key, []) if isinstance(doc, dict) else []
    return [d for d in doc if isinstance(d, dict)] if isinstance(doc, list) else []


# -- names -> commands ------------------------------------------------------------------
def nft_table(name: str) -> tuple[str, str]:
    """(family, table) of an ``nft-table`` object name: "FAMILY NAME" or "NAME" (inet)."""
    words = name.split()
    family, table = (words[0], words[1]) if len(words) == 2 else ("inet", words[0])
    if len(words) > 2 or family not in NFT_FAMILIES or not NFT_NAME.match(table):
        raise FieldError("nft-table", f"expected [FAMILY] NAME of an nft table, got {name!r}")
    return family, table


def qdisc_of(name: str) -> tuple[str, str]:
    """(device, root | ingress) of a ``qdisc`` object name."""
    words = name.split()
    dev, where = (words[0], words[1]) if len(words) == 2 else (words[0], "root")
    if len(words) > 2 or where not in ("root", "ingress"):
        raise FieldError("qdisc", f"expected DEV [root|ingress], got {name!r}")
    return check_interface(dev, "qdisc"), where


def process_of(name: str) -> tuple[int, int]:
    words = name.split()
    if len(words) != 2 or not all(w.isdigit() for w in words):
        raise FieldError("process", f"expected PID START, got {name!r}")
    return int(words[0]), int(words[1])


def canonical(item: JobObject) -> tuple[str, str]:
    """The kind and name by which two records of one object compare equal."""
    if item.kind == "nft-table":
        try:
            return item.kind, " ".join(nft_table(item.name))
        except FieldError:
            return item.kind, item.name
    if item.kind == "qdisc":
        try:
            return item.kind, " ".join(qdisc_of(item.name))
        except FieldError:
            return item.kind, item.name
    return item.kind, item.name


JOB_NAMES = {
    "netns": re.compile(r"^larkps-(\d+)-(\d+)$"),
    "nft-table": re.compile(r"^larkps_(\d+)_(\d+)$"),
}


def job_of_name(kind: str, name: str) -> str | None:
    """The job id a larkps-made name carries ("larkps-12-0" -> "12.0"), if any."""
    pattern = JOB_NAMES.get(kind)
    match = pattern.match(name) if pattern else None
    return f"{match[1]}.{match[2]}" if match else None


# -- removal ----------------------------------------------------------------------------
class Remover:
    """Removes one object at a time, saying whether it was there."""

    def __init__(self, inventory: Inventory, run: Runner, dry_run: bool) -> None:
        self.inventory = inventory
        self.run = run
        self.dry_run = dry_run

    def remove(self, item: JobObject, uid: int | None = None) -> tuple[str, str]:
        """(outcome, reason); ``uid``: only a process of that user may be killed."""
        try:
            if item.kind == "process":
                return self._kill(item, uid)
            argv = self._command(item, uid)
        except FieldError as exc:
            return "left alone", f"not a name gc acts on: {exc.problem}"
        if argv is None:
            return "absent", "already gone"
        if isinstance(argv, str):
            return "left alone", argv
        if self.dry_run:
            return "would remove", tc.as_text(argv)
        try:
            self.run(argv)
        except LarkpsError as exc:
            try:
                self.inventory = Inventory.read(self.run)
                if self._command(item, uid) is None:
                    return "absent", "gone with what it belonged to"
            except LarkpsError:
                pass
            return "failed", str(exc)
        return "removed", tc.as_text(argv)

    def _kill(self, item: JobObject, uid: int | None) -> tuple[str, str]:
        """SIGKILL to a process that is still the one recorded (pid and start time)."""
        pid, start = process_of(item.name)
        if process_start(pid) != start:
            return "absent", "already gone"
        if uid is not None and process_uid(pid) != uid:
            return "left alone", f"process {pid} does not run as uid {uid}, whose ledger names it"
        if self.dry_run:
            return "would remove", f"kill -KILL {pid}"
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return "absent", "already gone"
        return "removed", f"kill -KILL {pid}"

    def _command(self, item: JobObject, uid: int | None) -> list[str] | str | None:
        """The argv that removes ``item``; None when absent, a reason text when it must stay."""
        inv = self.inventory
        if uid is not None:
            return f"a {item.kind} named in uid {uid}'s ledger is not trusted"
        if item.kind == "netns":
            name = check_netns(item.name, "netns")
            return ["ip", "netns", "del", name] if name in inv.netns else None
        if item.kind == "link":
            name = check_interface(item.name, "link")
            return ["ip", "link", "del", "dev", name] if name in inv.links else None
        if item.kind == "nft-table":
            family, table = nft_table(item.name)
            return (
                ["nft", "delete", "table", family, table] if (family, table) in inv.tables else None
            )
        dev, where = qdisc_of(item.name)
        if dev not in inv.links or not self._has_qdisc(dev, where):
            return None
        return ["tc", "qdisc", "del", "dev", dev, where]

    def _has_qdisc(self, dev: str, where: str) -> bool:
        try:
            entries = _json(self.run(["tc", "-j", "qdisc", "show", "dev", dev]))
        except LarkpsError:
            return False
        if where == "ingress":
            return any(e.get("kind") in ("ingress", "clsact") for e in entries)
        return any(
            e.get("root") and e.get("kind") not in ("noqueue", "pfifo_fast") for e in entries
        )


# -- one pass ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LedgerRuns:
    file: LedgerFile
    runs: tuple[OpenRun, ...]


def open_runs(files: Iterable[LedgerFile]) -> tuple[list[LedgerRuns], list[str]]:
    """The open runs of each ledger file, and one problem line per file that failed."""
    found, problems = [], []
    for file in files:
        try:
            found.append(LedgerRuns(file, tuple(_read_open(file))))
        except LarkpsError as exc:
            problems.append(str(exc))
    return found, problems


def _read_open(file: LedgerFile) -> list[OpenRun]:
    if file.uid == os.geteuid():
        with Ledger(file.path, create=False) as ledger:
            return ledger.open_runs()
    if os.geteuid() != 0:
        raise LedgerError(f"ledger {file.path} belongs to uid {file.uid}: run gc as root")

    def dump() -> list[object]:
        with Ledger(file.path, create=False) as ledger:
            return [_open_doc(r) for r in ledger.open_runs()]

    return [_open_from(d) for d in as_owner(file.uid, dump)]


def _open_doc(run: OpenRun) -> list[object]:
    p = run.process
    objects = [[seq, o.kind, o.name, removed] for seq, o, removed in run.objects]
    return [run.run_id, run.job_id, run.owner, p.pid, p.start, p.boot, objects]


def _open_from(doc: list[object]) -> OpenRun:
    run_id, job_id, owner, pid, start, boot, objects = doc
    assert isinstance(objects, list)
    return OpenRun(
        int(str(run_id)),
        str(job_id),
        str(owner),
        ProcessId(int(str(pid)), int(str(start)), str(boot)),
        tuple((int(s), JobObject(k, n), r) for s, k, n, r in objects),
    )


def collect(
    files: Iterable[LedgerFile],
    dry_run: bool = False,
    prefixes: Prefixes = Prefixes(),
    run: Runner = tc.run,
    clock: Callable[[], float] = time.time,
) -> Report:
    """One gc pass over the given ledger files and the host's network objects."""
    report = Report()
    ledgers, report.problems = open_runs(files)
    live_jobs: set[str] = set()
    live_objects: dict[tuple[str, str], tuple[str, int, str]] = {}
    dead: list[tuple[LedgerFile, OpenRun]] = []
    tracked: set[tuple[str, str]] = set()
    for group in ledgers:
        for item in group.runs:
            tracked.update(canonical(o) for _, o, _ in item.objects)
            if _alive(item, group.file):
                where = (str(group.file.path), item.run_id, item.job_id)
                report.live.append(where)
                live_jobs.add(item.job_id)
                live_objects.update({canonical(o): where for _, o, _ in item.objects})
            else:
                dead.append((group.file, item))
    try:
        remover = Remover(Inventory.read(run), run, dry_run)
    except LarkpsError as exc:
        report.problems.append(f"cannot list the host's network objects: {exc}")
        return report
    for file, item in dead:
        _clean_run(report, remover, file, item, live_objects, dry_run, clock)
    _clean_untracked(report, remover, tracked, live_jobs, prefixes, clock)
    return report


def _alive(item: OpenRun, file: LedgerFile) -> bool:
    """A run is live while its supervisor is; a job user's ledger can claim only a
    process of that user (so it cannot shield root's leftovers with another's pid)."""
    if not item.process.alive():
        return False
    return file.uid == os.geteuid() or process_uid(item.process.pid) == file.uid


def _clean_run(
    report: Report,
    remover: Remover,
    file: LedgerFile,
    item: OpenRun,
    live_objects: dict[tuple[str, str], tuple[str, int, str]],
    dry_run: bool,
    clock: Callable[[], float],
) -> None:
    uid = None if file.uid == os.geteuid() else file.uid
    removed, blocked = [], False
    pending = [(seq, o) for seq, o, gone in item.objects if gone is None]
    for seq, obj in sorted(pending, key=lambda p: (ORDER.index(p[1].kind), -p[0])):
        owner = live_objects.get(canonical(obj))
        if owner is not None:
            outcome, reason = "kept", f"owned by live run {owner[1]} of job {owner[2]}"
        else:
            outcome, reason = remover.remove(obj, uid)
        blocked |= outcome == "failed"
        if outcome in ("removed", "absent"):
            removed.append(seq)
        report.actions.append(
            Action(obj.kind, obj.name, outcome, reason, item.job_id, str(file.path), item.run_id)
        )
    if dry_run or blocked:
        return
    try:
        _close(file, item.run_id, removed, clock())
    except LarkpsError as exc:
        report.problems.append(f"run {item.run_id} of job {item.job_id}: {exc}")
        return
    report.closed.append((str(file.path), item.run_id, item.job_id))


def _close(file: LedgerFile, run_id: int, removed: list[int], now: float) -> None:
    def close() -> None:
        with Ledger(file.path, create=False) as ledger:
            ledger.mark_removed(run_id, removed, now)
            ledger.end_run(run_id, None, (), now, closed_by="gc")

    if file.uid == os.geteuid():
        close()
    else:
        as_owner(file.uid, close)


def _clean_untracked(
    report: Report,
    remover: Remover,
    tracked: set[tuple[str, str]],
    live_jobs: set[str],
    prefixes: Prefixes,
    clock: Callable[[], float],
) -> None:
    inv = remover.inventory
    nsid_names = {nsid: name for name, nsid in inv.netns.items() if nsid is not None}
    young = {name for name in inv.netns if _age(name, clock) < GRACE_S}
    starting = {job for job in (job_of_name("netns", n) for n in young) if job}
    peers: dict[str, str] = {}
    candidates: list[tuple[JobObject, str | None]] = []
    for family, table in sorted(inv.tables):
        if table.startswith(prefixes.nft):
            job = job_of_name("nft-table", table)
            candidates.append((JobObject("nft-table", f"{family} {table}"), job))
    for name, info in sorted(inv.links.items()):
        if name.startswith(prefixes.link):
            nsid = info.get("link_netnsid")
            peers[name] = nsid_names.get(nsid, "") if isinstance(nsid, int) else ""
            candidates.append((JobObject("link", name), job_of_name("netns", peers[name])))
    for name in sorted(inv.netns):
        if name.startswith(prefixes.netns):
            candidates.append((JobObject("netns", name), job_of_name("netns", name)))
    for obj, job in candidates:
        if canonical(obj) in tracked:
            continue
        if job is not None and job in live_jobs:
            outcome, reason = "kept", f"job {job} has a live run"
        elif job is not None and job in starting:
            outcome, reason = "kept", f"job {job}'s namespace was made less than {GRACE_S:g} s ago"
        elif obj.kind == "netns" and obj.name in young:
            outcome, reason = "kept", f"made less than {GRACE_S:g} s ago"
        elif obj.kind == "link" and peers[obj.name] in young:
            outcome, reason = "kept", f"its peer's namespace was made less than {GRACE_S:g} s ago"
        else:
            outcome, reason = remover.remove(obj)
        report.actions.append(Action(obj.kind, obj.name, outcome, f"untracked; {reason}", job))


def _age(netns: str, clock: Callable[[], float]) -> float:
    try:
        return clock() - (NETNS_DIR / netns).stat().st_mtime
    except OSError:
        return GRACE_S
