"""Weighted multisets: (sorted distinct values, counts) and their statistics.

A latency histogram is a weighted multiset of delays; a scalar series is one with
every count 1. Every statistic here equals numpy's on the expanded samples
(``numpy.repeat(values, counts)``): linear-interpolation percentiles and the
population standard deviation (ddof 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: the percentiles every Summary carries, as quantiles
QUANTILES = (0.10, 0.25, 0.50, 0.75, 0.90, 0.95)

EMPTY_VALUES: FloatArray = np.zeros(0, dtype=np.float64)
EMPTY_COUNTS: IntArray = np.zeros(0, dtype=np.int64)


def weighted_percentiles(
    values: NDArray[np.floating] | Sequence[float],
    counts: NDArray[np.integer] | Sequence[int],
    quantiles: Sequence[float],
) -> FloatArray:
    """Percentiles of the samples a histogram stands for, without expanding it.

    Equal to ``numpy.percentile(numpy.repeat(values, counts), 100 * q)`` with
    numpy's default linear interpolation. `values` need not be sorted.
    """
    order = np.argsort(values, kind="stable")
    sorted_values = np.asarray(values, dtype=np.float64)[order]
    cumulative = np.cumsum(np.asarray(counts, dtype=np.int64)[order])
    return sorted_percentiles(sorted_values, cumulative, quantiles)


def sorted_percentiles(
    sorted_values: FloatArray, cumulative: IntArray, quantiles: Sequence[float]
) -> FloatArray:
    """Percentiles from values in ascending order and their cumulative counts."""
    total = int(cumulative[-1])
    positions = np.asarray(quantiles, dtype=np.float64) * (total - 1)
    lower = np.floor(positions).astype(np.int64)
    upper = np.minimum(lower + 1, total - 1)
    low = sorted_values[np.searchsorted(cumulative, lower, side="right")]
    high = sorted_values[np.searchsorted(cumulative, upper, side="right")]
    fraction = positions - lower
    return np.asarray(low + fraction * (high - low), dtype=np.float64)


def merge_weighted(values: FloatArray, counts: IntArray) -> tuple[FloatArray, IntArray]:
    """Collapse equal values: sorted distinct values and their summed counts."""
    if values.size == 0:
        return EMPTY_VALUES, EMPTY_COUNTS
    distinct, inverse = np.unique(values, return_inverse=True)
    summed = np.bincount(inverse.ravel(), weights=counts, minlength=distinct.size)
    keep = summed > 0
    return distinct[keep].astype(np.float64), np.rint(summed[keep]).astype(np.int64)


def clean_weighted(
    values: FloatArray, counts: IntArray, limit: float
) -> tuple[FloatArray, IntArray, int]:
    """Drop buckets with non-finite or absurd values (|v| > limit) or counts <= 0.

    Returns the kept buckets and the number of samples dropped.
    """
    ok = np.isfinite(values) & (np.abs(values) <= limit) & (counts > 0)
    if bool(ok.all()):
        return values, counts, 0
    dropped = int(counts[~ok & (counts > 0)].sum())
    return values[ok], counts[ok], dropped


@dataclass(frozen=True, slots=True)
class Described:
    """Statistics of one weighted multiset (all samples, not tests)."""

    samples: int
    mean: float
    std: float
    minimum: float
    maximum: float
    quantiles: tuple[float, ...]  # at QUANTILES

    def at(self, q: float) -> float:
        return self.quantiles[QUANTILES.index(q)]


def describe(values: FloatArray, counts: IntArray) -> Described | None:
    """Statistics of sorted distinct values with positive counts; None if empty."""
    if values.size == 0:
        return None
    cumulative = np.cumsum(counts)
    total = int(cumulative[-1])
    mean = float(np.dot(values, counts) / total)
    variance = float(np.dot((values - mean) ** 2, counts) / total)
    quantiles = sorted_percentiles(values, cumulative, QUANTILES)
    return Described(
        samples=total,
        mean=mean,
        std=float(np.sqrt(max(variance, 0.0))),
        minimum=float(values[0]),
        maximum=float(values[-1]),
        quantiles=tuple(float(q) for q in quantiles),
    )


def weighted_median(values: FloatArray, counts: IntArray) -> float | None:
    """Median of one histogram (values need not be sorted); None if empty."""
    if values.size == 0 or int(counts.sum()) <= 0:
        return None
    return float(weighted_percentiles(values, counts, (0.5,))[0])


def segment_ids(offsets: IntArray) -> IntArray:
    """For CSR offsets (n + 1 of them): the segment index of every element."""
    sizes = np.diff(offsets)
    return np.repeat(np.arange(sizes.size, dtype=np.int64), sizes)


def csr_percentile(
    values: FloatArray, counts: IntArray, offsets: IntArray, quantile: float
) -> FloatArray:
    """One percentile per segment of a CSR set of histograms (NaN for empty segments).

    Each segment's values must be ascending (as parsed histograms are). Equal to
    ``weighted_percentiles`` segment by segment, in one vectorised pass.
    """
    n = offsets.size - 1
    out = np.full(n, np.nan)
    if values.size == 0 or n == 0:
        return out
    cumulative = np.cumsum(counts)
    before = np.concatenate([[0], cumulative])[offsets[:-1]]
    totals = np.concatenate([[0], cumulative])[offsets[1:]] - before
    present = totals > 0
    position = quantile * (totals[present] - 1)
    lower = np.floor(position).astype(np.int64)
    upper = np.minimum(lower + 1, totals[present] - 1)
    base = before[present]
    low = values[np.searchsorted(cumulative, base + lower, side="right")]
    high = values[np.searchsorted(cumulative, base + upper, side="right")]
    out[present] = low + (position - lower) * (high - low)
    return out
