"""Pure: per-path statistics -> bandwidth estimates for advice and throttles.

Every estimate says where it comes from (docs/statistics.md):

* ``forecast``: the NWS forecast over the path's throughput tests (preferred when
  its throughput figure is fresh); error bar = the chosen predictor's recent MAE;
* ``measured``: the window's median throughput, error = half the p10-p90 spread;
* ``modelled``: no fresh throughput test, but fresh RTT and loss: the Mathis bound
  ``MSS/RTT * C/sqrt(p)`` with ``p`` at least one lost packet in the window's sent
  packets, capped by the path capacity, times a calibration ratio
  (measured / model on this path over the calibration window; else the median
  ratio over calibrated paths; else 1).

With nothing fresh, the best stale figure is returned marked ``stale``.

One test is not a distribution: a figure resting on a single test has a quality of
at most ``SINGLE_TEST_QUALITY`` and, where it has no spread of its own, an error bar
of ``SINGLE_TEST_ERROR`` times its value (never zero).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Mapping

from larkps.model import (
    BandwidthEstimate,
    ModelPolicy,
    PathKey,
    PathStats,
    Provenance,
    Summary,
)
from larkps.stats.forecast import Prediction

SINGLE_TEST_QUALITY = 0.5  # the most a figure from one test is trusted
SINGLE_TEST_ERROR = 0.5  # error bar of a one-test figure, as a fraction of it


def measured_estimate(stats: PathStats, stale_after: int) -> BandwidthEstimate:
    """Median throughput of the window, error = (p90 - p10) / 2, stale by age."""
    tp = stats.throughput
    latest = tp.latest_ts
    stale = latest is None or stats.window_end - latest > stale_after
    error = _half_spread(tp)
    if tp.count == 1 and not error and tp.median is not None:
        error = SINGLE_TEST_ERROR * tp.median
    return BandwidthEstimate(
        path=stats.path,
        forecast_bps=tp.median,
        error_bps=error,
        provenance=Provenance.MEASURED,
        stale=stale,
        quality=_completeness(tp) if tp.quality else _capped(tp, 1.0 if tp.count else 0.0),
        latest_ts=latest,
        method="window median",
    )


def _half_spread(summary: Summary) -> float:
    if summary.p10 is None or summary.p90 is None:
        return 0.0
    return max(0.0, (summary.p90 - summary.p10) / 2.0)


def _completeness(summary: Summary) -> float:
    """The figure's completeness as an estimate's quality (capped for one test)."""
    q = summary.quality
    if q is None or summary.count == 0:
        return 0.0
    return _capped(summary, 1.0 if q.completeness is None else q.completeness)


def _capped(summary: Summary, quality: float) -> float:
    return min(quality, SINGLE_TEST_QUALITY) if summary.count == 1 else quality


def mathis_bps(rtt_ms: float, loss: float, packets_sent: int, policy: ModelPolicy) -> float | None:
    """Mathis et al. bound in bits/s; loss floored at 1/packets_sent (no floor without
    packet counts: per-test rates only). None if undefined."""
    p = max(loss, 1.0 / packets_sent) if packets_sent > 0 else loss
    if not (rtt_ms > 0 and p > 0 and math.isfinite(rtt_ms)):
        return None
    return policy.mss_bytes * 8.0 / (rtt_ms / 1000.0) * policy.mathis_constant / math.sqrt(p)


def model_bps(stats: PathStats, policy: ModelPolicy, capacity: float) -> float | None:
    """Capped Mathis bound from the window's RTT (or 2 x one-way delay) and loss."""
    rtt = stats.rtt.median
    owd = stats.owdelay
    if rtt is None and owd.median is not None and not (owd.quality and owd.quality.clock_error):
        rtt = 2.0 * owd.median
    loss = stats.loss.fraction
    if rtt is None or loss is None:
        return None
    bound = mathis_bps(rtt, loss, stats.loss.packets_sent, policy)
    return None if bound is None else min(bound, capacity)


def calibration(stats: PathStats, policy: ModelPolicy, capacity: float) -> float | None:
    """measured median / model over the same window, where both exist."""
    model = model_bps(stats, policy, capacity)
    measured = stats.throughput.median
    if model is None or measured is None or model <= 0:
        return None
    return measured / model


def _fresh(summary: Summary) -> bool:
    return summary.count > 0 and summary.quality is not None and not summary.quality.stale


