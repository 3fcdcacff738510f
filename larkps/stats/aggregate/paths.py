"""Direct windows: (Series, [Point]) pairs and ``now`` -> PathStats per path or host pair.

A window of length ``w`` ending at ``now`` holds the points with
``now - w < ts <= now``. Cadence (for completeness) is estimated from each series'
recent tests up to ``now``, inside or before the window.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from larkps.model import Metric, PathKey, PathStats, Point, Series
from larkps.stats.aggregate.assemble import Figure, PathFigures, Span, assemble, sort_key
from larkps.stats.aggregate.clean import HISTOGRAM_METRICS, CleanSeries, clean_series, lost_metric
from larkps.stats.aggregate.columnar import grouped_stats
from larkps.stats.aggregate.quality import QualityPolicy, cadence_of, recent_gaps
from larkps.stats.aggregate.weighted import QUANTILES, Described, describe, merge_weighted

#: per-test scalar series, each its own Figure (delay and loss scalars are fallbacks)
SCALAR_FIGURES = (
    Metric.THROUGHPUT,
    Metric.RETRANSMITS,
    Metric.CLOCK_ERROR,
    Metric.OWDELAY_MEDIAN,
    Metric.OWDELAY_MEAN,
    Metric.RTT_MEAN,
    Metric.LOSS_RATE,
    Metric.LOSS_RATE_BIDIR,
)
COUNT_METRICS = (Metric.PACKETS_LOST, Metric.PACKETS_LOST_BIDIR, Metric.PACKETS_SENT)
GroupKey = tuple[PathKey, str | None, str | None]


def path_key(series: Series) -> PathKey:
    return PathKey(series.source.site, series.destination.site, series.family)


def group_key(series: Series, by_host: bool) -> GroupKey:
    if by_host:
        return (path_key(series), series.source.host, series.destination.host)
    return (path_key(series), None, None)


def path_stats(
    data: Iterable[tuple[Series, Sequence[Point]]],
    window: int,
    now: int,
    policy: QualityPolicy | None = None,
    by_host: bool = False,
) -> list[PathStats]:
    """Statistics over ``(now - window, now]`` per site path (or host pair), sorted."""
    return path_stats_windows(data, (window,), now, policy, by_host)[window]


@dataclass(frozen=True, slots=True)
class _Cleaned:
    key: GroupKey
    clean: CleanSeries
    cadence: int | None


def path_stats_windows(
    data: Iterable[tuple[Series, Sequence[Point]]],
    windows: Sequence[int],
    now: int,
    policy: QualityPolicy | None = None,
    by_host: bool = False,
) -> dict[int, list[PathStats]]:
    """:func:`path_stats` for several windows, cleaning each series once."""
    cleaned = [
        _Cleaned(group_key(s, by_host), c, cadence_of(recent_gaps(c.ts)))
        for s, points in data
        for c in (clean_series(s, points, now),)
    ]
    return {w: _one_window(cleaned, w, now, policy or QualityPolicy()) for w in windows}


def _one_window(
    cleaned: list[_Cleaned], window: int, now: int, policy: QualityPolicy
) -> list[PathStats]:
    span = Span(window, now, now - window)
    groups: dict[GroupKey, PathFigures] = defaultdict(PathFigures)
    scalars: list[tuple[GroupKey, Metric, _Cleaned]] = []
    loss: dict[tuple[GroupKey, str, str], dict[Metric, _Cleaned]] = defaultdict(dict)
    histograms: dict[tuple[GroupKey, Metric], list[_Cleaned]] = defaultdict(list)
    for item in cleaned:
        series = item.clean.series
        figures = groups[item.key]
        figures.hosts.update((series.source.host, series.destination.host))
        metric = series.metric
        if metric in SCALAR_FIGURES:
            scalars.append((item.key, metric, item))
        elif metric in HISTOGRAM_METRICS:
            histograms[(item.key, metric)].append(item)
        elif metric in COUNT_METRICS:
            loss[(item.key, series.key.archive, series.key.metadata_key)][metric] = item
        elif metric is Metric.FAILURE:
            figures.failures += int(item.clean.window(span.start).ts.size)
    _add_scalars(groups, scalars, span)
    for (key, metric), parts in histograms.items():
        _add_histograms(groups[key].figure(metric), parts, span)
    for (key, _, _), pair in loss.items():
        _add_loss(groups[key], pair, span)
    ordered = sorted(groups, key=lambda k: (*sort_key(k[0]), k[1] or "", k[2] or ""))
    return [assemble(k[0], groups[k], span, policy, (k[1], k[2])) for k in ordered]


def _add_scalars(
    groups: dict[GroupKey, PathFigures],
    scalars: list[tuple[GroupKey, Metric, _Cleaned]],
    span: Span,
) -> None:
    """All scalar figures of all paths in one columnar group-by."""
    ids: dict[tuple[GroupKey, Metric], int] = {}
    columns: list[tuple[int, CleanSeries]] = []
    for key, metric, item in scalars:
        index = ids.setdefault((key, metric), len(ids))
        inside = item.clean.window(span.start)
        figure = groups[key].figure(metric)
        figure.cadences.append((item.cadence, int(inside.ts.size)))
        figure.rejected += item.clean.rejected
        columns.append((index, inside))
    if not columns:
        return
    stats = grouped_stats(
        np.concatenate([np.full(c.ts.size, i, dtype=np.int64) for i, c in columns]),
        np.concatenate([c.ts for _, c in columns]),
        np.concatenate([c.values for _, c in columns]),
        span.start,
        span.end,
    )
    by_index = {index: key_metric for key_metric, index in ids.items()}
    for row, index in enumerate(stats.groups.tolist()):
        key, metric = by_index[index]
        figure = groups[key].figure(metric)
        figure.tests = int(stats.count[row])
        figure.latest = (int(stats.latest_ts[row]), float(stats.latest_value[row]))
        figure.described = Described(
            samples=figure.tests,
            mean=float(stats.mean[row]),
            std=float(stats.std[row]),
            minimum=float(stats.minimum[row]),
            maximum=float(stats.maximum[row]),
            quantiles=tuple(float(stats.quantiles[row, i]) for i in range(len(QUANTILES))),
        )


def _add_histograms(figure: Figure, parts: list[_Cleaned], span: Span) -> None:
    inside = [p.clean.window(span.start) for p in parts]
    for whole, part in zip(parts, inside, strict=True):
        figure.cadences.append((whole.cadence, int(part.ts.size)))
        figure.rejected += whole.clean.rejected
    present = [p for p in inside if p.ts.size]
    if not present:
        return
    values, counts = merge_weighted(
        np.concatenate([p.bucket_values for p in present]),
        np.concatenate([p.bucket_counts for p in present]),
    )
    figure.described = describe(values, counts)
    figure.tests = sum(int(p.ts.size) for p in present)
    newest = max(present, key=lambda p: int(p.ts[-1]))  # first of equals, as rollups
    figure.latest = (int(newest.ts[-1]), float(newest.values[-1]))


def _add_loss(figures: PathFigures, pair: dict[Metric, _Cleaned], span: Span) -> None:
    """One test's lost and sent counts (one-way, else round trip), matched by ts."""
    which = lost_metric(pair)
    if which is None:
        return
    lost, sent = pair[which], pair[Metric.PACKETS_SENT]
    fig = figures.counts(which)
    fig.cadences.append((sent.cadence, 0))
    lost_in, sent_in = lost.clean.window(span.start), sent.clean.window(span.start)
    common, at_lost, at_sent = np.intersect1d(lost_in.ts, sent_in.ts, return_indices=True)
    sent_values = sent_in.values[at_sent]
    ok = sent_values > 0
    if not bool(ok.any()):
        return
    lost_values = np.minimum(lost_in.values[at_lost][ok], sent_values[ok])
    fig.tests += int(ok.sum())
    fig.sent += int(sent_values[ok].sum())
    fig.lost += int(lost_values.sum())
    newest = int(common[ok].max())
    fig.latest_ts = newest if fig.latest_ts is None else max(fig.latest_ts, newest)
    fig.cadences[-1] = (fig.cadences[-1][0], int(ok.sum()))
