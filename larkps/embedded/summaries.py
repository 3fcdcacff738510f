"""Summaries computed from base data, as esmond stores them / elmond rolls them up."""

from __future__ import annotations

import numpy as np

from larkps.embedded.catalog import DELAY_HISTOGRAMS, LOSS_EVENTS
from larkps.embedded.generate import Block, IntArray
from larkps.embedded.histo import Hist, merge_groups, modes, stats
from larkps.embedded.query import BadRequest
from larkps.embedded.render import NUM_FIELD, RenderCtx, histogram_dicts, labels_for

Point = dict[str, object]


def _groups(ts: IntArray, window: int) -> tuple[IntArray, IntArray]:
    """(window starts, group index of every row)."""
    starts, inverse = np.unique(ts // window * window, return_inverse=True)
    return starts.astype(np.int64), inverse.astype(np.int64)


def _points(starts: IntArray, vals: list[object]) -> list[Point]:
    return [{"ts": t, "val": v} for t, v in zip(starts.tolist(), vals, strict=True)]


def average(block: Block, rows: IntArray, field: str, window: int) -> list[Point]:
    """Mean per window (throughput ``averages``)."""
    starts, inv = _groups(block.ts[rows], window)
    vals = block.num[field][rows].astype(np.float64)
    means = np.bincount(inv, weights=vals) / np.bincount(inv)
    return _points(starts, [float(v) for v in means.tolist()])


def aggregate_counts(block: Block, rows: IntArray, field: str, window: int) -> list[Point]:
    """Sum per window (floats, as both archives return them)."""
    starts, inv = _groups(block.ts[rows], window)
    sums = np.bincount(inv, weights=block.num[field][rows].astype(np.float64))
    return _points(starts, [float(v) for v in sums.tolist()])


def aggregate_loss(block: Block, rows: IntArray, window: int) -> list[Point]:
    """Σlost / Σsent per window."""
    starts, inv = _groups(block.ts[rows], window)
    lost = np.bincount(inv, weights=block.num["lost"][rows].astype(np.float64))
    sent = np.bincount(inv, weights=block.num["sent"][rows].astype(np.float64))
    return _points(starts, [float(v) for v in (lost / sent).tolist()])


def _stat_objects(hist: Hist, label_scale: int) -> list[dict[str, object]]:
    """esmond statistics objects in label units (bucket value * label_scale / 100)."""
    st = {key: arr.tolist() for key, arr in stats(hist).items()}
    out: list[dict[str, object]] = []
    for i, mode in enumerate(modes(hist)):
        obj: dict[str, object] = {
            key: col[i] * label_scale**2 / 10000
            if key == "variance"
            else col[i] * label_scale / 100
            for key, col in st.items()
        }
        obj["mode"] = [v * label_scale / 100 for v in mode]
        out.append(obj)
    return out


def _elmond_rollup(per_run: list[dict[str, object]], inv: IntArray, n: int) -> list[object]:
    """elmond rolls statistics up as min of minima, max of maxima, mean of the rest."""
    out: list[object] = []
    for g in range(n):
        runs = [per_run[i] for i in np.flatnonzero(inv == g).tolist()]
        obj: dict[str, object] = {}
        for key in runs[0]:
            col = [float(r[key][0]) if key == "mode" else float(r[key]) for r in runs]  # type: ignore[index, arg-type]
            agg = (
                min(col)
                if key == "minimum"
                else max(col)
                if key == "maximum"
                else sum(col) / len(col)
            )
            obj[key] = [agg] if key == "mode" else agg
        out.append(obj)
    return out


def statistics(ctx: RenderCtx, block: Block, rows: IntArray, window: int) -> list[Point]:
    """Histogram statistics per run (window 0) or per window."""
    assert block.hist is not None
    hist = block.hist.take(rows)
    scale = ctx.label_scale
    ts = block.ts[rows]
    if window == 0:
        return _points(ts, list(_stat_objects(hist, scale)))
    starts, inv = _groups(ts, window)
    if ctx.flavour == "elmond":
        return _points(starts, _elmond_rollup(_stat_objects(hist, scale), inv, starts.size))
    _, merged = merge_groups(hist, inv)
    return _points(starts, list(_stat_objects(merged, scale)))


def aggregate_histograms(
    ctx: RenderCtx, event: str, block: Block, rows: IntArray, window: int
) -> list[Point]:
    """Merged histogram per window (esmond only)."""
    assert block.hist is not None
    starts, inv = _groups(block.ts[rows], window)
    _, merged = merge_groups(block.hist.take(rows), inv)
    labels = labels_for(ctx.flavour, event, ctx.label_scale)
    return _points(starts, list(histogram_dicts(merged, labels)))


def compute(
    ctx: RenderCtx, event: str, summary_type: str, window: int, block: Block, rows: IntArray
) -> list[Point]:
    """Dispatch one summary request over ``rows`` of ``block``."""
    if rows.size == 0:
        return []
    if summary_type == "statistics" and event in DELAY_HISTOGRAMS:
        return statistics(ctx, block, rows, window)
    if window <= 0:
        raise BadRequest(f"Summary window must be positive for {summary_type}")
    if summary_type == "average" and event in NUM_FIELD:
        return average(block, rows, NUM_FIELD[event], window)
    if summary_type == "aggregation":
        if event in LOSS_EVENTS:
            return aggregate_loss(block, rows, window)
        if event in NUM_FIELD:
            return aggregate_counts(block, rows, NUM_FIELD[event], window)
        if event in DELAY_HISTOGRAMS and ctx.flavour == "esmond":
            return aggregate_histograms(ctx, event, block, rows, window)
    raise BadRequest(f"Unable to build aggregation for {event}/{summary_type}")
