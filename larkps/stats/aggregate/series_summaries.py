"""Archive summaries -> PathStats: the statistics of summary-mode archives.

A search cluster in summary mode sends one :class:`~larkps.model.SeriesSummary`
per (host pair, field, window): count, mean, min, max, percentiles, newest and
oldest document time, and sums of packet counts (``larkps.sources.search.summaries``).
This module turns them into the :class:`~larkps.model.PathStats` the raw path
builds from points, per site path (or host pair), with the same quality rules
and the same bases as the raw path (``larkps.stats.aggregate.assemble``). Pure: no I/O,
no clock.

* ``throughput``, ``retransmits``, ``clock_error``: the series of that metric;
  ``owdelay``: per-test medians (``OWDELAY_MEDIAN``, else ``OWDELAY_MEAN``);
  ``rtt``: per-test means (``RTT_MEAN``). The cluster cannot aggregate histograms.
* ``loss`` (:mod:`larkps.stats.aggregate.summary_parts`): Σlost / Σsent from the sums of
  packet counts, else the mean of per-test loss fractions.
* Several series of one figure (host pairs of one site path): counts add, the mean
  is count-weighted, min and max are overall, and the percentiles are those of the
  count-weighted mixture of the series (:mod:`larkps.stats.aggregate.mixture`; one
  series keeps the cluster's own). ``std`` and ``latest_value`` are unknown.
* Cadence: the mean gap between a pair's documents in the widest window that has
  two or more (failed runs included); completeness and ``low`` follow from it as
  for raw series; unknown (None) without such a window.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from larkps.model import Basis, Metric, PathStats, SeriesKey, SeriesSummary, Summary
from larkps.stats.aggregate.assemble import sort_key
from larkps.stats.aggregate.mixture import mixture_quantiles
from larkps.stats.aggregate.paths import GroupKey
from larkps.stats.aggregate.quality import QualityPolicy
from larkps.stats.aggregate.summary_parts import (
    Group,
    Key,
    WindowView,
    groups_of,
    key_of,
    loss_of,
    present,
)
from larkps.stats.aggregate.weighted import QUANTILES

#: each PathStats figure's bases, best first: (metric, basis; None for plain figures)
FIGURE_SOURCES: dict[Metric, tuple[tuple[Metric, Basis | None], ...]] = {
    Metric.THROUGHPUT: ((Metric.THROUGHPUT, None),),
    Metric.RETRANSMITS: ((Metric.RETRANSMITS, None),),
    Metric.OWDELAY: (
        (Metric.OWDELAY_MEDIAN, Basis.TEST_MEDIANS),
        (Metric.OWDELAY_MEAN, Basis.TEST_MEANS),
    ),
    Metric.RTT: ((Metric.RTT_MEAN, Basis.TEST_MEANS),),
    Metric.CLOCK_ERROR: ((Metric.CLOCK_ERROR, None),),
}


@dataclass(frozen=True, slots=True)
class SummaryStats:
    """PathStats from archive summaries, for the analysis to merge with raw ones."""

    windows: tuple[PathStats, ...] = ()  # every window asked for, per site path
    host_pairs: tuple[PathStats, ...] = ()  # one window, per host pair


def summary_stats(
    by_window: Mapping[int, Sequence[SeriesSummary]],
    now: int,
    policy: QualityPolicy,
    host_window: int,
) -> SummaryStats:
    """Every window's PathStats per site path, and ``host_window``'s per host pair."""
    every = [s for summaries in by_window.values() for s in summaries]
    cadences = _keyed(series_cadences(every))
    paths, pairs = groups_of(every, by_host=False), groups_of(every, by_host=True)
    windows = [
        stats
        for w in sorted(by_window)
        for stats in _window(paths, WindowView.of(by_window[w], w, now, policy, cadences))
    ]
    view = WindowView.of(by_window.get(host_window, ()), host_window, now, policy, cadences)
    return SummaryStats(tuple(windows), tuple(_window(pairs, view)))


def summary_path_stats(
    summaries: Sequence[SeriesSummary],
    window: int,
    now: int,
    policy: QualityPolicy | None = None,
    cadences: Mapping[SeriesKey, int] | None = None,
    by_host: bool = False,
    known: Iterable[SeriesSummary] = (),
) -> list[PathStats]:
    """PathStats over ``(now - window, now]`` per site path (or host pair), sorted.

    ``known``: summaries of other windows; their paths get a (possibly empty)
    PathStats here too, like raw series without tests in a window.
    """
    gaps = _keyed(series_cadences(summaries) if cadences is None else cadences)
    view = WindowView.of(summaries, window, now, policy or QualityPolicy(), gaps)
    return _window(groups_of([*known, *summaries], by_host), view)


def series_cadences(summaries: Iterable[SeriesSummary]) -> dict[SeriesKey, int]:
    """Per series: the mean gap between its pair's documents, from its widest summary."""
    best: dict[SeriesKey, SeriesSummary] = {}
    for summary in summaries:
        key = summary.series.key
        if _gap(summary) is not None and (
            key not in best or (summary.documents or 0) > (best[key].documents or 0)
        ):
            best[key] = summary
    return {key: gap for key, s in best.items() if (gap := _gap(s)) is not None}


