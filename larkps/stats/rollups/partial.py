"""Partials: the mergeable (and subtractable) state of one stream over some hours.

A partial holds the tests of one stream as a weighted multiset of their samples
(every packet delay of a histogram; every value of a scalar series, count 1), the
number of tests, packet counts for loss, and the newest test. Merging two partials
gives exactly the partial of the union of their tests; subtracting a partial that
was merged in gives back the rest. Percentiles of a merged partial therefore equal
numpy's on all the samples (tests/test_rollups.py checks it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from larkps.stats.aggregate.weighted import EMPTY_COUNTS, EMPTY_VALUES, FloatArray, IntArray
from larkps.stats.aggregate.weighted import merge_weighted as _merge_weighted
from larkps.units import HOUR


def hour_of(ts: int) -> int:
    """Hour index k of a test: hour k holds ``k * 3600 < ts <= (k + 1) * 3600``."""
    return (ts - 1) // HOUR


def first_hour(window: int, now: int) -> int:
    """The hour holding the oldest second of ``(now - window, now]``."""
    return (now - window) // HOUR


def full_first_hour(window: int, now: int) -> int:
    """The first hour lying wholly inside ``(now - window, now]``."""
    return -((window - now) // HOUR)


@dataclass(frozen=True, slots=True, eq=False)
class Partial:
    """Tests of one stream over some hours (see the module docstring)."""

    tests: int = 0
    values: FloatArray = field(default_factory=lambda: EMPTY_VALUES)  # sorted, distinct
    counts: IntArray = field(default_factory=lambda: EMPTY_COUNTS)  # > 0, aligned
    sent: int = 0
    lost: int = 0
    latest_ts: int | None = None
    latest_value: float | None = None

    @property
    def empty(self) -> bool:
        return self.tests == 0

    def same_as(self, other: Partial) -> bool:
        """Equal contents (for tests and assertions)."""
        return (
            self.tests == other.tests
            and self.sent == other.sent
            and self.lost == other.lost
            and self.latest_ts == other.latest_ts
            and np.array_equal(self.values, other.values)
            and np.array_equal(self.counts, other.counts)
        )


EMPTY_PARTIAL = Partial()


def _newest(parts: Iterable[Partial]) -> tuple[int | None, float | None]:
    best: tuple[int | None, float | None] = (None, None)
    for part in parts:
        if part.latest_ts is not None and (best[0] is None or part.latest_ts >= best[0]):
            best = (part.latest_ts, part.latest_value)
    return best


def merge_all(parts: Iterable[Partial]) -> Partial:
    """One partial holding every test of ``parts``."""
    present = [p for p in parts if not p.empty]
    if not present:
        return EMPTY_PARTIAL
    if len(present) == 1:
        return present[0]
    values, counts = _merge_weighted(
        np.concatenate([p.values for p in present]), np.concatenate([p.counts for p in present])
    )
    latest_ts, latest_value = _newest(present)
    return Partial(
        tests=sum(p.tests for p in present),
        values=values,
        counts=counts,
        sent=sum(p.sent for p in present),
        lost=sum(p.lost for p in present),
        latest_ts=latest_ts,
        latest_value=latest_value,
    )


def merge(a: Partial, b: Partial) -> Partial:
    return merge_all((a, b))


def subtract(whole: Partial, part: Partial) -> Partial:
    """``whole`` without the tests of ``part``, which must have been merged into it.

    The newest test of what remains is kept from ``whole``: callers only subtract
    hours older than everything they keep.
    """
    if part.empty:
        return whole
    tests = whole.tests - part.tests
    if tests <= 0:
        return EMPTY_PARTIAL
    counts = whole.counts.copy()
    where = np.searchsorted(whole.values, part.values)
    inside = where < whole.values.size
    if not (bool(inside.all()) and np.array_equal(whole.values[where], part.values)):
        raise ValueError("subtracting samples that were never merged in")
    np.subtract.at(counts, where, part.counts)
    if bool((counts < 0).any()):
        raise ValueError("subtracting more samples than were merged in")
    keep = counts > 0
    return Partial(
        tests=tests,
        values=whole.values[keep],
        counts=counts[keep],
        sent=whole.sent - part.sent,
        lost=whole.lost - part.lost,
        latest_ts=whole.latest_ts,
        latest_value=whole.latest_value,
    )


def to_blobs(partial: Partial) -> tuple[bytes, bytes]:
    """Little-endian float64 values and int64 counts."""
    return (
        partial.values.astype("<f8", copy=False).tobytes(),
        partial.counts.astype("<i8", copy=False).tobytes(),
    )


def from_blobs(
    tests: int,
    values: bytes,
    counts: bytes,
    sent: int = 0,
    lost: int = 0,
    latest_ts: int | None = None,
    latest_value: float | None = None,
) -> Partial:
    """The inverse of :func:`to_blobs` plus the scalar columns."""
    return Partial(
        tests=tests,
        values=np.frombuffer(values, dtype="<f8").astype(np.float64),
        counts=np.frombuffer(counts, dtype="<i8").astype(np.int64),
        sent=sent,
        lost=lost,
        latest_ts=latest_ts,
        latest_value=latest_value,
    )
