"""One series' points made safe to aggregate: sorted, de-duplicated, garbage dropped.

Rules (shared by direct windows and rollups, so both see the same samples):

* points after ``now`` are ignored; two points of one series at the same ts are one
  test reported twice: the last one wins;
* scalar values must be finite and inside the metric's plausible range, else they
  are dropped and counted in ``rejected`` (per-test delays within +-100 s, loss
  fractions within 0..1);
* histogram buckets with non-finite values, delays beyond +-100 s or counts <= 0 are
  dropped (their samples counted in ``rejected``); an empty histogram is no test.

Histograms are kept in CSR form: all buckets of all tests in two flat arrays, with
``offsets[i]:offsets[i + 1]`` the buckets of test i, ascending by value.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

from larkps.histogram import EMPTY
from larkps.model import Metric, Point, Series
from larkps.stats.aggregate.summaries import DELAY_LIMIT_MS, unpacked
from larkps.stats.aggregate.weighted import (
    EMPTY_COUNTS,
    EMPTY_VALUES,
    FloatArray,
    IntArray,
    csr_percentile,
)

HISTOGRAM_METRICS = (Metric.OWDELAY, Metric.RTT)
#: plausible (low, high) per scalar metric; outside is garbage
SCALAR_LIMITS: dict[Metric, tuple[float, float]] = {
    Metric.THROUGHPUT: (0.0, 1e13),  # bits/s: up to 10 Tbit/s
    Metric.RETRANSMITS: (0.0, 1e12),
    Metric.CLOCK_ERROR: (0.0, 1e6),  # ms
    Metric.PACKETS_LOST: (0.0, 1e12),
    Metric.PACKETS_SENT: (0.0, 1e12),
    Metric.LOSS_RATE: (0.0, 1.0),
    Metric.LOSS_RATE_BIDIR: (0.0, 1.0),
    Metric.PACKETS_LOST_BIDIR: (0.0, 1e12),
    Metric.OWDELAY_MEDIAN: (-DELAY_LIMIT_MS, DELAY_LIMIT_MS),  # negative: a bad clock
    Metric.OWDELAY_MEAN: (-DELAY_LIMIT_MS, DELAY_LIMIT_MS),
    Metric.RTT_MEAN: (0.0, DELAY_LIMIT_MS),
    Metric.RTT_MIN: (0.0, DELAY_LIMIT_MS),
}
#: the lost counts a test's packet-count-sent pairs with, in order of preference
LOST_COUNTS = (Metric.PACKETS_LOST, Metric.PACKETS_LOST_BIDIR)
_NO_OFFSETS = np.zeros(1, dtype=np.int64)


@dataclass(frozen=True, slots=True, eq=False)
class CleanSeries:
    """Tests of one series up to ``now``, ascending by ts."""

    series: Series
    ts: IntArray
    values: FloatArray  # scalars; for histograms the median of each test; NaN for failures
    bucket_values: FloatArray = field(default_factory=lambda: EMPTY_VALUES)
    bucket_counts: IntArray = field(default_factory=lambda: EMPTY_COUNTS)
    offsets: IntArray = field(default_factory=lambda: _NO_OFFSETS)
    rejected: int = 0

    @property
    def histograms(self) -> tuple[tuple[FloatArray, IntArray], ...]:
        """Per-test (values, counts) views of the CSR buckets (empty for scalars)."""
        bounds = self.offsets.tolist()
        return tuple(
            (self.bucket_values[a:b], self.bucket_counts[a:b]) for a, b in pairwise(bounds)
        )

    def slice(self, lo: int, hi: int) -> CleanSeries:
        """Tests lo..hi-1 (by index)."""
        offsets = self.offsets[lo : hi + 1] if self.offsets.size > 1 else _NO_OFFSETS
        first, last = int(offsets[0]), int(offsets[-1])
        return CleanSeries(
            self.series,
            self.ts[lo:hi],
            self.values[lo:hi],
            self.bucket_values[first:last],
            self.bucket_counts[first:last],
            offsets - first,
            self.rejected,
        )

    def window(self, start: int) -> CleanSeries:
        """The tests with ts > start."""
        return self.slice(int(np.searchsorted(self.ts, start, side="right")), self.ts.size)


def lost_metric(metrics: Collection[Metric]) -> Metric | None:
    """The lost count one test's series pair with its sent count: one-way, else round trip."""
    if Metric.PACKETS_SENT not in metrics:
        return None
    return next((m for m in LOST_COUNTS if m in metrics), None)


def clean_series(series: Series, points: Sequence[Point], now: int) -> CleanSeries:
    """Sorted, de-duplicated, validated tests of ``series`` with ts <= now."""
    latest: dict[int, Point] = {}
    for point in points:
        if point.ts <= now:
            latest[point.ts] = point
    ordered = [latest[ts] for ts in sorted(latest)]
    if series.metric in HISTOGRAM_METRICS:
        return _histograms(series, ordered)
    if series.metric is Metric.FAILURE:
        ts = np.fromiter((p.ts for p in ordered), dtype=np.int64, count=len(ordered))
        return CleanSeries(series, ts, np.full(ts.size, np.nan))
    return _scalars(series, ordered)


def _scalars(series: Series, points: list[Point]) -> CleanSeries:
    present = [p for p in points if p.value is not None]
    ts = np.fromiter((p.ts for p in present), dtype=np.int64, count=len(present))
    values = np.fromiter((p.value for p in present), dtype=np.float64, count=len(present))
    low, high = SCALAR_LIMITS.get(series.metric, (-np.inf, np.inf))
    ok = np.isfinite(values) & (values >= low) & (values <= high)
    return CleanSeries(series, ts[ok], values[ok], rejected=int((~ok).sum()))


def _histograms(series: Series, points: list[Point]) -> CleanSeries:
    present = [p for p in points if p.histogram]
    values, counts, sizes = unpacked([p.histogram or EMPTY for p in present])
    owner = np.repeat(np.arange(len(present), dtype=np.int64), sizes)
    ok = np.isfinite(values) & (np.abs(values) <= DELAY_LIMIT_MS) & (counts > 0)
    rejected = int(counts[~ok & (counts > 0)].sum())
    values, counts, owner = values[ok], counts[ok], owner[ok]
    if values.size and not bool(np.all((np.diff(values) >= 0) | (np.diff(owner) != 0))):
        order = np.lexsort((values, owner))
        values, counts, owner = values[order], counts[order], owner[order]
    kept = np.bincount(owner, minlength=len(present))
    tests = kept > 0
    ts = np.fromiter((p.ts for p in present), np.int64, len(present))[tests]
    offsets = np.concatenate([[0], np.cumsum(kept[tests])]).astype(np.int64)
    medians = csr_percentile(values, counts, offsets, 0.5)
    return CleanSeries(series, ts, medians, values, counts, offsets, rejected)
