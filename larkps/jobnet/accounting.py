"""Pure summaries of the ledger's runs: per job, per owner or per destination class.

Directions are the job's: ``in`` is what it received, ``out`` what it sent. Every
counter belongs to one destination class (``same-site``, ``other-sites``,
``elsewhere``, as the node's ``[jobnet.classes]`` and the rules classify the peer).
A summary row counts the runs of its key and adds their bytes and packets; the total
counts each run once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from larkps.config.jobnet import CLASSES, ELSEWHERE
from larkps.errors import FieldError

IN, OUT = "in", "out"
LEDGER_DIRECTIONS = (IN, OUT)
SAME_SITE, OTHER_SITES = CLASSES  # the node's classes; the rest is ELSEWHERE
#: Counted on the interface as a whole, with no rule to tell destinations apart.
UNCLASSIFIED = "unclassified"
LEDGER_CLASSES = (SAME_SITE, OTHER_SITES, ELSEWHERE, UNCLASSIFIED)
#: Interface totals by name (what a veth's statistics give) -> (direction, what).
TOTALS_KEYS = {
    "bytes_sent": (OUT, "bytes"),
    "packets_sent": (OUT, "packets"),
    "bytes_received": (IN, "bytes"),
    "packets_received": (IN, "packets"),
}
GROUPINGS = ("job", "owner", "class")
MAX_COUNTER = 2**63 - 1  # what SQLite's INTEGER holds


@dataclass(frozen=True, slots=True)
class Counter:
    """Bytes and packets of one direction and destination class of one run."""

    direction: str
    klass: str
    bytes: int
    packets: int

    def __post_init__(self) -> None:
        if self.direction not in LEDGER_DIRECTIONS:
            raise FieldError("direction", f"expected in or out, got {self.direction!r}")
        if self.klass not in LEDGER_CLASSES:
            raise FieldError(
                "class", f"expected one of {', '.join(LEDGER_CLASSES)}, got {self.klass!r}"
            )
        for name, value in (("bytes", self.bytes), ("packets", self.packets)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise FieldError(name, f"expected an integer, got {value!r}")
            if not 0 <= value <= MAX_COUNTER:
                raise FieldError(name, f"expected 0..2**63-1, got {value}")


def counters_from(counters: object) -> tuple[Counter, ...]:
    """Counters as given: an iterable of :class:`Counter`, a mapping ``{(direction,
    class): (bytes, packets)}`` or ``{(direction, class): count}`` (a count has
    ``bytes`` and ``packets``), an object whose ``accepted`` is such a mapping (the
    rules' counters read back from nft), or interface totals ``{"bytes_sent": n,
    "packets_sent": n, "bytes_received": n, "packets_received": n}`` (class
    ``unclassified``); one per direction and class."""
    accepted = getattr(counters, "accepted", counters)
    if isinstance(accepted, Mapping) and accepted and set(accepted) <= set(TOTALS_KEYS):
        items = _interface_totals(accepted)
    elif isinstance(accepted, Mapping):
        items = tuple(_counter(key, value) for key, value in accepted.items())
    elif isinstance(accepted, Iterable):
        items = tuple(accepted)
        if not all(isinstance(i, Counter) for i in items):
            raise FieldError("counters", "expected Counter items")
    else:
        raise FieldError("counters", f"expected counters, got {type(counters).__name__}")
    seen: set[tuple[str, str]] = set()
    for item in items:
        if (item.direction, item.klass) in seen:
            raise FieldError("counters", f"{item.direction} {item.klass} given twice")
        seen.add((item.direction, item.klass))
    return items


def _interface_totals(given: Mapping[str, object]) -> tuple[Counter, ...]:
    cells: dict[str, dict[str, object]] = {}
    for key, value in given.items():
        direction, unit = TOTALS_KEYS[key]
        cells.setdefault(direction, {"bytes": 0, "packets": 0})[unit] = value
    return tuple(
        Counter(d, UNCLASSIFIED, cells[d]["bytes"], cells[d]["packets"])  # type: ignore[arg-type]
        for d in LEDGER_DIRECTIONS
        if d in cells
    )


def _counter(key: object, value: object) -> Counter:
    if not (isinstance(key, tuple) and len(key) == 2):
        raise FieldError("counters", f"expected (direction, class) keys, got {key!r}")
    direction, klass = key
    if isinstance(value, tuple) and len(value) == 2:
        return Counter(direction, klass, value[0], value[1])
    size, packets = getattr(value, "bytes", None), getattr(value, "packets", None)
    return Counter(direction, klass, size, packets)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run of a job as the ledger holds it (``ended`` None: still open)."""

    run_id: int
    job_id: str
    owner: str
    mode: str
    policy: str
    rate_bps: int | None
    started: float
    ended: float | None
    exit_status: int | None
    counters: tuple[Counter, ...] = ()
    ledger: str = ""


