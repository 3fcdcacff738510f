"""Turn block rows into the JSON values a real archive returns for each event type."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from larkps.embedded._rand import Stream, block_rng, hash_int, uuid_hex
from larkps.embedded.catalog import KIND_EVENT_TYPES
from larkps.embedded.generate import Block, IntArray
from larkps.embedded.histo import Hist
from larkps.embedded.series import Series

Formatter = Callable[[int], str]

NUM_FIELD = {
    "throughput": "throughput",
    "packet-retransmits": "packet-retransmits",
    "packet-count-sent": "sent",
    "packet-count-lost": "lost",
    "packet-count-lost-bidir": "lost",
    "packet-duplicates": "dups",
    "packet-duplicates-bidir": "dups",
    "packet-reorders": "reorders",
    "packet-reorders-bidir": "reorders",
    "time-error-estimates": "terr",
}
FAILURE_MESSAGES = (
    "iperf3 returned an error: error - unable to connect to server: Connection refused",
    "iperf3 returned an error: error - the server is busy running a test. try again later",
    "Run did not complete: Timed out",
    "iperf3 returned an error: error - control socket has closed unexpectedly",
    "Unable to start test: No route to host",
)
_SUBINTERVALS = 30
_OK_ONLY = {
    "throughput",
    "packet-retransmits",
    "throughput-subintervals",
    "packet-retransmits-subintervals",
}
_HIST_ROWS = {"histogram-owdelay", "histogram-ttl", "histogram-rtt", "histogram-ttl-reverse"}


@dataclass(frozen=True)
class RenderCtx:
    """How values of one series are written."""

    seed: int
    flavour: str
    label_scale: int


def event_rows(series: Series, event: str, block: Block) -> IntArray | None:
    """Indices of the block rows that carry a point of ``event`` (None: no such event)."""
    if event not in KIND_EVENT_TYPES[series.kind]:
        return None
    n = block.ts.size
    if event == "failures":
        return np.flatnonzero(block.failed)
    if event in _OK_ONLY:
        return np.flatnonzero(~block.failed)
    if event in _HIST_ROWS and block.hist is not None:
        return np.flatnonzero(block.hist.totals > 0)
    return np.arange(n, dtype=np.int64)


def presence(event: str) -> str:
    """Which runs carry a point of ``event``: "ok", "failed" or "any"."""
    if event == "failures":
        return "failed"
    return "ok" if event in _OK_ONLY else "any"


def label_formatter(flavour: str, event: str, scale: int) -> Formatter:
    """Bucket label text: esmond "%.2f"; elmond Python float text (rtt via seconds)."""
    if flavour == "esmond":
        return lambda v: f"{v * scale / 100:.2f}"
    if event == "histogram-rtt":
        return lambda v: repr((v / 100000) * 1000)
    return lambda v: repr(v * scale / 100)


class Labels:
    """Bucket label texts of one (flavour, event, scale), memoised by bucket value."""

    def __init__(self, fmt: Formatter) -> None:
        self._fmt = fmt
        self._memo: dict[int, str] = {}

    def of(self, buckets: list[int]) -> list[str]:
        """The label of every bucket value in ``buckets``."""
        memo = self._memo
        try:
            return [memo[v] for v in buckets]
        except KeyError:
            for v in buckets:
                if v not in memo:
                    memo[v] = self._fmt(v)
            return [memo[v] for v in buckets]


@lru_cache(maxsize=64)
def labels_for(flavour: str, event: str, scale: int) -> Labels:
    """The shared :class:`Labels` of ``label_formatter(flavour, event, scale)``."""
    return Labels(label_formatter(flavour, event, scale))


def histogram_dicts(
    hist: Hist, labels: Labels, first: int = 0, stop: int | None = None
) -> list[dict[str, int]]:
    """One ``{label: count}`` dict per histogram row (rows ``first`` to ``stop - 1``)."""
    offsets = hist.offsets[first : (hist.rows if stop is None else stop) + 1].tolist()
    lo, hi = offsets[0], offsets[-1]
    names = labels.of(hist.values[lo:hi].tolist())
    counts = hist.counts[lo:hi].tolist()
    return [
        dict(zip(names[a - lo : b - lo], counts[a - lo : b - lo], strict=True))
        for a, b in itertools.pairwise(offsets)
    ]


def _uuid(*parts: int) -> str:
    h = uuid_hex(*parts)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def run_href(ctx: RenderCtx, series: Series, k: int) -> dict[str, str]:
    """The pScheduler run URL of run ``k``."""
    task = _uuid(ctx.seed, Stream.TASK, 1_000_000 + series.index)
    run = _uuid(ctx.seed, Stream.RUN, series.index, k)
    return {"href": f"https://{series.agent_host.name}/pscheduler/tasks/{task}/runs/{run}"}


def failure(ctx: RenderCtx, series: Series, k: int) -> dict[str, str]:
    """The ``failures`` value of failed run ``k``."""
    idx = hash_int(ctx.seed, Stream.FAILURE, series.index, k, 1) % len(FAILURE_MESSAGES)
    return {"error": FAILURE_MESSAGES[idx]}


def subintervals(
    ctx: RenderCtx, series: Series, k: int, total: float, per_second: bool
) -> list[dict[str, float]]:
    """Per-second intervals of one iperf3 run (throughput or retransmits)."""
    rng = block_rng(ctx.seed, Stream.SUBINTERVAL, series.index, k)
    durations = np.round(1.0 + rng.uniform(0.0, 3e-4, _SUBINTERVALS), 6)
    starts = np.round(np.concatenate(([0.0], np.cumsum(durations)[:-1])), 6)
    if per_second:
        factors = np.exp(rng.normal(0.0, 0.05, _SUBINTERVALS))
        vals: list[float] = np.round(total * factors / factors.mean(), 1).tolist()
    else:
        weights = 1.0 / (1.0 + 0.3 * np.arange(_SUBINTERVALS))
        vals = rng.multinomial(int(total), weights / weights.sum()).tolist()
    return [
        {"start": s, "duration": d, "val": v}
        for s, d, v in zip(starts.tolist(), durations.tolist(), vals, strict=True)
    ]


def values(
    ctx: RenderCtx, series: Series, event: str, block: Block, rows: IntArray
) -> list[object]:
    """The ``val`` of ``event`` for every row in ``rows``."""
    if event in NUM_FIELD:
        arr = block.num[NUM_FIELD[event]][rows]
        if event in ("throughput", "time-error-estimates"):
            return [float(v) for v in arr.tolist()]
        return [int(v) for v in arr.tolist()]
    ks = block.k[rows].tolist()
    if event == "failures":
        return [failure(ctx, series, k) for k in ks]
    if event == "pscheduler-run-href":
        return [run_href(ctx, series, k) for k in ks]
    if event.endswith("-subintervals"):
        field = "throughput" if event.startswith("throughput") else "packet-retransmits"
        totals = block.num[field][rows].tolist()
        return [
            subintervals(ctx, series, k, t, field == "throughput")
            for k, t in zip(ks, totals, strict=True)
        ]
    if event.startswith("packet-loss-rate"):
        lost, sent = block.num["lost"][rows], block.num["sent"][rows]
        return [float(v) for v in (lost / sent).tolist()]
    if event in ("histogram-ttl", "histogram-ttl-reverse"):
        ttl = block.num["ttl"][rows].tolist()
        got = (block.num["sent"][rows] - block.num["lost"][rows]).tolist()
        return [{str(t): g} for t, g in zip(ttl, got, strict=True)]
    assert block.hist is not None
    labels = labels_for(ctx.flavour, event, ctx.label_scale)
    first = int(rows[0]) if rows.size else 0
    if rows.size and int(rows[-1]) - first == rows.size - 1:  # a run of rows: no copy
        return list(histogram_dicts(block.hist, labels, first, first + rows.size))
    return list(histogram_dicts(block.hist.take(rows), labels))
