"""Alarm hysteresis state in the state store (table ``alarm_state``, declared in
:mod:`larkps.store.schema`)."""

from __future__ import annotations

from collections.abc import Mapping

from larkps.model import AlarmKind
from larkps.stats.alarms import AlarmRecord
from larkps.store.db import Store

_KINDS = {k.value for k in AlarmKind}
_COLUMNS = "kind, subject, site, peer, since, good, value, threshold, judged, detail"


def load_alarms(store: Store) -> dict[tuple[str, str], AlarmRecord]:
    """The records the last cycle kept."""
    rows = store.connection.execute(f"SELECT {_COLUMNS} FROM alarm_state").fetchall()  # noqa: S608
    records = {}
    for kind, subject, site, peer, since, good, value, threshold, judged, detail in rows:
        if kind not in _KINDS:
            continue
        record = AlarmRecord(
            kind=AlarmKind(kind),
            subject=subject,
            site=site,
            since=int(since),
            good=int(good),
            value=float(value),
            threshold=float(threshold),
            judged=int(judged),
            detail=detail,
            peer=peer,
        )
        records[record.key] = record
    return records


def save_alarms(store: Store, records: Mapping[tuple[str, str], AlarmRecord]) -> None:
    """Replace the stored records with ``records`` (one transaction)."""
    with store.transaction() as db:
        db.execute("DELETE FROM alarm_state")
        db.executemany(
            f"INSERT INTO alarm_state ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
            [
                (
                    r.kind.value,
                    r.subject,
                    r.site,
                    r.peer,
                    r.since,
                    r.good,
                    r.value,
                    r.threshold,
                    r.judged,
                    r.detail,
                )
                for r in records.values()
            ],
        )
