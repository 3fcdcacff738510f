"""Row-wise histograms in CSR form (integer bucket values, counts, row offsets).

Bucket values are integers in hundredths of a millisecond. All operations are
vectorised over rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

_SENTINEL = np.iinfo(np.int32).max
PERCENTILES = (25, 50, 75, 95)
STAT_KEYS = (
    "minimum",
    "maximum",
    "mean",
    "variance",
    "standard-deviation",
    "percentile-25",
    "median",
    "percentile-75",
    "percentile-95",
)


@dataclass(frozen=True)
class Hist:
    """``rows`` histograms; row i is values[offsets[i]:offsets[i+1]] (ascending)."""

    values: NDArray[np.int32]
    counts: NDArray[np.int64]
    offsets: NDArray[np.int64]

    @property
    def rows(self) -> int:
        """Number of histograms."""
        return int(self.offsets.size - 1)

    @property
    def totals(self) -> NDArray[np.int64]:
        """Samples per row."""
        cum = np.concatenate(([0], np.cumsum(self.counts)))
        out: NDArray[np.int64] = cum[self.offsets[1:]] - cum[self.offsets[:-1]]
        return out

    def row_of_bucket(self) -> NDArray[np.int64]:
        """Row index of every bucket."""
        return np.repeat(np.arange(self.rows, dtype=np.int64), np.diff(self.offsets))

    def take(self, rows: NDArray[np.int64]) -> Hist:
        """The histograms at ``rows`` (ascending indices)."""
        if rows.size and int(rows[-1]) - int(rows[0]) == rows.size - 1:
            return self._span(int(rows[0]), int(rows[-1]) + 1)
        lengths = np.diff(self.offsets)[rows]
        starts = self.offsets[:-1][rows]
        idx = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
        idx = idx + np.arange(int(lengths.sum()), dtype=np.int64)
        offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
        return Hist(self.values[idx], self.counts[idx], offsets)

    def _span(self, first: int, stop: int) -> Hist:
        """Rows ``first`` to ``stop - 1``, as :meth:`take` gives them (arrays copied)."""
        offsets = self.offsets[first : stop + 1]
        lo, hi = int(offsets[0]), int(offsets[-1])
        return Hist(self.values[lo:hi].copy(), self.counts[lo:hi].copy(), offsets - lo)

    def expand(self) -> NDArray[np.int32]:
        """Every sample of every row, as one flat array."""
        return np.repeat(self.values, self.counts)


def empty_hist() -> Hist:
    """A histogram set with no rows."""
    return Hist(np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(1, np.int64))


def concat(parts: list[Hist]) -> Hist:
    """Rows of all ``parts`` one after the other."""
    if not parts:
        return empty_hist()
    shifts = np.cumsum([0] + [p.values.size for p in parts[:-1]])
    offsets = [parts[0].offsets[:1]] + [
        p.offsets[1:] + s for p, s in zip(parts, shifts, strict=True)
    ]
    return Hist(
        np.concatenate([p.values for p in parts]),
        np.concatenate([p.counts for p in parts]),
        np.concatenate(offsets).astype(np.int64),
    )


def from_samples(samples: NDArray[np.int32], received: NDArray[np.int64]) -> Hist:
    """Histogram each row of ``samples``, using only its first ``received[i]`` entries."""
    n, width = samples.shape
    cols = np.arange(width)
    x = np.where(cols[None, :] < received[:, None], samples, _SENTINEL).astype(np.int32)
    x.sort(axis=1)
    new = np.ones(x.shape, dtype=bool)
    new[:, 1:] = x[:, 1:] != x[:, :-1]
    starts = np.flatnonzero(new & (x != _SENTINEL))
    row = starts // width
    nxt = np.append(starts[1:], n * width)
    ends = np.minimum(nxt, row * width + received[row])
    offsets = np.searchsorted(row, np.arange(n + 1)).astype(np.int64)
    return Hist(x.ravel()[starts], (ends - starts).astype(np.int64), offsets)


def merge_groups(hist: Hist, group: NDArray[np.int64]) -> tuple[NDArray[np.int64], Hist]:
    """Sum rows that share a ``group`` id (one per row); returns (group ids, merged)."""
    g = group[hist.row_of_bucket()]
    v = hist.values.astype(np.int64) - int(np.iinfo(np.int32).min)
    keys, inverse = np.unique(g * (1 << 33) + v, return_inverse=True)
    counts = np.bincount(inverse, weights=hist.counts).astype(np.int64)
    key_group = keys >> 33
    values = (keys - (key_group << 33) + int(np.iinfo(np.int32).min)).astype(np.int32)
    groups, first = np.unique(key_group, return_index=True)
    offsets = np.append(first, keys.size).astype(np.int64)
    return groups, Hist(values, counts, offsets)


def _nth_sample(hist: Hist, nth: NDArray[np.int64]) -> NDArray[np.float64]:
    """Value of the nth (1-based) smallest sample of every row."""
    cum = np.cumsum(hist.counts)
    before = np.concatenate(([0], cum))[hist.offsets[:-1]]
    idx = np.searchsorted(cum, before + nth, side="left")
    return hist.values[idx].astype(np.float64)


def _nist(hist: Hist, totals: NDArray[np.int64], pct: int) -> NDArray[np.float64]:
    """NIST (Weibull) percentile per row, as esmond computes it."""
    rank = pct / 100.0 * (totals + 1)
    k = np.floor(rank).astype(np.int64)
    d = rank - k
    lo = _nth_sample(hist, np.clip(k, 1, totals))
    hi = _nth_sample(hist, np.clip(k + 1, 1, totals))
    out: NDArray[np.float64] = np.where(k < 1, lo, np.where(k >= totals, hi, lo + d * (hi - lo)))
    return out


def stats(hist: Hist) -> dict[str, NDArray[np.float64]]:
    """Per-row statistics (bucket units) with esmond's definitions (population variance).

    Every row must be non-empty.
    """
    if hist.rows == 0:
        return {key: np.zeros(0) for key in STAT_KEYS}
    totals = hist.totals
    starts = hist.offsets[:-1]
    weighted = hist.values.astype(np.float64) * hist.counts
    mean = np.add.reduceat(weighted, starts) / totals
    dev = (hist.values - mean[hist.row_of_bucket()]) ** 2 * hist.counts
    variance = np.add.reduceat(dev, starts) / totals
    out = {
        "minimum": hist.values[starts].astype(np.float64),
        "maximum": hist.values[hist.offsets[1:] - 1].astype(np.float64),
        "mean": mean,
        "variance": variance,
        "standard-deviation": np.sqrt(variance),
    }
    for pct in PERCENTILES:
        out["median" if pct == 50 else f"percentile-{pct}"] = _nist(hist, totals, pct)
    return out


def modes(hist: Hist) -> list[list[int]]:
    """Most frequent bucket values of every row (ties give several); rows non-empty."""
    if hist.rows == 0:
        return []
    top = np.maximum.reduceat(hist.counts, hist.offsets[:-1])
    is_mode = hist.counts == top[hist.row_of_bucket()]
    cuts = np.cumsum(np.add.reduceat(is_mode.astype(np.int64), hist.offsets[:-1]))[:-1]
    return [part.tolist() for part in np.split(hist.values[is_mode], cuts)]
