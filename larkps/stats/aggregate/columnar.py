"""Group-by statistics over columns (group id, ts, value): the scalar-series core.

One call computes, for every group with points in ``(start, end]``: count, mean,
population std, min, max, the QUANTILES (numpy's linear interpolation), the newest
ts and the value at it. Rows arrive grouped (series by series) in practice; the
values of each group are then sorted in place, group by group, which beats one
global lexsort by a wide margin (docs/benchmarks.md).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from itertools import pairwise

import numpy as np
from numpy.typing import NDArray

from larkps.stats.aggregate.weighted import QUANTILES, FloatArray, IntArray

# Below this many rows per group on average a global lexsort is cheaper than a loop.
_LOOP_MIN_ROWS = 48
# Below this many rows one thread is as quick (starting a thread pool costs more).
PARALLEL_MIN_ROWS = 200_000


@dataclass(frozen=True, slots=True)
class GroupStats:
    """Per-group statistics; row i describes group ``groups[i]``."""

    groups: IntArray
    count: IntArray
    mean: FloatArray
    std: FloatArray
    minimum: FloatArray
    maximum: FloatArray
    quantiles: FloatArray  # shape (groups, len(QUANTILES))
    latest_ts: IntArray
    latest_value: FloatArray

    def __len__(self) -> int:
        return int(self.groups.size)


def grouped_stats(
    group: NDArray[np.integer],
    ts: NDArray[np.integer],
    value: NDArray[np.floating],
    start: int,
    end: int,
    threads: int = 2,
) -> GroupStats:
    """Statistics per group over rows with ``start < ts <= end`` and finite values.

    Above PARALLEL_MIN_ROWS rows the groups are split in ``threads`` contiguous runs
    computed at once: the work is numpy calls that let go of the GIL (sorts,
    reductions, gathers), so two threads use two cores. The result does not depend on
    ``threads``."""
    keep = (ts > start) & (ts <= end) & np.isfinite(value)
    g = np.asarray(group[keep], dtype=np.int64)
    t = np.asarray(ts[keep], dtype=np.int64)
    v = np.asarray(value[keep], dtype=np.float64)
    if g.size and not bool(np.all(g[1:] >= g[:-1])):
        order = np.argsort(g, kind="stable")
        g, t, v = g[order], t[order], v[order]
    if g.size == 0:
        return _empty()
    cuts = _group_cuts(g, threads if g.size >= PARALLEL_MIN_ROWS else 1)
    if len(cuts) == 2:
        return _sorted_stats(g, t, v)
    runs = [(g[a:b], t[a:b], v[a:b]) for a, b in pairwise(cuts)]
    with ThreadPoolExecutor(len(runs)) as pool:
        return _joined(list(pool.map(lambda run: _sorted_stats(*run), runs)))


def _group_cuts(g: IntArray, parts: int) -> list[int]:
    """Row offsets splitting sorted ``g`` into about ``parts`` runs of whole groups."""
    cuts = [0]
    for k in range(1, max(1, parts)):
        at = int(np.searchsorted(g, g[g.size * k // parts], side="left"))
        if cuts[-1] < at < g.size:
            cuts.append(at)
    return [*cuts, int(g.size)]


def _sorted_stats(g: IntArray, t: IntArray, v: FloatArray) -> GroupStats:
    """The statistics of rows already sorted by group (at least one row)."""
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    counts = np.diff(np.r_[starts, g.size]).astype(np.int64)
    mean = np.add.reduceat(v, starts) / counts
    centred = v - np.repeat(mean, counts)
    std = np.sqrt(np.add.reduceat(centred * centred, starts) / counts)
    latest_ts, latest_value = _latest(t, v, starts, counts)
    ordered = _sort_within(g, v, starts, counts)
    ends = starts + counts - 1
    return GroupStats(
        groups=g[starts],
        count=counts,
        mean=mean,
        std=std,
        minimum=ordered[starts],
        maximum=ordered[ends],
        quantiles=_quantiles(ordered, starts, counts),
        latest_ts=latest_ts,
        latest_value=latest_value,
    )


def _joined(parts: list[GroupStats]) -> GroupStats:
    """Runs of whole groups, in order, as one GroupStats."""
    return GroupStats(
        *(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(GroupStats))
    )


def _latest(
    t: IntArray, v: FloatArray, starts: IntArray, counts: IntArray
) -> tuple[IntArray, FloatArray]:
    """Newest ts per group and the value of the last row holding it."""
    newest = np.maximum.reduceat(t, starts)
    at_newest = t == np.repeat(newest, counts)
    positions = np.where(at_newest, np.arange(t.size), -1)
    last = np.maximum.reduceat(positions, starts)
    return newest, v[last]


def _sort_within(g: IntArray, v: FloatArray, starts: IntArray, counts: IntArray) -> FloatArray:
    """Values sorted ascending inside each (contiguous) group."""
    if v.size < _LOOP_MIN_ROWS * starts.size:
        return v[np.lexsort((v, g))]
    ordered = v.copy()
    for first, size in zip(starts.tolist(), counts.tolist(), strict=True):
        ordered[first : first + size].sort()
    return ordered


def _quantiles(ordered: FloatArray, starts: IntArray, counts: IntArray) -> FloatArray:
    q = np.asarray(QUANTILES, dtype=np.float64)
    positions = q[np.newaxis, :] * (counts - 1)[:, np.newaxis]
    lower = np.floor(positions).astype(np.int64)
    upper = np.minimum(lower + 1, (counts - 1)[:, np.newaxis])
    low = ordered[starts[:, np.newaxis] + lower]
    high = ordered[starts[:, np.newaxis] + upper]
    return np.asarray(low + (positions - lower) * (high - low), dtype=np.float64)


def _empty() -> GroupStats:
    ints = np.zeros(0, dtype=np.int64)
    floats = np.zeros(0, dtype=np.float64)
    return GroupStats(
        groups=ints,
        count=ints,
        mean=floats,
        std=floats,
        minimum=floats,
        maximum=floats,
        quantiles=np.zeros((0, len(QUANTILES)), dtype=np.float64),
        latest_ts=ints,
        latest_value=floats,
    )
