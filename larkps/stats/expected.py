"""Pure: the expected bandwidth of a path, the one figure every consumer uses.

``throttle``, ``advise``, ``startd-cron``, ``report``, ``explain`` and the path ads
all decide on the same number: the **lower bound** of the cycle's bandwidth
estimate (forecast - error, never negative), with the provenance it came from
(``forecast``, ``measured``, ``modelled``; docs/statistics.md). This module is where
that figure, the words describing it and the choice between a site pair's address
families are made, so that no two consumers can disagree. A path's calibration
(achieved over predicted, larkps.stats.calibration) is applied here too: it scales the
forecast and its error, so the lower bound scales with them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

from larkps.model import BandwidthEstimate, Calibration, lower_bound
from larkps.units import format_rate

__all__ = ["calibrated", "conservative", "lower_bound", "rationale"]

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


def calibrated(estimate: BandwidthEstimate, calibration: Calibration) -> BandwidthEstimate:
    """The estimate with its calibration: forecast and error times the ratio when the
    calibration is applied (recorded either way, so its provenance shows)."""
    ratio = calibration.ratio if calibration.applied else 1.0
    forecast = estimate.forecast_bps
    return dataclasses.replace(
        estimate,
        forecast_bps=None if forecast is None else forecast * ratio,
        error_bps=estimate.error_bps * ratio,
        calibration=calibration,
    )


def calibration_words(calibration: Calibration | None) -> str:
    """``; calibrated x0.62 (...)``, ``; uncalibrated (...)`` or nothing."""
    if calibration is None:
        return ""
    if not calibration.applied:
        return f"; uncalibrated ({calibration.note})"
    return f"; calibrated x{calibration.ratio:.3g} ({calibration.note})"


def rationale(
    expected_bps: float | None,
    error_bps: float,
    provenance: str,
    method: str,
    quality: float,
    calibration: Calibration | None = None,
) -> str:
    """How the figure was formed, in words that state the figure itself.

    ``lower bound 7.8Gbit/s = forecast 8.5Gbit/s - error 700Mbit/s (forecast nws
    ewma_0.30, quality 1.00)``.
    """
    how = f"{provenance} {method}".strip()
    low = lower_bound(expected_bps, error_bps)
    if expected_bps is None or low is None:
        return f"no bandwidth figure ({how}){calibration_words(calibration)}"
    kind = {"forecast": "forecast", "measured": "window median", "modelled": "model"}.get(
        provenance, "expected"
    )
    floor = " (floored at 0)" if expected_bps - error_bps < 0 else ""
    return (
        f"lower bound {format_rate(low)} = {kind} {format_rate(expected_bps)}"
        f" - error {format_rate(error_bps)}{floor} ({how}, quality {quality:.2f})"
        f"{calibration_words(calibration)}"
    )


def conservative(
    items: Iterable[T],
    pair: Callable[[T], K],
    trusted: Callable[[T], bool],
    low: Callable[[T], float | None],
) -> dict[K, T]:
    """Per site pair, one of its address families: the trusted one with the lowest
    lower bound; where none is trusted, the first seen (so its staleness shows)."""
    chosen: dict[K, T] = {}
    for item in items:
        key = pair(item)
        current = chosen.get(key)
        if current is None or _tighter(item, current, trusted, low):
            chosen[key] = item
    return chosen


def _tighter(
    new: T, old: T, trusted: Callable[[T], bool], low: Callable[[T], float | None]
) -> bool:
    new_ok, old_ok = trusted(new), trusted(old)
    if new_ok != old_ok:
        return new_ok
    if not new_ok:
        return False
    new_low, old_low = low(new), low(old)
    return new_low is not None and old_low is not None and new_low < old_low