def _gap(summary: SeriesSummary) -> int | None:
    first, last, documents = summary.first_ts, summary.latest_ts, summary.documents
    if first is None or last is None or documents is None or documents < 2 or last <= first:
        return None
    return max(1, round((last - first) / (documents - 1)))


def raw_first(raw: Sequence[PathStats], summarised: Sequence[PathStats]) -> list[PathStats]:
    """Raw-mode statistics win: summary PathStats of a path the raw ones have are dropped."""
    if not summarised:
        return list(raw)
    known = {s.path for s in raw}
    merged = [*raw, *(s for s in summarised if s.path not in known)]
    return sorted(
        merged,
        key=lambda s: (s.window, *sort_key(s.path), s.source_host or "", s.destination_host or ""),
    )


def _keyed(cadences: Mapping[SeriesKey, int]) -> dict[Key, int]:
    return {key_of(k): gap for k, gap in cadences.items()}


def _window(groups: Mapping[GroupKey, Group], view: WindowView) -> list[PathStats]:
    ordered = sorted(groups, key=lambda k: (*sort_key(k[0]), k[1] or "", k[2] or ""))
    return [_path(k, groups[k], view) for k in ordered]


def _path(key: GroupKey, group: Group, view: WindowView) -> PathStats:
    chosen = {m: _chosen(group, m, view) for m in FIGURE_SOURCES}
    owd, errors = chosen[Metric.OWDELAY][0], chosen[Metric.CLOCK_ERROR][0]
    clock = _clock_trouble(owd, errors, view) or _beyond_round_trip(
        owd, chosen[Metric.RTT][0], view
    )
    summaries = {
        m: _summary(keys, basis, view, clock and m is Metric.OWDELAY)
        for m, (keys, basis) in chosen.items()
    }
    return PathStats(
        path=key[0],
        window=view.window,
        window_end=view.end,
        throughput=summaries[Metric.THROUGHPUT],
        owdelay=summaries[Metric.OWDELAY],
        rtt=summaries[Metric.RTT],
        loss=loss_of(group, view),
        failures=sum(s.count for s in present(group.failures, view.this)),
        hosts=tuple(sorted(group.hosts)),
        retransmits=summaries[Metric.RETRANSMITS],
        clock_error=summaries[Metric.CLOCK_ERROR],
        source_host=key[1],
        destination_host=key[2],
    )


def _chosen(group: Group, figure: Metric, view: WindowView) -> tuple[list[Key], Basis | None]:
    """The first basis with a test in the window, else the first the path has, else none."""
    candidates = [(group.figures[m], b) for m, b in FIGURE_SOURCES[figure] if m in group.figures]
    for keys, basis in candidates:
        if present(keys, view.this):
            return keys, basis
    return candidates[0] if candidates else ([], None)


def _clock_trouble(owdelay: Sequence[Key], errors: Sequence[Key], view: WindowView) -> bool:
    """Negative one-way delays, or time-error estimates above the policy limit."""
    lows = [s.minimum for s in present(owdelay, view.this) if s.minimum is not None]
    highs = [s.maximum for s in present(errors, view.this) if s.maximum is not None]
    return min(lows, default=0.0) < 0 or max(highs, default=0.0) > view.policy.clock_error_ms


def _beyond_round_trip(owdelay: Sequence[Key], rtt: Sequence[Key], view: WindowView) -> bool:
    """A median one-way delay above the median round trip: one way cannot take longer
    than there and back, so the clocks disagree (no time-error estimates needed)."""
    one_way = _quantiles(present(owdelay, view.this)).get(0.5)
    round_trip = _quantiles(present(rtt, view.this)).get(0.5)
    return one_way is not None and round_trip is not None and one_way > round_trip


def _summary(
    keys: Sequence[Key], basis: Basis | None, view: WindowView, clock_error: bool
) -> Summary:
    parts = present(keys, view.this)
    tests = sum(s.count for s in parts)
    latest = max((s.latest_ts for s in parts if s.latest_ts is not None), default=None)
    quality = view.quality(keys, tests, latest, clock_error)
    if not parts:
        return Summary(count=0, quality=quality)
    q = _quantiles(parts)
    means = [(s.mean, s.count) for s in parts if s.mean is not None]
    weight = sum(c for _, c in means)
    return Summary(
        count=tests,
        median=q.get(0.5),
        p10=q.get(0.1),
        p90=q.get(0.9),
        mean=sum(m * c for m, c in means) / weight if weight else None,
        minimum=min((s.minimum for s in parts if s.minimum is not None), default=None),
        maximum=max((s.maximum for s in parts if s.maximum is not None), default=None),
        latest_ts=latest,
        p95=q.get(0.95),
        age=None if latest is None else max(0, view.end - latest),
        p25=q.get(0.25),
        p75=q.get(0.75),
        quality=quality,
        basis=basis,
    )


def _quantiles(parts: Sequence[SeriesSummary]) -> dict[float, float]:
    """The figure's percentiles: one series' own, or the mixture of several."""
    known = [p for p in parts if p.percentiles]
    if len(known) == 1:
        return {q: v for q, v in known[0].percentiles if q in QUANTILES}
    if not known:
        return {}
    return mixture_quantiles(known)
