"""The pieces :mod:`larkps.stats.aggregate.series_summaries` works with, and its loss figure.

* :class:`Group`: the series one path (or host pair) has in any window;
* :class:`WindowView`: one window's summaries by series, its span and policies;
* :func:`loss_of`: the loss figure, from the first basis with a test in the window,
  as the raw path (``larkps.stats.aggregate.assemble.path_loss_summary``): one-way packet
  counts, round-trip packet counts, one-way loss fractions, round-trip fractions.
  Counts give Σlost / Σsent (lost capped at sent; a pair with nothing sent counts
  for nothing); fractions give their count-weighted mean (an approximation).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from larkps.model import Basis, LossSummary, Metric, Quality, SeriesKey, SeriesSummary
from larkps.stats.aggregate.paths import COUNT_METRICS, GroupKey, group_key
from larkps.stats.aggregate.quality import QualityPolicy, figure_quality

Key = tuple[str, str, str]  # a SeriesKey as a plain tuple: cheap to hash in the loops
LOSS_COUNTS = ((Metric.PACKETS_LOST, Basis.COUNTS), (Metric.PACKETS_LOST_BIDIR, Basis.COUNTS_BIDIR))
LOSS_RATES = ((Metric.LOSS_RATE, Basis.RATES), (Metric.LOSS_RATE_BIDIR, Basis.RATES_BIDIR))


def key_of(key: SeriesKey) -> Key:
    return (key.archive, key.metadata_key, key.event_type)


@dataclass
class Group:
    """The series one path (or host pair) has in any window."""

    figures: dict[Metric, list[Key]] = field(default_factory=lambda: defaultdict(list))
    counts: dict[tuple[str, str], dict[Metric, Key]] = field(
        default_factory=lambda: defaultdict(dict)
    )  # (archive, metadata key) -> the lost and sent counts of one pair
    failures: list[Key] = field(default_factory=list)
    hosts: set[str] = field(default_factory=set)

    def count_pairs(self, lost: Metric) -> list[tuple[Key, Key]]:
        """(lost, sent) series pairing ``lost`` with a sent count (one-way preferred)."""
        pairs = []
        for pair in self.counts.values():
            which = next((m for m, _ in LOSS_COUNTS if m in pair), None)
            if which is lost and Metric.PACKETS_SENT in pair:
                pairs.append((pair[lost], pair[Metric.PACKETS_SENT]))
        return pairs


def groups_of(summaries: Iterable[SeriesSummary], by_host: bool) -> dict[GroupKey, Group]:
    """The paths (or host pairs) of the summaries' series, whatever their window."""
    groups: dict[GroupKey, Group] = defaultdict(Group)
    for key, series in {key_of(s.series.key): s.series for s in summaries}.items():
        group = groups[group_key(series, by_host)]
        group.hosts.update((series.source.host, series.destination.host))
        if series.metric is Metric.FAILURE:
            group.failures.append(key)
        elif series.metric in COUNT_METRICS:
            group.counts[(key[0], key[1])][series.metric] = key
        else:
            group.figures[series.metric].append(key)
    return groups


def present(keys: Iterable[Key], this: Mapping[Key, SeriesSummary]) -> list[SeriesSummary]:
    """The summaries of ``keys`` with a test in the window."""
    return [s for k in keys if (s := this.get(k)) is not None and s.count > 0]


@dataclass(frozen=True, slots=True)
class WindowView:
    """One window: its summaries by series, its span, the quality policy, cadences."""

    this: Mapping[Key, SeriesSummary]
    window: int
    end: int
    policy: QualityPolicy
    cadences: Mapping[Key, int]

    @classmethod
    def of(
        cls,
        summaries: Iterable[SeriesSummary],
        window: int,
        end: int,
        policy: QualityPolicy,
        cadences: Mapping[Key, int],
    ) -> WindowView:
        return cls({key_of(s.series.key): s for s in summaries}, window, end, policy, cadences)

    def quality(
        self, keys: Sequence[Key], tests: int, latest: int | None, clock_error: bool = False
    ) -> Quality:
        """The Quality of a figure of ``keys`` (shared rules: ``assess``)."""
        counts = [(self.cadences.get(k), s.count if (s := self.this.get(k)) else 0) for k in keys]
        return figure_quality(
            tests, counts, latest, self.window, self.end, self.policy, clock_error=clock_error
        )


def loss_of(group: Group, view: WindowView) -> LossSummary:
    """The path's loss from its first basis with a test; else the first basis it has."""
    counted = [(pairs, b) for m, b in LOSS_COUNTS if (pairs := group.count_pairs(m))]
    rated = [(group.figures[m], b) for m, b in LOSS_RATES if m in group.figures]
    for pairs, basis in counted:
        made = _counted(pairs, basis, view)
        if made.count:
            return made
    for keys, basis in rated:
        if present(keys, view.this):
            return _rated(keys, basis, view)
    if counted or not rated:
        return _counted(counted[0][0] if counted else [], Basis.COUNTS, view)
    return _rated(*rated[0], view)


def _counted(pairs: Sequence[tuple[Key, Key]], basis: Basis, view: WindowView) -> LossSummary:
    """Σlost / Σsent over the pairs whose lost and sent totals are both known."""
    tests = sent = lost = 0
    latest: int | None = None
    for lost_key, sent_key in pairs:
        one_lost, one_sent = view.this.get(lost_key), view.this.get(sent_key)
        if one_lost is None or one_sent is None or one_lost.total is None:
            continue
        if one_sent.total is None or one_sent.total <= 0:
            continue
        tests += min(one_lost.count, one_sent.count)
        sent += int(one_sent.total)
        lost += int(min(one_lost.total, one_sent.total))
        if one_sent.latest_ts is not None:
            latest = max(latest or 0, one_sent.latest_ts)
    quality = view.quality([s for _, s in pairs], tests, latest)
    if tests == 0 or sent <= 0:
        return LossSummary(count=0, quality=quality)
    return LossSummary(tests, sent, lost, latest, quality, basis=basis)


def _rated(keys: Sequence[Key], basis: Basis, view: WindowView) -> LossSummary:
    """The count-weighted mean of per-test loss fractions."""
    parts = [s for s in present(keys, view.this) if s.mean is not None]
    tests = sum(s.count for s in parts)
    latest = max((s.latest_ts for s in parts if s.latest_ts is not None), default=None)
    quality = view.quality(keys, tests, latest)
    if not tests:
        return LossSummary(count=0, quality=quality)
    rate = sum((s.mean or 0.0) * s.count for s in parts) / tests
    return LossSummary(tests, latest_ts=latest, quality=quality, rate=rate, basis=basis)
