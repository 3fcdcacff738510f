"""Forecast histories from points: per path and metric, the newest per-test values.

A test's value is its scalar value, or the median of its histogram (delays). The
series of a path are merged by ts and the newest ``limit`` values kept, as the
rollups' stream histories do.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

from larkps.model import Metric, PathKey, Point, Series
from larkps.stats.aggregate.clean import clean_series
from larkps.stats.aggregate.paths import path_key
from larkps.stats.aggregate.weighted import FloatArray, IntArray

HISTORY_METRICS = (Metric.THROUGHPUT, Metric.OWDELAY, Metric.RTT)
History = tuple[IntArray, FloatArray]


def point_histories(
    data: Iterable[tuple[Series, Sequence[Point]]], now: int, limit: int = 128
) -> dict[tuple[PathKey, Metric], History]:
    """Newest ``limit`` per-test values of each path's throughput, OWD and RTT."""
    parts: dict[tuple[PathKey, Metric], list[History]] = defaultdict(list)
    for series, points in data:
        if series.metric not in HISTORY_METRICS:
            continue
        clean = clean_series(series, points, now)  # histograms: values are test medians
        ts, values = clean.ts[-limit:], clean.values[-limit:]
        parts[(path_key(series), series.metric)].append((ts, values))
    out = {}
    for key, found in parts.items():
        ts = np.concatenate([t for t, _ in found])
        values = np.concatenate([v for _, v in found])
        order = np.argsort(ts, kind="stable")[-limit:]
        out[key] = (ts[order], values[order])
    return out
