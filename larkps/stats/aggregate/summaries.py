"""Summaries of one figure: from weighted multisets, histograms, scalar samples, loss counts."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from larkps.histogram import BUCKET_BYTES
from larkps.model import Basis, Histogram, LossSummary, Quality, Summary
from larkps.stats.aggregate.weighted import (
    EMPTY_COUNTS,
    EMPTY_VALUES,
    Described,
    FloatArray,
    IntArray,
    clean_weighted,
    describe,
    merge_weighted,
    weighted_median,
)

#: delays beyond +-100 s are measurement garbage (sand-ci's "bad owd" limit)
DELAY_LIMIT_MS = 100_000.0


def summary_of(
    described: Described | None,
    tests: int,
    latest: tuple[int, float | None] | None,
    end: int | None = None,
    quality: Quality | None = None,
    basis: Basis | None = None,
) -> Summary:
    """A Summary from multiset statistics, the test count and the newest (ts, value)."""
    if described is None or tests <= 0:
        return Summary(count=0, quality=quality)
    latest_ts, latest_value = latest if latest is not None else (None, None)
    age = None if latest_ts is None or end is None else max(0, end - latest_ts)
    return Summary(
        count=tests,
        median=described.at(0.5),
        p10=described.at(0.1),
        p90=described.at(0.9),
        mean=described.mean,
        minimum=described.minimum,
        maximum=described.maximum,
        latest_ts=latest_ts,
        p95=described.at(0.95),
        std=described.std,
        latest_value=latest_value,
        age=age,
        p25=described.at(0.25),
        p75=described.at(0.75),
        quality=quality,
        basis=basis,
    )


def histogram_arrays(histogram: Histogram) -> tuple[FloatArray, IntArray]:
    """A histogram as (values, counts) arrays, garbage buckets dropped."""
    if not histogram:
        return EMPTY_VALUES, EMPTY_COUNTS
    raw_values, raw_counts, _ = unpacked([histogram])
    values, counts, _ = clean_weighted(raw_values, raw_counts, DELAY_LIMIT_MS)
    return values, counts


def unpacked(histograms: Sequence[Histogram]) -> tuple[FloatArray, IntArray, IntArray]:
    """Bucket values, counts and bucket counts of packed histograms, concatenated.

    Each histogram is 8n bytes of values then 4n bytes of counts: one byte mask over
    the joined blobs splits every histogram's two columns at once."""
    lengths_bytes = np.fromiter(map(len, histograms), np.int64, len(histograms))
    if np.any(lengths_bytes % BUCKET_BYTES):  # torn blobs: cut, not a crash
        histograms = [Histogram(h[: len(h) - len(h) % BUCKET_BYTES]) for h in histograms]
    sizes = lengths_bytes // BUCKET_BYTES
    raw = np.frombuffer(b"".join(histograms), np.uint8)
    lengths = np.column_stack((8 * sizes, 4 * sizes)).ravel()
    is_value = np.repeat(np.tile(np.array([True, False]), len(histograms)), lengths)
    values = raw[is_value].view("<f8").astype(np.float64)
    counts = raw[~is_value].view("<u4").astype(np.int64)
    return values, counts, sizes


def merged_histograms(
    histograms: Sequence[tuple[int, FloatArray, IntArray]],
) -> tuple[FloatArray, IntArray, int, tuple[int, float | None] | None]:
    """Merge (ts, values, counts) histograms: multiset, tests, newest (ts, its median)."""
    present = [(ts, v, c) for ts, v, c in histograms if v.size]
    if not present:
        return EMPTY_VALUES, EMPTY_COUNTS, 0, None
    values, counts = merge_weighted(
        np.concatenate([v for _, v, _ in present]), np.concatenate([c for _, _, c in present])
    )
    newest = max(ts for ts, _, _ in present)
    at_newest = [(v, c) for ts, v, c in present if ts == newest]
    median = weighted_median(
        np.concatenate([v for v, _ in at_newest]), np.concatenate([c for _, c in at_newest])
    )
    return values, counts, len(present), (newest, median)


def histogram_summary(
    histograms: Sequence[tuple[int, Histogram]],
    end: int | None = None,
    quality: Quality | None = None,
) -> Summary:
    """Statistics over all samples of the merged histograms (ts, histogram)."""
    arrays = [(ts, *histogram_arrays(h)) for ts, h in histograms]
    values, counts, tests, latest = merged_histograms(arrays)
    return summary_of(describe(values, counts), tests, latest, end, quality)


def scalar_summary(
    samples: pd.DataFrame, end: int | None = None, quality: Quality | None = None
) -> Summary:
    """Statistics of per-test values (columns ts, value); non-finite values are skipped."""
    finite = samples[np.isfinite(samples["value"].to_numpy(dtype=np.float64))]
    if finite.empty:
        return Summary(count=0, quality=quality)
    ts = finite["ts"].to_numpy(dtype=np.int64)
    raw = finite["value"].to_numpy(dtype=np.float64)
    values, counts = merge_weighted(raw, np.ones(raw.size, dtype=np.int64))
    newest = int(ts.max())
    latest = (newest, float(raw[np.flatnonzero(ts == newest)[-1]]))
    return summary_of(describe(values, counts), int(raw.size), latest, end, quality)


LossCounts = dict[tuple[str, int], list[float | None]]


def loss_summary(counts: LossCounts, quality: Quality | None = None) -> LossSummary:
    """sum(lost) / sum(sent) over tests that reported both counts (lost capped at sent)."""
    complete = [
        (key[1], lost, sent)
        for key, (lost, sent) in counts.items()
        if lost is not None
        and sent is not None
        and _count_ok(lost)
        and _count_ok(sent)
        and sent > 0
    ]
    if not complete:
        return LossSummary(count=0, quality=quality)
    return LossSummary(
        count=len(complete),
        packets_sent=int(sum(sent for _, _, sent in complete)),
        packets_lost=int(sum(min(lost, sent) for _, lost, sent in complete)),
        latest_ts=max(ts for ts, _, _ in complete),
        quality=quality,
    )


def _count_ok(value: float) -> bool:
    return math.isfinite(value) and value >= 0
