"""Achieved transfers and calibration state in the state store.

Transfers keep their ends as the job ad named them (a site, or a host); they are
mapped to sites by the site map in force each time they are read, so a site map
change applies at the next cycle. The predicted figure of a transfer is the
uncalibrated expected bandwidth of its site pair in the first cycle that knows the
pair after the transfer was recorded. The calibration state is keyed by site pair
and rewritten each cycle with the pairs that cycle calibrated, so a pair the site
map no longer yields is forgotten.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from larkps.stats.achieved import AchievedTransfer, End
from larkps.stats.calibration import Sample
from larkps.store.db import Store

#: The site of a host (None: no rule of the site map names it).
HostSite = Callable[[str], str | None]
SitePair = tuple[str, str]


@dataclass(frozen=True, slots=True)
class StoredTransfer:
    """A recorded transfer, its path under today's site map, and its predicted figure."""

    transfer: AchievedTransfer
    pair: SitePair | None  # None: an end maps to no site
    predicted_bps: float | None


def record_transfers(store: Store, schedd: str, transfers: Iterable[AchievedTransfer]) -> int:
    """Insert transfers not recorded yet (by job id); how many were new."""
    rows = [
        (
            t.job, schedd, t.completed, t.source.site, t.source.host, t.destination.site,
            t.destination.host, t.bytes, t.seconds, t.method, t.rate_limit_bps,
            t.network_received, t.network_sent,
        )
        for t in transfers
    ]  # fmt: skip
    with store.transaction() as db:
        before = db.total_changes
        db.executemany(
            "INSERT OR IGNORE INTO achieved_transfers (job, schedd, completed, source_site,"
            " source_host, destination_site, destination_host, bytes, seconds, method,"
            " rate_limit_bps, network_received, network_sent)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        return db.total_changes - before


def latest_completion(store: Store, schedd: str) -> int | None:
    """The newest completion recorded for ``schedd`` (where to read history from)."""
    with store.transaction() as db:
        row = db.execute(
            "SELECT max(completed) FROM achieved_transfers WHERE schedd = ?", (schedd,)
        ).fetchone()
    return None if row[0] is None else int(row[0])


def stored_transfers(store: Store, site_of: HostSite, since: int) -> list[StoredTransfer]:
    """Transfers completed after ``since``, oldest first, mapped to site pairs now."""
    with store.transaction() as db:
        rows = db.execute(
            "SELECT job, completed, source_site, source_host, destination_site,"
            " destination_host, bytes, seconds, method, rate_limit_bps, network_received,"
            " network_sent, predicted_bps FROM achieved_transfers WHERE completed > ?"
            " ORDER BY completed, job",
            (since,),
        ).fetchall()
    out = []
    for row in rows:
        source, destination = End(row[2], row[3]), End(row[4], row[5])
        transfer = AchievedTransfer(
            row[0], row[1], source, destination, row[6], row[7], row[8], row[9], row[10], row[11]
        )
        pair = _pair(source, destination, site_of)
        out.append(StoredTransfer(transfer, pair, row[12]))
    return out


def _pair(source: End, destination: End, site_of: HostSite) -> SitePair | None:
    ends = [end.site or (site_of(end.host) if end.host else None) for end in (source, destination)]
    if ends[0] is None or ends[1] is None:
        return None
    return (ends[0], ends[1])


def fill_predictions(
    store: Store,
    transfers: Iterable[StoredTransfer],
    predicted: Mapping[SitePair, float],
    now: int,
) -> list[StoredTransfer]:
    """Give transfers without a predicted figure their path's figure now; the list
    with those figures in."""
    out, updates = [], []
    for item in transfers:
        figure = predicted.get(item.pair) if item.pair is not None else None
        if item.predicted_bps is None and figure is not None and figure > 0:
            updates.append((figure, now, item.transfer.job))
            item = StoredTransfer(item.transfer, item.pair, figure)
        out.append(item)
    if updates:
        with store.transaction() as db:
            db.executemany(
                "UPDATE achieved_transfers SET predicted_bps = ?, predicted_at = ?"
                " WHERE job = ? AND predicted_bps IS NULL",
                updates,
            )
    return out


def samples_by_pair(transfers: Iterable[StoredTransfer]) -> dict[SitePair, list[Sample]]:
    """Calibration samples of each site pair (transfers with a path and a figure)."""
    out: dict[SitePair, list[Sample]] = defaultdict(list)
    for item in transfers:
        if item.pair is None or item.predicted_bps is None:
            continue
        t = item.transfer
        sample = Sample(t.completed, t.rate_bps, item.predicted_bps, t.rate_limit_bps, t.seconds)
        out[item.pair].append(sample)
    return dict(out)


def prune_transfers(store: Store, before: int) -> int:
    """Forget transfers completed at or before ``before``; how many."""
    with store.transaction() as db:
        return db.execute("DELETE FROM achieved_transfers WHERE completed <= ?", (before,)).rowcount


@dataclass(frozen=True, slots=True)
class AppliedRatio:
    """The ratio a cycle applied to a site pair, its live count and when."""

    ratio: float
    count: int
    updated: int


def load_ratios(store: Store) -> dict[SitePair, AppliedRatio]:
    """The ratio applied to each site pair in the last publishing cycle."""
    with store.transaction() as db:
        rows = db.execute(
            "SELECT source_site, destination_site, ratio, count, updated FROM calibration_state"
        )
        return {(r[0], r[1]): AppliedRatio(float(r[2]), int(r[3]), int(r[4])) for r in rows}


def save_ratios(store: Store, ratios: Mapping[SitePair, tuple[float, int]], now: int) -> None:
    """Replace the calibration state: each applied pair's ratio and live count."""
    with store.transaction() as db:
        db.execute("DELETE FROM calibration_state")
        db.executemany(
            "INSERT INTO calibration_state VALUES (?, ?, ?, ?, ?)",
            [(s, d, ratio, count, now) for (s, d), (ratio, count) in sorted(ratios.items())],
        )
