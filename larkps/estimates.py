"""Pure: per-path statistics -> bandwidth estimates for advice and throttles.

This first version uses the measured median with the p10-p90 half-spread as its
error bar; the forecasting work replaces it with the best-scoring predictor.
"""

from __future__ import annotations

from larkps.model import BandwidthEstimate, PathStats, Provenance


def measured_estimate(stats: PathStats, stale_after: int) -> BandwidthEstimate:
    """Median throughput of the window, error = (p90 - p10) / 2, stale by age."""
    tp = stats.throughput
    latest = tp.latest_ts
    stale = latest is None or stats.window_end - latest > stale_after
    error = 0.0
    if tp.p10 is not None and tp.p90 is not None:
        error = max(0.0, (tp.p90 - tp.p10) / 2.0)
    return BandwidthEstimate(
        path=stats.path,
        forecast_bps=tp.median,
        error_bps=error,
        provenance=Provenance.MEASURED,
        stale=stale,
        quality=1.0 if tp.count else 0.0,
        latest_ts=latest,
        method="window median",
    )
