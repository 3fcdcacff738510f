"""Pure: (Series, [Point]) pairs and ``now`` -> a bucketed time series per path, for plots.

For each path (:class:`~larkps.model.PathKey`) and each bucket of ``step`` seconds
(hourly by default) the history holds:

* throughput: the median of the tests in the bucket (bits/s);
* loss: Σlost / Σsent over the latency tests in the bucket (fraction);
* one-way delay: the median of every packet of the bucket's histograms (ms).

Buckets end at ``now``, ``now - step``, ...; a bucket ending at ``e`` holds the
points with ``e - step < ts <= e``, so the buckets tile the window
``(now - window, now]`` exactly (the oldest one is shorter when ``window`` is not
a multiple of ``step``). A bucket without tests of a metric is None for it.
No I/O and no clock: ``now`` is an argument.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from larkps.model import Metric, PathKey, Point, Series
from larkps.stats.aggregate.clean import CleanSeries, clean_series
from larkps.stats.aggregate.paths import path_key
from larkps.stats.aggregate.weighted import FloatArray, IntArray, weighted_median
from larkps.units import HOUR

Values = tuple[float | None, ...]


@dataclass(frozen=True, slots=True)
class PathHistory:
    """One path's bucketed series; every tuple is aligned with ``ends`` (ascending)."""

    path: PathKey
    step: int  # seconds per bucket
    ends: tuple[int, ...]  # bucket ends, Unix seconds
    throughput_bps: Values
    loss: Values
    owdelay_ms: Values

    @property
    def empty(self) -> bool:
        """No bucket holds any figure."""
        return all(
            v is None
            for series in (self.throughput_bps, self.loss, self.owdelay_ms)
            for v in series
        )


@dataclass(frozen=True, slots=True)
class _Buckets:
    now: int
    window: int
    step: int

    @property
    def count(self) -> int:
        return -(-self.window // self.step)

    @property
    def ends(self) -> tuple[int, ...]:
        return tuple(self.now - k * self.step for k in range(self.count - 1, -1, -1))

    def index(self, ts: IntArray) -> IntArray:
        """Bucket position (0 = oldest) of each ts; -1 outside the window."""
        inside = (ts > self.now - self.window) & (ts <= self.now)
        position = self.count - 1 - (self.now - ts) // self.step
        return np.where(inside, position, -1).astype(np.int64)


@dataclass
class _PathParts:
    throughput: list[CleanSeries]
    owdelay: list[CleanSeries]
    loss: dict[str, dict[Metric, CleanSeries]]


def path_history(
    data: Iterable[tuple[Series, Sequence[Point]]],
    now: int,
    window: int,
    step: int = HOUR,
) -> dict[PathKey, PathHistory]:
    """The bucketed history of every path in ``data`` over ``(now - window, now]``."""
    if window <= 0 or step <= 0:
        raise ValueError("window and step must be positive")
    buckets = _Buckets(now, window, step)
    parts: dict[PathKey, _PathParts] = defaultdict(lambda: _PathParts([], [], defaultdict(dict)))
    for series, points in data:
        metric = series.metric
        if metric is Metric.THROUGHPUT:
            parts[path_key(series)].throughput.append(clean_series(series, points, now))
        elif metric is Metric.OWDELAY:
            parts[path_key(series)].owdelay.append(clean_series(series, points, now))
        elif metric in (Metric.PACKETS_LOST, Metric.PACKETS_SENT):
            pair = parts[path_key(series)].loss[series.key.metadata_key]
            pair[metric] = clean_series(series, points, now)
    return {key: _history(key, parts[key], buckets) for key in sorted(parts, key=_order)}


def _order(key: PathKey) -> tuple[str, str, str]:
    return (key.source_site, key.destination_site, key.family.value)


def _history(key: PathKey, parts: _PathParts, buckets: _Buckets) -> PathHistory:
    return PathHistory(
        path=key,
        step=buckets.step,
        ends=buckets.ends,
        throughput_bps=_medians(parts.throughput, buckets),
        loss=_loss(parts.loss.values(), buckets),
        owdelay_ms=_histogram_medians(parts.owdelay, buckets),
    )


def _medians(series: list[CleanSeries], buckets: _Buckets) -> Values:
    if not series:
        return (None,) * buckets.count
    ts = np.concatenate([s.ts for s in series])
    values = np.concatenate([s.values for s in series])
    index = buckets.index(ts)
    result: list[float | None] = [None] * buckets.count
    for position in np.unique(index[index >= 0]).tolist():
        result[position] = float(np.median(values[index == position]))
    return tuple(result)


def _loss(pairs: Iterable[dict[Metric, CleanSeries]], buckets: _Buckets) -> Values:
    lost_total = np.zeros(buckets.count, dtype=np.float64)
    sent_total = np.zeros(buckets.count, dtype=np.float64)
    for pair in pairs:
        lost, sent = pair.get(Metric.PACKETS_LOST), pair.get(Metric.PACKETS_SENT)
        if lost is None or sent is None:
            continue
        common, at_lost, at_sent = np.intersect1d(lost.ts, sent.ts, return_indices=True)
        sent_values = sent.values[at_sent]
        lost_values = np.minimum(lost.values[at_lost], sent_values)
        index = buckets.index(common)
        keep = (index >= 0) & (sent_values > 0)
        lost_total += np.bincount(index[keep], lost_values[keep], minlength=buckets.count)
        sent_total += np.bincount(index[keep], sent_values[keep], minlength=buckets.count)
    return tuple(
        float(lost / sent) if sent > 0 else None
        for lost, sent in zip(lost_total.tolist(), sent_total.tolist(), strict=True)
    )


def _histogram_medians(series: list[CleanSeries], buckets: _Buckets) -> Values:
    grouped: dict[int, list[tuple[FloatArray, IntArray]]] = defaultdict(list)
    for one in series:
        for position, histogram in zip(buckets.index(one.ts).tolist(), one.histograms, strict=True):
            if position >= 0:
                grouped[position].append(histogram)
    result: list[float | None] = [None] * buckets.count
    for position, histograms in grouped.items():
        values = np.concatenate([v for v, _ in histograms])
        counts = np.concatenate([c for _, c in histograms])
        result[position] = weighted_median(values, counts)
    return tuple(result)
