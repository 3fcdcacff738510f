"""Sliding a window's running partial forward without re-reading the hours it keeps.

The running partial of window ``w`` for a stream is the merge of its stored hourly
partials from hour ``first`` on. Each cycle the window's new first hour is
``first_hour(w, now)``: the hours that fell out are subtracted (as they were stored
before this cycle's tests), and this cycle's tests of the kept hours are merged
in. A cycle therefore costs the new tests plus one expired hour, whatever ``w``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from larkps.stats.rollups.partial import EMPTY_PARTIAL, Partial, merge, merge_all, subtract


@dataclass(frozen=True, slots=True, eq=False)
class WindowState:
    """Running partial of one stream over the hours from ``first`` on."""

    first: int
    partial: Partial = EMPTY_PARTIAL


def fresh_part(deltas: Mapping[int, Partial], first: int) -> Partial:
    """This cycle's tests in hours from ``first`` on (older ones lie outside the window)."""
    return merge_all(p for hour, p in deltas.items() if hour >= first)


def needs_rebuild(state: WindowState | None, first: int) -> bool:
    """No state yet, or time went backwards: merge the stored hours afresh."""
    return state is None or state.first > first


def expired_hours(state: WindowState, first: int) -> tuple[int, int] | None:
    """Inclusive range of hours that left the window, if any."""
    return (state.first, first - 1) if state.first < first else None


def slide(state: WindowState, first: int, expired: Partial, fresh: Partial) -> WindowState:
    """Drop the ``expired`` hours' partial, add this cycle's ``fresh`` tests."""
    return WindowState(first, merge(subtract(state.partial, expired), fresh))


def rebuild(first: int, stored: Partial, fresh: Partial) -> WindowState:
    """A state from the stored hours from ``first`` on plus this cycle's tests."""
    return WindowState(first, merge(stored, fresh))
