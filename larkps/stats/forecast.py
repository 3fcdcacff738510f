"""Forecasts with an error bar, by the Network Weather Service method (Wolski et al.).

A family of cheap predictors runs over a series (oldest value first). Each predicts
every value from the ones before it; its one-step absolute errors are kept. The
forecast of the series' next value is the one of the predictor with the lowest
mean absolute error over the last ``recent`` steps.

Its error bar is that MAE times a scale read off the series' own past: at every
earlier step, the error the then-chosen predictor made divided by its then-recent
MAE; the scale is the ``COVERAGE`` quantile of the last ``SCALE_STEPS`` of those
ratios (clamped to ``SCALE_BOUNDS``; 1 with fewer than ``MIN_RATIOS``). So about
68 % of past errors fell inside the bar, whatever the shape of the series' errors
(one MAE covers 58 % of a normal error, more of a heavy-tailed one).

Predictors: last value; running mean; exponential smoothing at gains 0.05 to 0.75;
medians of the last 5 and 31 values; trimmed medians of the last 31 and 51 (the mean
of the values left after dropping the lowest and highest 30 %). Pure numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

EWMA_GAINS = (0.05, 0.10, 0.15, 0.20, 0.30, 0.40, 0.50, 0.75)
MEDIAN_WINDOWS = (5, 31)
TRIMMED_WINDOWS = (31, 51)
TRIM = 0.3
RECENT = 20  # steps the choosing MAE runs over
MIN_VALUES = 3
COVERAGE = 0.68  # the fraction of errors the bar should hold (one sigma of a normal error)
SCALE_STEPS = 200  # past ratios the bar's scale is read from
MIN_RATIOS = 10  # fewer: the bar is the plain MAE
SCALE_BOUNDS = (0.25, 4.0)

PREDICTORS: tuple[str, ...] = (
    "last",
    "mean",
    *(f"ewma_{g:.2f}" for g in EWMA_GAINS),
    *(f"median_{w}" for w in MEDIAN_WINDOWS),
    *(f"trimmed_{w}" for w in TRIMMED_WINDOWS),
)


@dataclass(frozen=True, slots=True)
class Prediction:
    """The next value, its error bar (the chosen predictor's recent MAE x ``scale``),
    and the predictor's name."""

    value: float
    error: float
    method: str
    samples: int
    scale: float = 1.0


def predictions(values: Sequence[float] | NDArray[np.float64]) -> NDArray[np.float64]:
    """Array (predictor, step): column t predicts ``values[t]`` from ``values[:t]``.

    There are ``len(values) + 1`` columns: the last is the forecast of the next
    value. Column 0 has nothing to go on and is NaN.
    """
    x = np.asarray(values, dtype=np.float64)
    n = x.size
    out = np.full((len(PREDICTORS), n + 1), np.nan)
    if n == 0:
        return out
    out[0, 1:] = x
    out[1, 1:] = np.cumsum(x) / np.arange(1, n + 1)
    for row, gain in enumerate(EWMA_GAINS, start=2):
        out[row, 1:] = _ewma(x, gain)
    row = 2 + len(EWMA_GAINS)
    windows = _trailing(x, max(*MEDIAN_WINDOWS, *TRIMMED_WINDOWS))
    for width in MEDIAN_WINDOWS:
        out[row, 1:] = np.nanmedian(windows[:, -width:], axis=1)
        row += 1
    for width in TRIMMED_WINDOWS:
        out[row, 1:] = _trimmed(windows[:, -width:])
        row += 1
    return out


def _ewma(x: NDArray[np.float64], gain: float) -> NDArray[np.float64]:
    """Smoothed value after each step (the prediction of the step after it)."""
    smoothed = np.empty(x.size)
    level = float(x[0])
    for i, value in enumerate(x.tolist()):
        level += gain * (value - level) if i else 0.0
        smoothed[i] = level
    return smoothed


def _trailing(x: NDArray[np.float64], width: int) -> NDArray[np.float64]:
    """Row t holds the ``width`` values up to and including x[t], NaN-padded on the left."""
    padded = np.concatenate([np.full(width - 1, np.nan), x])
    return np.lib.stride_tricks.sliding_window_view(padded, width)


def _trimmed(windows: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per row: mean of the values left after dropping TRIM of each end (NaN-aware)."""
    ordered = np.sort(windows, axis=1)  # NaN sorts last
    present = np.sum(~np.isnan(ordered), axis=1)
    cut = np.floor(TRIM * present).astype(np.int64)
    index = np.arange(ordered.shape[1])[np.newaxis, :]
    keep = (index >= cut[:, np.newaxis]) & (index < (present - cut)[:, np.newaxis])
    sums = np.where(keep, ordered, 0.0).sum(axis=1)
    return np.asarray(sums / np.maximum(keep.sum(axis=1), 1), dtype=np.float64)


def errors(values: Sequence[float] | NDArray[np.float64]) -> NDArray[np.float64]:
    """Absolute one-step errors (predictor, step); step 0 is NaN."""
    x = np.asarray(values, dtype=np.float64)
    return np.asarray(np.abs(predictions(x)[:, :-1] - x[np.newaxis, :]), dtype=np.float64)


def forecast(
    values: Sequence[float] | NDArray[np.float64], recent: int = RECENT
) -> Prediction | None:
    """The NWS forecast of the next value; None with fewer than MIN_VALUES values."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size < MIN_VALUES:
        return None
    table, err = predictions(x), errors(x)
    mae = recent_errors(err, recent)
    best = int(np.nanargmin(mae[:, -1]))
    scale = bar_scale(chosen_ratios(err, mae))
    return Prediction(
        value=float(table[best, -1]),
        error=float(mae[best, -1] * scale),
        method=PREDICTORS[best],
        samples=int(x.size),
        scale=scale,
    )


def recent_errors(err: NDArray[np.float64], recent: int = RECENT) -> NDArray[np.float64]:
    """(predictor, t) for t = 0..n: each predictor's MAE over the steps
    ``max(1, t - recent) .. t - 1`` (what was known before value t); NaN before t = 2."""
    finite = np.isfinite(err)
    zero = np.zeros((err.shape[0], 1))
    sums = np.concatenate([zero, np.cumsum(np.where(finite, err, 0.0), axis=1)], axis=1)
    counts = np.concatenate([zero, np.cumsum(finite, axis=1)], axis=1)
    t = np.arange(err.shape[1] + 1)
    start = np.maximum(1, t - recent)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (sums[:, t] - sums[:, start]) / (counts[:, t] - counts[:, start])
    mean[:, counts[:, t].max(axis=0) == 0] = np.nan
    mean[:, t < 2] = np.nan
    return np.asarray(mean, dtype=np.float64)


def chosen_ratios(err: NDArray[np.float64], mae: NDArray[np.float64]) -> NDArray[np.float64]:
    """For each step t >= 2: the error of the predictor chosen before t over its MAE
    then (NaN where that MAE was 0)."""
    n = err.shape[1]
    ratios = np.full(n, np.nan)
    known = mae[:, :n]
    usable = np.isfinite(known).any(axis=0)
    steps = np.flatnonzero(usable)
    if steps.size == 0:
        return ratios
    best = np.nanargmin(known[:, steps], axis=0)
    bar = known[best, steps]
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios[steps] = np.where(bar > 0, err[best, steps] / bar, np.nan)
    return ratios


def bar_scale(ratios: NDArray[np.float64]) -> float:
    """The COVERAGE quantile of the last SCALE_STEPS finite ratios, clamped (1 if too few)."""
    past = ratios[np.isfinite(ratios)][-SCALE_STEPS:]
    if past.size < MIN_RATIOS:
        return 1.0
    low, high = SCALE_BOUNDS
    return float(np.clip(np.quantile(past, COVERAGE), low, high))


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Mean absolute one-step errors of each predictor and of the NWS choice."""

    steps: int
    single: dict[str, float]
    chosen: float
    best_single: str


def replay(
    values: Sequence[float] | NDArray[np.float64], recent: int = RECENT, warmup: int = 10
) -> Evaluation:
    """Replay the series: at each step after ``warmup`` the NWS choice uses only the past."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size <= warmup + 1:
        raise ValueError(f"need more than {warmup + 1} values, got {x.size}")
    err = errors(x)
    picked = []
    for t in range(warmup, x.size):
        past = err[:, max(1, t - recent) : t]
        best = int(np.nanargmin(np.nanmean(past, axis=1)))
        picked.append(err[best, t])
    single = {name: float(np.mean(err[i, warmup:])) for i, name in enumerate(PREDICTORS)}
    return Evaluation(
        steps=x.size - warmup,
        single=single,
        chosen=float(np.mean(picked)),
        best_single=min(single, key=lambda k: single[k]),
    )
