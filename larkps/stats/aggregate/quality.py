"""Data quality of a figure: completeness from cadence, age, staleness, clock trouble.

The cadence of a series is the median gap between its last ``CADENCE_GAPS + 1``
distinct test times; a window of span ``s`` then expects ``s / cadence`` tests of
it. A figure built from several series expects the sum.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from larkps.model import Quality

CADENCE_GAPS = 31


@dataclass(frozen=True, slots=True)
class QualityPolicy:
    """Limits that turn raw quality measures into flags (settings: [windows], [quality])."""

    stale_after: int = 6 * 3600  # seconds
    min_completeness: float = 0.5
    clock_error_ms: float = 10.0  # time-error-estimates above this flag the delays


def recent_gaps(timestamps: NDArray[np.integer], limit: int = CADENCE_GAPS) -> NDArray[np.int64]:
    """Gaps between the last ``limit + 1`` distinct test times (ascending input not needed)."""
    distinct = np.unique(np.asarray(timestamps, dtype=np.int64))
    return np.diff(distinct[-(limit + 1) :])


def cadence_of(gaps: NDArray[np.integer]) -> int | None:
    """Median gap in whole seconds (at least 1); None with no gap."""
    if gaps.size == 0:
        return None
    return max(1, round(float(np.median(gaps))))


def expected_tests(span: int, cadences: Iterable[tuple[int | None, int]]) -> float | None:
    """Tests a window of ``span`` seconds should hold, given (cadence, samples) per series.

    A series of unknown cadence (fewer than two tests seen) counts what it has.
    None when no series has a known cadence.
    """
    total = 0.0
    known = False
    for cadence, samples in cadences:
        if cadence is None:
            total += samples
        else:
            total += span / cadence
            known = True
    return total if known else None


def assess(
    samples: int,
    expected: float | None,
    latest_ts: int | None,
    end: int,
    policy: QualityPolicy,
    *,
    clock_error: bool = False,
    cadence: int | None = None,
    rejected: int = 0,
) -> Quality:
    """The Quality of one figure; no data at all is stale, never fresh."""
    completeness = None
    if expected is not None and expected > 0:
        completeness = min(1.0, samples / expected)
    age = None if latest_ts is None else max(0, end - latest_ts)
    return Quality(
        samples=samples,
        expected=None if expected is None else round(expected, 3),
        completeness=completeness,
        age=age,
        stale=age is None or age > policy.stale_after,
        low=completeness is not None and completeness < policy.min_completeness,
        clock_error=clock_error,
        cadence=cadence,
        rejected=rejected,
    )


def figure_quality(
    tests: int,
    cadences: Sequence[tuple[int | None, int]],
    latest_ts: int | None,
    span: int,
    end: int,
    policy: QualityPolicy,
    *,
    clock_error: bool = False,
    rejected: int = 0,
) -> Quality:
    """The Quality of a figure made of series with these (cadence, tests) pairs."""
    known = [c for c, _ in cadences if c is not None]
    return assess(
        tests,
        expected_tests(span, cadences),
        latest_ts if tests else None,
        end,
        policy,
        clock_error=clock_error,
        cadence=min(known) if known else None,
        rejected=rejected,
    )
