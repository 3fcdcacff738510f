"""Run reports kept in the state store: one row per cycle (of `larkps run` or
`larkps once`), newest first on read, and the health of each archive (tables
``run_reports`` and ``archive_health``, declared in :mod:`larkps.store.schema`)."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from larkps.errors import ArchiveError, LarkpsError, StateError
from larkps.model import RunReport
from larkps.store.db import Store

if TYPE_CHECKING:
    from larkps.config.settings import Settings

log = logging.getLogger(__name__)

KEEP = 10_000
RUN_MODES = ("run", "once")


@dataclasses.dataclass(frozen=True, slots=True)
class ArchiveHealth:
    """How one archive fared: the last cycle that polled it, the last it answered."""

    archive: str
    attempted: int
    last_success: int | None
    failing_since: int | None  # None while it answers
    problem: str | None


def report_document(
    report: RunReport | None,
    started: int,
    error: LarkpsError | str | None,
    mode: str = "run",
    archives: Sequence[str] = (),
) -> dict[str, Any]:
    """The JSON form of one cycle: the report, or the error that ended the cycle.

    ``archives`` are the configured archive names; those the cycle polled and that
    did not answer are listed under ``archives_failed`` with their problem.
    """
    document: dict[str, Any] = {"started": started, "ok": error is None, "mode": mode}
    if report is not None:
        document.update(dataclasses.asdict(report))
        document["partial"] = report.partial
    if error is not None:
        document["error"] = str(error)
    document["archives_failed"] = archive_failures(archives, report, error)
    return document


def archive_failures(
    archives: Sequence[str], report: RunReport | None, error: LarkpsError | str | None
) -> dict[str, str]:
    """Archive -> problem, for each archive a cycle polled that did not answer."""
    if report is not None:
        answered = set(report.archives) | set(report.skipped)
        listing = {p.archive: p.problem for p in report.problems if p.what == "metadata"}
        first: dict[str, str] = {}
        for problem in report.problems:
            first.setdefault(problem.archive, problem.problem)
        return {  # the series list's problem, else the archive's first one
            a: listing.get(a) or first.get(a, "no answer") for a in archives if a not in answered
        }
    if isinstance(error, ArchiveError):
        failures = {e.archive: e.problem for e in (error, *error.also_failed)}
        return {a: failures.get(a, str(error)) for a in archives}
    return {}


def record(store: Store, document: dict[str, Any]) -> None:
    """Append one cycle's document, update each archive's health and trim the table
    to the newest KEEP rows."""
    started = document["started"]
    with store.transaction() as db:
        db.execute(
            "INSERT INTO run_reports (started, ok, report) VALUES (?, ?, ?)",
            (started, int(bool(document["ok"])), json.dumps(document)),
        )
        db.execute(
            "DELETE FROM run_reports WHERE id <= (SELECT max(id) FROM run_reports) - ?", (KEEP,)
        )
        for archive in document.get("archives", []):
            db.execute(
                "INSERT INTO archive_health (archive, attempted, last_success) VALUES (?, ?, ?)"
                " ON CONFLICT (archive) DO UPDATE SET attempted = excluded.attempted,"
                " last_success = excluded.last_success, failing_since = NULL, problem = NULL",
                (archive, started, started),
            )
        for archive, problem in document.get("archives_failed", {}).items():
            db.execute(
                "INSERT INTO archive_health (archive, attempted, failing_since, problem)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (archive) DO UPDATE SET"
                " attempted = excluded.attempted, problem = excluded.problem,"
                " failing_since = coalesce(failing_since, excluded.failing_since)",
                (archive, started, started, problem),
            )


def save(state_dir: Path, document: dict[str, Any]) -> None:
    """:func:`record` in the state store of ``state_dir`` (StateError if it cannot)."""
    with Store.in_directory(state_dir) as store:
        record(store, document)


def save_once(
    settings: Settings, report: RunReport | None, started: int, error: LarkpsError | None
) -> None:
    """Record a `larkps once` cycle for `larkps status` when the cycle uses the state
    store (incremental fetching); a failure to record is logged, not raised."""
    if not settings.fetch.incremental:
        return
    names = [a.name for a in settings.archives]
    document = report_document(report, started, error, "once", names)
    try:
        save(settings.state_dir, document)
    except StateError as exc:
        log.warning("cannot record the run report: %s", exc)


def latest(store: Store, limit: int = 10) -> list[dict[str, Any]]:
    """The newest `limit` cycle documents, newest first."""
    rows = store.connection.execute(
        "SELECT report FROM run_reports ORDER BY id DESC LIMIT ?", (limit,)
    ).fetchall()
    return [json.loads(row[0]) for row in rows]


def last_success(store: Store) -> int | None:
    row = store.connection.execute("SELECT max(started) FROM run_reports WHERE ok = 1").fetchone()
    return int(row[0]) if row and row[0] is not None else None


def archive_health(store: Store) -> dict[str, ArchiveHealth]:
    """Every archive a cycle has polled, by name."""
    rows = store.connection.execute(
        "SELECT archive, attempted, last_success, failing_since, problem FROM archive_health"
    ).fetchall()
    return {row[0]: ArchiveHealth(*row) for row in rows}
