"""Pure: which execute sites can read a data set fastest, from expected bandwidth.

Sites are ranked by expected transfer time of the input, computed on the lower
bound of the bandwidth forecast (forecast - error) and only where the figure is
trusted (fresh, good enough); the others follow with the reason they were not
ranked. The data site itself comes first: its jobs read over the LAN.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from larkps.decide.views import PathView, best_family


@dataclass(frozen=True, slots=True)
class AdviceRow:
    """One execute site and why it sits where it does."""

    site: str
    rank: int | None  # None: not ranked (no trusted figure)
    lower_mbps: float | None
    expected_mbps: float | None
    transfer_s: float | None
    meets_deadline: bool | None
    reason: str


@dataclass(frozen=True, slots=True)
class Advice:
    """Ranked execute sites for one data set."""

    data_site: str
    size_bytes: int
    deadline_s: int | None
    stale_after: int
    rows: tuple[AdviceRow, ...]


def _untrusted_reason(view: PathView, now: int, stale_after: int, min_quality: float) -> str:
    if view.lower_mbps is None:
        return "no bandwidth figure"
    if view.stale or now - view.update_time > stale_after:
        return f"stale figures (updated {max(0, now - view.update_time) // 60} min ago)"
    return f"quality {view.quality:.2f} below {min_quality:.2f}"


def _row(
    view: PathView, size: int, deadline: int | None, now: int, stale_after: int, min_quality: float
) -> AdviceRow:
    if not view.trusted(now, stale_after, min_quality):
        reason = _untrusted_reason(view, now, stale_after, min_quality)
        return AdviceRow(
            view.destination_site, None, view.lower_mbps, view.expected_mbps, None, None, reason
        )
    lower = view.lower_mbps or 0.0
    seconds = size * 8 / (lower * 1e6) if lower > 0 else math.inf
    meets = None if deadline is None else seconds <= deadline
    reason = f"{view.rationale}, {view.family}"
    if meets is False:
        reason += f"; misses the {deadline} s deadline"
    return AdviceRow(view.destination_site, None, lower, view.expected_mbps, seconds, meets, reason)


def advise(
    views: Iterable[PathView],
    data_site: str,
    size_bytes: int,
    now: int,
    stale_after: int,
    min_quality: float,
    deadline_s: int | None = None,
) -> Advice:
    """Rank every site that has a path from `data_site`."""
    chosen = best_family(views, now, stale_after, min_quality)
    rows = [
        _row(v, size_bytes, deadline_s, now, stale_after, min_quality)
        for (source, destination), v in chosen.items()
        if source == data_site and destination != data_site
    ]
    ranked = sorted(
        (r for r in rows if r.transfer_s is not None), key=lambda r: (r.transfer_s, r.site)
    )
    unranked = sorted((r for r in rows if r.transfer_s is None), key=lambda r: r.site)
    local = AdviceRow(
        data_site, 1, None, None, 0.0, True if deadline_s else None, "data site: read over the LAN"
    )
    ordered = [local] + [_with_rank(r, i + 2) for i, r in enumerate(ranked)] + unranked
    return Advice(data_site, size_bytes, deadline_s, stale_after, tuple(ordered))


def _with_rank(row: AdviceRow, rank: int) -> AdviceRow:
    return AdviceRow(
        row.site,
        rank,
        row.lower_mbps,
        row.expected_mbps,
        row.transfer_s,
        row.meets_deadline,
        row.reason,
    )
