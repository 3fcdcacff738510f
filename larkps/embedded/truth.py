"""Ground truth computed straight from the generated arrays with plain numpy."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray

from larkps.embedded.generate import Block
from larkps.embedded.histo import concat

METRICS = ("throughput", "retransmits", "owdelay", "rtt", "loss")
METRIC_KIND = {
    "throughput": "throughput",
    "retransmits": "throughput",
    "owdelay": "latencybg",
    "loss": "latencybg",
    "rtt": "rtt",
}


@dataclass(frozen=True)
class Truth:
    """What the mesh really measured on one (src site, dst site, family) in a window.

    Throughput and retransmits: per-test values. owdelay and rtt: every packet of every
    histogram, in ms (``count`` is the number of histograms). loss: Σlost / Σsent over
    the latency tests. Fields that do not apply are None; ``count == 0`` means no data.
    """

    metric: str
    count: int = 0
    median: float | None = None
    p10: float | None = None
    p90: float | None = None
    mean: float | None = None
    min: float | None = None
    max: float | None = None
    latest_ts: int | None = None
    fraction: float | None = None
    packets_sent: int | None = None
    packets_lost: int | None = None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready mapping."""
        return asdict(self)


def _describe(metric: str, count: int, samples: NDArray[np.float64], latest: int) -> Truth:
    p10, median, p90 = np.percentile(samples, [10, 50, 90])
    return Truth(
        metric=metric,
        count=count,
        median=float(median),
        p10=float(p10),
        p90=float(p90),
        mean=float(samples.mean()),
        min=float(samples.min()),
        max=float(samples.max()),
        latest_ts=latest,
    )


def per_test_truth(metric: str, blocks: list[Block]) -> Truth:
    """Throughput (bits/s) or retransmits of every successful test."""
    field = "throughput" if metric == "throughput" else "packet-retransmits"
    ok = [(b.ts[~b.failed], b.num[field][~b.failed]) for b in blocks]
    ts = np.concatenate([t for t, _ in ok]) if ok else np.zeros(0, np.int64)
    if ts.size == 0:
        return Truth(metric=metric)
    vals = np.concatenate([v for _, v in ok]).astype(np.float64)
    return _describe(metric, int(ts.size), vals, int(ts.max()))


def delay_truth(metric: str, blocks: list[Block]) -> Truth:
    """Every packet delay (ms) of every histogram in the window."""
    hists = [b.hist for b in blocks if b.hist is not None]
    hist = concat(hists)
    totals = hist.totals
    if int(totals.sum()) == 0:
        return Truth(metric=metric)
    ts = np.concatenate([b.ts for b in blocks])
    samples = hist.expand().astype(np.float64) / 100.0
    return _describe(metric, int((totals > 0).sum()), samples, int(ts[totals > 0].max()))


def loss_truth(blocks: list[Block]) -> Truth:
    """Σ packet-count-lost / Σ packet-count-sent over the latency tests."""
    ts = np.concatenate([b.ts for b in blocks]) if blocks else np.zeros(0, np.int64)
    if ts.size == 0:
        return Truth(metric="loss")
    sent = int(sum(int(b.num["sent"].sum()) for b in blocks))
    lost = int(sum(int(b.num["lost"].sum()) for b in blocks))
    return Truth(
        metric="loss",
        count=int(ts.size),
        latest_ts=int(ts.max()),
        fraction=lost / sent if sent else None,
        packets_sent=sent,
        packets_lost=lost,
    )


def compute_truth(metric: str, blocks: list[Block]) -> Truth:
    """Truth of ``metric`` over ``blocks`` (already restricted to the window)."""
    if metric in ("throughput", "retransmits"):
        return per_test_truth(metric, blocks)
    if metric in ("owdelay", "rtt"):
        return delay_truth(metric, blocks)
    return loss_truth(blocks)