@dataclass(frozen=True, slots=True)
class Totals:
    """Bytes and packets in and out, and how many runs they came from."""

    runs: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    packets_in: int = 0
    packets_out: int = 0


@dataclass(frozen=True, slots=True)
class AccountingRow:
    key: str
    totals: Totals


@dataclass(frozen=True, slots=True)
class Accounting:
    by: str
    rows: tuple[AccountingRow, ...]
    total: Totals
    since: float | None = None
    ledgers: tuple[str, ...] = field(default=())


def totals(counters: Iterable[Counter], runs: int = 1) -> Totals:
    """The sums of ``counters``, counted as ``runs`` runs."""
    sums = {(d, unit): 0 for d in LEDGER_DIRECTIONS for unit in ("bytes", "packets")}
    for c in counters:
        sums[(c.direction, "bytes")] += c.bytes
        sums[(c.direction, "packets")] += c.packets
    return Totals(
        runs,
        sums[(IN, "bytes")],
        sums[(OUT, "bytes")],
        sums[(IN, "packets")],
        sums[(OUT, "packets")],
    )


def in_window(run: RunRecord, since: float | None) -> bool:
    """Whether the run was active at or after ``since`` (open runs always are)."""
    return since is None or run.ended is None or run.ended >= since


def summarize(
    runs: Iterable[RunRecord],
    by: str = "job",
    since: float | None = None,
    ledgers: tuple[str, ...] = (),
) -> Accounting:
    """Rows per job, owner or destination class of the runs active since ``since``."""
    if by not in GROUPINGS:
        raise FieldError("by", f"expected one of {', '.join(GROUPINGS)}, got {by!r}")
    chosen = [r for r in runs if in_window(r, since)]
    groups: dict[str, tuple[int, list[Counter]]] = {}
    for run in chosen:
        for key, counters in _keys(run, by):
            count, items = groups.get(key, (0, []))
            groups[key] = (count + 1, items + list(counters))
    rows = tuple(AccountingRow(key, totals(items, count)) for key, (count, items) in groups.items())
    total = totals((c for r in chosen for c in r.counters), len(chosen))
    return Accounting(
        by, tuple(sorted(rows, key=lambda r: _order(by, r.key))), total, since, ledgers
    )


def _keys(run: RunRecord, by: str) -> list[tuple[str, tuple[Counter, ...]]]:
    if by == "job":
        return [(run.job_id, run.counters)]
    if by == "owner":
        return [(run.owner, run.counters)]
    classes = [k for k in LEDGER_CLASSES if any(c.klass == k for c in run.counters)]
    return [(k, tuple(c for c in run.counters if c.klass == k)) for k in classes]


_NUMBERS = re.compile(r"(\d+)")


def _order(by: str, key: str) -> tuple[object, ...]:
    """Classes in their fixed order; jobs and owners naturally (2.0 before 10.0)."""
    if by == "class":
        return (LEDGER_CLASSES.index(key),)
    return tuple(int(p) if p.isdigit() else p for p in _NUMBERS.split(key))
