"""NWS forecasting: each predictor against a plain re-computation, and the choice rule."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from larkps.stats.forecast import (
    COVERAGE,
    MIN_RATIOS,
    PREDICTORS,
    RECENT,
    SCALE_BOUNDS,
    SCALE_STEPS,
    errors,
    forecast,
    predictions,
    replay,
)


def naive(values: list[float], name: str) -> float:
    """The prediction of the value after ``values``, written the obvious way."""
    if name == "last":
        return values[-1]
    if name == "mean":
        return sum(values) / len(values)
    if name.startswith("ewma_"):
        gain = float(name.split("_")[1])
        level = values[0]
        for v in values[1:]:
            level = level + gain * (v - level)
        return level
    width = int(name.split("_")[1])
    recent = sorted(values[-width:])
    if name.startswith("median_"):
        return float(np.median(recent))
    cut = int(0.3 * len(recent))
    kept = recent[cut : len(recent) - cut]
    return sum(kept) / len(kept)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=70))
def test_every_predictor_matches_its_definition(values):
    table = predictions(values)
    assert table.shape == (len(PREDICTORS), len(values) + 1)
    assert np.isnan(table[:, 0]).all()
    for row, name in enumerate(PREDICTORS):
        for t in range(1, len(values) + 1):
            assert table[row, t] == pytest.approx(naive(values[:t], name), rel=1e-9, abs=1e-6)


def naive_scale(values: np.ndarray) -> float:
    """The bar's scale, step by step: the then-chosen predictor's error over its then-MAE."""
    err = errors(values)
    ratios = []
    for t in range(2, len(values)):
        mae = np.nanmean(err[:, max(1, t - RECENT) : t], axis=1)
        best = int(np.nanargmin(mae))
        if mae[best] > 0:
            ratios.append(err[best, t] / mae[best])
    if len(ratios) < MIN_RATIOS:
        return 1.0
    low, high = SCALE_BOUNDS
    return float(np.clip(np.quantile(ratios[-SCALE_STEPS:], COVERAGE), low, high))


def test_the_choice_is_the_lowest_recent_mae_and_its_bar_that_mae_scaled():
    rng = np.random.default_rng(4)
    values = np.concatenate([rng.normal(100, 1, 60), rng.normal(300, 1, 60)])  # a level shift
    result = forecast(values)
    assert result is not None
    mae = np.nanmean(errors(values)[:, -RECENT:], axis=1)
    best = int(np.argmin(mae))
    assert result.method == PREDICTORS[best]
    scale = naive_scale(values)
    assert result.scale == pytest.approx(scale)
    assert result.error == pytest.approx(mae[best] * scale)
    assert result.value == pytest.approx(predictions(values)[best, -1])
    assert abs(result.value - 300) < 5  # a long window would still lag behind the shift
    assert result.samples == 120


def test_a_constant_series_is_forecast_exactly():
    result = forecast([5.0] * 10)
    assert result is not None and result.value == 5.0 and result.error == 0.0


def test_too_short_or_non_finite_histories_give_no_forecast():
    assert forecast([]) is None
    assert forecast([1.0, 2.0]) is None
    assert forecast([1.0, float("nan"), 2.0]) is None  # NaN is dropped, two are left
    assert forecast([1.0, float("nan"), 2.0, 3.0]) is not None


def test_evaluation_replays_the_choice_using_only_the_past():
    rng = np.random.default_rng(7)
    values = 50 + np.cumsum(rng.normal(0, 1, 200))  # a random walk: last value is best
    result = replay(values)
    assert result.steps == 190
    assert result.best_single in ("last", "ewma_0.75")
    assert result.chosen <= 1.2 * result.single[result.best_single]
    assert result.chosen < result.single["mean"] / 3
    with pytest.raises(ValueError, match="need more than"):
        replay(values[:5])


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(0, 1e4), min_size=3, max_size=260),
)
def test_the_bar_scale_matches_a_step_by_step_count(values):
    result = forecast(values)
    assert result is not None
    assert result.scale == pytest.approx(naive_scale(np.asarray(values)), rel=1e-9, abs=1e-12)
    low, high = SCALE_BOUNDS
    assert result.scale == 1.0 or low <= result.scale <= high


def test_a_heavy_tailed_series_gets_a_bar_that_holds_about_68_percent():
    seed = 20261203
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    values = 1000 + rng.standard_t(2, 1200) * 20  # heavy tails: one MAE covers far more than 58 %
    inside = total = 0
    for t in range(300, len(values)):
        result = forecast(values[:t])
        assert result is not None
        inside += abs(values[t] - result.value) <= result.error
        total += 1
    assert 0.60 <= inside / total <= 0.76, inside / total
