"""Pure statistics: series and points in, per-path statistics out.

No I/O and no clock: the window end (`now`) is an argument. pandas stays in here.
A window ending at ``now`` of length ``w`` holds points with ``now - w < ts <= now``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from larkps.model import (
    Histogram,
    LossSummary,
    Metric,
    PathKey,
    PathStats,
    Point,
    Series,
    Summary,
)

SCALAR_METRICS = (Metric.THROUGHPUT, Metric.RETRANSMITS)
HISTOGRAM_METRICS = (Metric.OWDELAY, Metric.RTT)


def weighted_percentiles(
    values: np.ndarray, counts: np.ndarray, quantiles: Sequence[float]
) -> np.ndarray:
    """Percentiles of the samples a histogram stands for, without expanding it.

    Equal to ``numpy.percentile(numpy.repeat(values, counts), 100 * q)`` with
    numpy's default linear interpolation. `values` need not be sorted.
    """
    order = np.argsort(values, kind="stable")
    sorted_values = np.asarray(values, dtype=float)[order]
    cumulative = np.cumsum(np.asarray(counts, dtype=np.int64)[order])
    total = int(cumulative[-1])
    positions = np.asarray(quantiles, dtype=float) * (total - 1)
    lower = np.floor(positions).astype(np.int64)
    upper = np.minimum(lower + 1, total - 1)
    low_values = sorted_values[np.searchsorted(cumulative, lower, side="right")]
    high_values = sorted_values[np.searchsorted(cumulative, upper, side="right")]
    return np.asarray(low_values + (positions - lower) * (high_values - low_values))


def histogram_summary(histograms: Sequence[tuple[int, Histogram]]) -> Summary:
    """Statistics over all samples of the merged histograms (ts, histogram)."""
    non_empty = [(ts, h) for ts, h in histograms if h]
    if not non_empty:
        return Summary(count=0)
    values = np.fromiter((v for _, h in non_empty for v, _ in h), dtype=float)
    counts = np.fromiter((c for _, h in non_empty for _, c in h), dtype=np.int64)
    p10, p50, p90 = weighted_percentiles(values, counts, (0.1, 0.5, 0.9))
    return Summary(
        count=len(non_empty),
        median=float(p50),
        p10=float(p10),
        p90=float(p90),
        mean=float(np.average(values, weights=counts)),
        minimum=float(values.min()),
        maximum=float(values.max()),
        latest_ts=max(ts for ts, _ in non_empty),
    )


def scalar_summary(samples: pd.DataFrame) -> Summary:
    """Statistics of per-test values (columns ts, value)."""
    if samples.empty:
        return Summary(count=0)
    values = samples["value"]
    p10, p50, p90 = values.quantile([0.1, 0.5, 0.9]).tolist()
    return Summary(
        count=len(values),
        median=float(p50),
        p10=float(p10),
        p90=float(p90),
        mean=float(values.mean()),
        minimum=float(values.min()),
        maximum=float(values.max()),
        latest_ts=int(samples["ts"].max()),
    )


@dataclass
class _PathData:
    """Points of one path inside the window, gathered from all its series."""

    scalars: dict[Metric, list[tuple[int, float]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    histograms: dict[Metric, list[tuple[int, Histogram]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    counts: dict[tuple[str, int], list[float | None]] = field(default_factory=dict)
    failures: int = 0
    hosts: set[str] = field(default_factory=set)


def path_key(series: Series) -> PathKey:
    return PathKey(series.source.site, series.destination.site, series.family)


def _gather(
    data: Iterable[tuple[Series, Sequence[Point]]], start: int, end: int
) -> dict[PathKey, _PathData]:
    paths: dict[PathKey, _PathData] = defaultdict(_PathData)
    for series, points in data:
        bucket = paths[path_key(series)]
        bucket.hosts.update((series.source.host, series.destination.host))
        for point in points:
            if start < point.ts <= end:
                _add_point(bucket, series, point)
    return paths


def _add_point(bucket: _PathData, series: Series, point: Point) -> None:
    metric = series.metric
    if metric is Metric.FAILURE:
        bucket.failures += 1
    elif metric in HISTOGRAM_METRICS and point.histogram:
        bucket.histograms[metric].append((point.ts, point.histogram))
    elif metric in SCALAR_METRICS and point.value is not None:
        bucket.scalars[metric].append((point.ts, point.value))
    elif metric in (Metric.PACKETS_LOST, Metric.PACKETS_SENT) and point.value is not None:
        pair = bucket.counts.setdefault((series.key.metadata_key, point.ts), [None, None])
        pair[0 if metric is Metric.PACKETS_LOST else 1] = point.value


def loss_summary(counts: dict[tuple[str, int], list[float | None]]) -> LossSummary:
    """sum(lost) / sum(sent) over tests that reported both counts."""
    complete = [
        (key[1], lost, sent)
        for key, (lost, sent) in counts.items()
        if lost is not None and sent is not None and sent > 0
    ]
    if not complete:
        return LossSummary(count=0)
    return LossSummary(
        count=len(complete),
        packets_sent=int(sum(sent for _, _, sent in complete)),
        packets_lost=int(sum(min(lost, sent) for _, lost, sent in complete)),
        latest_ts=max(ts for ts, _, _ in complete),
    )


def path_stats(
    data: Iterable[tuple[Series, Sequence[Point]]], window: int, now: int
) -> list[PathStats]:
    """Per-path statistics over the window ``(now - window, now]``, sorted by path."""
    paths = _gather(data, now - window, now)
    return [_stats_for(key, paths[key], window, now) for key in sorted(paths, key=_sort_key)]


def _sort_key(key: PathKey) -> tuple[str, str, str]:
    return (key.source_site, key.destination_site, key.family.value)


def _stats_for(key: PathKey, data: _PathData, window: int, now: int) -> PathStats:
    throughput = pd.DataFrame(data.scalars[Metric.THROUGHPUT], columns=["ts", "value"])
    return PathStats(
        path=key,
        window=window,
        window_end=now,
        throughput=scalar_summary(throughput),
        owdelay=histogram_summary(data.histograms[Metric.OWDELAY]),
        rtt=histogram_summary(data.histograms[Metric.RTT]),
        loss=loss_summary(data.counts),
        failures=data.failures,
        hosts=tuple(sorted(data.hosts)),
    )
