"""Streams: what rollups are kept for, and the new tests of a cycle turned into partials.

A stream is one measurement of one archive test: (archive, metadata key, kind).
Loss is one stream built from the two count series (packet-count-lost, or
packet-count-lost-bidir for round-trip tests, and -sent) of a test, paired by ts.
Per-test delay and loss-rate scalars (archives without histograms or counts) are
streams of their own, like throughput. Each stream also keeps a small state between
cycles: the newest ts taken in (so points seen twice are taken once), the recent
gaps between tests (its cadence) and the recent per-test values (forecast history).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from larkps.model import Metric, Series
from larkps.stats.aggregate.clean import CleanSeries, lost_metric
from larkps.stats.aggregate.quality import CADENCE_GAPS
from larkps.stats.aggregate.weighted import (
    EMPTY_COUNTS,
    EMPTY_VALUES,
    FloatArray,
    IntArray,
    merge_weighted,
)
from larkps.stats.rollups.partial import Partial
from larkps.units import HOUR

HISTORY = 128  # per-test values kept for forecasting


class StreamKind(StrEnum):
    """What a stream measures."""

    THROUGHPUT = "throughput"
    RETRANSMITS = "retransmits"
    OWDELAY = "owdelay"
    RTT = "rtt"
    LOSS = "loss"
    CLOCK_ERROR = "clock_error"
    FAILURE = "failure"
    LOSS_BIDIR = "loss_bidir"  # round-trip lost and sent counts
    OWDELAY_MEDIAN = "owdelay_median"
    OWDELAY_MEAN = "owdelay_mean"
    RTT_MEAN = "rtt_mean"
    LOSS_RATE = "loss_rate"
    LOSS_RATE_BIDIR = "loss_rate_bidir"


#: per-test scalar kinds, each rolled up like throughput (values with count 1)
_SCALAR_KINDS: dict[Metric, StreamKind] = {
    Metric.THROUGHPUT: StreamKind.THROUGHPUT,
    Metric.RETRANSMITS: StreamKind.RETRANSMITS,
    Metric.CLOCK_ERROR: StreamKind.CLOCK_ERROR,
    Metric.OWDELAY_MEDIAN: StreamKind.OWDELAY_MEDIAN,
    Metric.OWDELAY_MEAN: StreamKind.OWDELAY_MEAN,
    Metric.RTT_MEAN: StreamKind.RTT_MEAN,
    Metric.LOSS_RATE: StreamKind.LOSS_RATE,
    Metric.LOSS_RATE_BIDIR: StreamKind.LOSS_RATE_BIDIR,
}
KIND_OF_METRIC: dict[Metric, StreamKind] = {
    **_SCALAR_KINDS,
    Metric.OWDELAY: StreamKind.OWDELAY,
    Metric.RTT: StreamKind.RTT,
    Metric.PACKETS_LOST: StreamKind.LOSS,
    Metric.PACKETS_LOST_BIDIR: StreamKind.LOSS,  # paired with packets sent, then LOSS_BIDIR
    Metric.PACKETS_SENT: StreamKind.LOSS,
    Metric.FAILURE: StreamKind.FAILURE,
}
METRIC_OF_KIND: dict[StreamKind, Metric] = {
    **{kind: metric for metric, kind in _SCALAR_KINDS.items()},
    StreamKind.OWDELAY: Metric.OWDELAY,
    StreamKind.RTT: Metric.RTT,
}
HISTOGRAM_KINDS = (StreamKind.OWDELAY, StreamKind.RTT)
LOSS_KINDS = (StreamKind.LOSS, StreamKind.LOSS_BIDIR)

StreamKey = tuple[str, str, StreamKind]  # archive, metadata key, kind


@dataclass(frozen=True, slots=True, eq=False)
class StreamTests:
    """Tests of one stream, ascending by ts, ready to be rolled up.

    ``values``: the scalar value; for histograms the test's median (the buckets are
    ``clean``'s CSR arrays); for loss the lost count (``sent`` the sent count).
    """

    key: StreamKey
    series: Series  # endpoints and family of the stream
    ts: IntArray
    values: FloatArray
    sent: FloatArray  # loss only
    clean: CleanSeries | None = None  # histogram kinds: the buckets
    rejected: int = 0

    def slice(self, lo: int, hi: int) -> StreamTests:
        return StreamTests(
            self.key,
            self.series,
            self.ts[lo:hi],
            self.values[lo:hi],
            self.sent[lo:hi],
            None if self.clean is None else self.clean.slice(lo, hi),
            self.rejected,
        )

    def after(self, hwm: int | None) -> StreamTests:
        """Only the tests newer than ``hwm``."""
        if hwm is None:
            return self
        return self.slice(int(np.searchsorted(self.ts, hwm, side="right")), self.ts.size)

    def history_values(self) -> FloatArray:
        """One value per test for forecasting: the value, histogram median or loss rate."""
        if self.key[2] in LOSS_KINDS:
            return np.asarray(self.values / self.sent, dtype=np.float64)
        return self.values


def stream_tests(cleaned: Iterable[CleanSeries]) -> list[StreamTests]:
    """Group cleaned series into streams; loss pairs lost and sent counts by ts
    (one-way lost counts when a test has them, else round-trip ones)."""
    loss: dict[StreamKey, dict[Metric, CleanSeries]] = defaultdict(dict)
    out: list[StreamTests] = []
    for clean in cleaned:
        series = clean.series
        kind = KIND_OF_METRIC.get(series.metric)
        if kind is None:
            continue
        key = (series.key.archive, series.key.metadata_key, kind)
        if kind is StreamKind.LOSS:
            loss[key][series.metric] = clean
            continue
        nan = np.full(clean.ts.size, np.nan)
        buckets = clean if kind in HISTOGRAM_KINDS else None
        out.append(StreamTests(key, series, clean.ts, clean.values, nan, buckets, clean.rejected))
    for key, pair in loss.items():
        which = lost_metric(pair)
        if which is not None:
            out.append(_paired(key, pair[which], pair[Metric.PACKETS_SENT]))
    return out


def _paired(key: StreamKey, lost: CleanSeries, sent: CleanSeries) -> StreamTests:
    if lost.series.metric is Metric.PACKETS_LOST_BIDIR:
        key = (key[0], key[1], StreamKind.LOSS_BIDIR)
    common, at_lost, at_sent = np.intersect1d(lost.ts, sent.ts, return_indices=True)
    sent_values = sent.values[at_sent]
    ok = sent_values > 0
    lost_values = np.minimum(lost.values[at_lost], sent_values)
    return StreamTests(
        key,
        sent.series,
        common[ok],
        lost_values[ok],
        sent_values[ok],
        rejected=lost.rejected + sent.rejected,
    )


def hourly(tests: StreamTests) -> dict[int, Partial]:
    """The partial of each hour the tests fall in."""
    if tests.ts.size == 0:
        return {}
    hours = (tests.ts - 1) // HOUR
    bounds = np.flatnonzero(np.r_[True, hours[1:] != hours[:-1], True])
    history = tests.history_values()
    out: dict[int, Partial] = {}
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        out[int(hours[lo])] = _partial(tests, lo, hi, history)
    return out


def _partial(tests: StreamTests, lo: int, hi: int, history: FloatArray) -> Partial:
    kind = tests.key[2]
    sent = lost = 0
    values, counts = EMPTY_VALUES, EMPTY_COUNTS
    if tests.clean is not None:
        first, last = int(tests.clean.offsets[lo]), int(tests.clean.offsets[hi])
        values, counts = merge_weighted(
            tests.clean.bucket_values[first:last], tests.clean.bucket_counts[first:last]
        )
    elif kind in LOSS_KINDS:
        sent, lost = int(tests.sent[lo:hi].sum()), int(tests.values[lo:hi].sum())
    elif kind is not StreamKind.FAILURE:
        chunk = tests.values[lo:hi]
        values, counts = merge_weighted(chunk, np.ones(chunk.size, dtype=np.int64))
    newest = float(history[hi - 1])
    return Partial(
        tests=hi - lo,
        values=values,
        counts=counts,
        sent=sent,
        lost=lost,
        latest_ts=int(tests.ts[hi - 1]),
        latest_value=None if np.isnan(newest) else newest,
    )


@dataclass(frozen=True, slots=True, eq=False)
class StreamState:
    """What a stream remembers between cycles."""

    hwm: int | None = None  # newest ts taken in
    gaps: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    history_ts: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    history: FloatArray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))

    def advance(self, tests: StreamTests) -> StreamState:
        """Take in new tests; ones at or before ``hwm`` (late arrivals) join the history
        but not the gaps."""
        if tests.ts.size == 0:
            return self
        fresh = tests.ts if self.hwm is None else tests.ts[tests.ts > self.hwm]
        previous = np.zeros(0, dtype=np.int64) if self.hwm is None else np.array([self.hwm])
        gaps = np.concatenate([self.gaps, np.diff(np.concatenate([previous, fresh]))])
        values = tests.history_values()
        keep = ~np.isnan(values)
        ts = np.concatenate([self.history_ts, tests.ts[keep]])
        order = np.argsort(ts, kind="stable")[-HISTORY:]
        newest = int(tests.ts[-1]) if self.hwm is None else max(self.hwm, int(tests.ts[-1]))
        return StreamState(
            hwm=newest,
            gaps=gaps[-CADENCE_GAPS:].astype(np.int64),
            history_ts=ts[order],
            history=np.concatenate([self.history, values[keep]])[order],
        )