def _modelled(
    stats: PathStats,
    policy: ModelPolicy,
    capacity: float,
    ratios: Mapping[PathKey, float],
    fallback: tuple[float, float] | None,
) -> BandwidthEstimate | None:
    model = model_bps(stats, policy, capacity)
    if model is None:
        return None
    if stats.path in ratios:
        ratio, label = ratios[stats.path], "path-calibrated"
        value = min(model * ratio, capacity)
        error = _half_spread(stats.throughput) or 0.25 * value
    elif fallback is not None:
        ratio, spread = fallback
        label = "mesh-calibrated"
        value = min(model * ratio, capacity)
        error = value * spread
    else:
        label, value, error = "uncalibrated", model, model
    latency = [s for s in (stats.rtt, stats.owdelay) if s.count]
    quality = min((_completeness(s) for s in latency), default=0.0)
    return BandwidthEstimate(
        path=stats.path,
        forecast_bps=value,
        error_bps=error,
        provenance=Provenance.MODELLED,
        stale=not (any(_fresh(s) for s in latency) and _fresh_loss(stats)),
        quality=quality,
        latest_ts=max((s.latest_ts or 0 for s in latency), default=None) or None,
        method=f"mathis ({label})",
    )


def _fresh_loss(stats: PathStats) -> bool:
    q = stats.loss.quality
    return stats.loss.count > 0 and (q is None or not q.stale)


def _forecast(stats: PathStats, prediction: Prediction) -> BandwidthEstimate:
    tp = stats.throughput
    value = max(0.0, prediction.value)
    error = prediction.error
    if tp.count <= 1 and not error:  # a perfect past over a few values says little
        error = SINGLE_TEST_ERROR * value
    return BandwidthEstimate(
        path=stats.path,
        forecast_bps=value,
        error_bps=error,
        provenance=Provenance.FORECAST,
        stale=not _fresh(tp),
        quality=_completeness(tp),
        latest_ts=tp.latest_ts,
        method=f"nws {prediction.method}",
    )


def bandwidth_estimate(
    stats: PathStats,
    prediction: Prediction | None,
    policy: ModelPolicy,
    capacity: float,
    ratios: Mapping[PathKey, float],
    fallback: tuple[float, float] | None = None,
    stale_after: int = 6 * 3600,
) -> BandwidthEstimate:
    """Forecast, else measured, else modelled; with nothing fresh, the best stale one."""
    measured = measured_estimate(stats, stale_after)
    forecast = _forecast(stats, prediction) if prediction is not None else None
    modelled = _modelled(stats, policy, capacity, ratios, fallback)
    candidates = [e for e in (forecast, measured, modelled) if e and e.forecast_bps is not None]
    for estimate in candidates:
        if not estimate.stale:
            return estimate
    return candidates[0] if candidates else measured


def mesh_calibration(ratios: Iterable[float]) -> tuple[float, float] | None:
    """Median ratio over calibrated paths and its relative spread (IQR / median)."""
    values = sorted(r for r in ratios if r > 0 and math.isfinite(r))
    if not values:
        return None
    median = statistics.median(values)
    if len(values) < 4:
        return median, 0.5
    q1, _, q3 = statistics.quantiles(values, n=4)
    return median, max(0.1, (q3 - q1) / median)


def bandwidth_estimates(
    current: Iterable[PathStats],
    calibrating: Iterable[PathStats],
    predictions: Mapping[PathKey, Prediction],
    policy: ModelPolicy,
    capacity: Callable[[PathKey], float],
    stale_after: int = 6 * 3600,
) -> list[BandwidthEstimate]:
    """One estimate per path of ``current``; ``calibrating`` (a long window) sets ratios."""
    ratios = {}
    for stats in calibrating:
        ratio = calibration(stats, policy, capacity(stats.path))
        if ratio is not None:
            ratios[stats.path] = ratio
    fallback = mesh_calibration(ratios.values())
    return [
        bandwidth_estimate(
            s,
            predictions.get(s.path),
            policy,
            capacity(s.path),
            ratios,
            fallback,
            stale_after,
        )
        for s in current
    ]


def window_estimates(
    stats: Iterable[PathStats], estimates: Iterable[BandwidthEstimate], stale_after: int
) -> dict[PathKey, BandwidthEstimate]:
    """The cycle's estimate of each path of ``stats``, its window median where the cycle
    made none: what throttle, report and explain decide on (larkps.stats.expected)."""
    given = {e.path: e for e in estimates}
    return {s.path: given.get(s.path) or measured_estimate(s, stale_after) for s in stats}
