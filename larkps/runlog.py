"""Run reports kept in the state store: one row per cycle, newest first on read."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from larkps.model import RunReport
from larkps.store import Store

SCHEMA = """
CREATE TABLE IF NOT EXISTS run_reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    report TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS run_reports_started ON run_reports (started)
"""
KEEP = 10_000


def report_document(report: RunReport | None, started: int, error: str | None) -> dict[str, Any]:
    """The JSON form of one cycle: the report, or the error that ended the cycle."""
    document: dict[str, Any] = {"started": started, "ok": error is None}
    if report is not None:
        document.update(dataclasses.asdict(report))
        document["partial"] = report.partial
    if error is not None:
        document["error"] = error
    return document


def record(store: Store, document: dict[str, Any]) -> None:
    """Append one cycle's document and trim the table to the newest KEEP rows."""
    store.ensure_schema(SCHEMA)
    with store.transaction() as db:
        db.execute(
            "INSERT INTO run_reports (started, ok, report) VALUES (?, ?, ?)",
            (document["started"], int(bool(document["ok"])), json.dumps(document)),
        )
        db.execute(
            "DELETE FROM run_reports WHERE id <= (SELECT max(id) FROM run_reports) - ?", (KEEP,)
        )


def latest(store: Store, limit: int = 10) -> list[dict[str, Any]]:
    """The newest `limit` cycle documents, newest first."""
    store.ensure_schema(SCHEMA)
    rows = store.connection.execute(
        "SELECT report FROM run_reports ORDER BY id DESC LIMIT ?", (limit,)
    ).fetchall()
    return [json.loads(row[0]) for row in rows]


def last_success(store: Store) -> int | None:
    store.ensure_schema(SCHEMA)
    row = store.connection.execute("SELECT max(started) FROM run_reports WHERE ok = 1").fetchone()
    return int(row[0]) if row and row[0] is not None else None
