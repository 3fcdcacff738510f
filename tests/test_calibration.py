"""Calibration properties: no calibration without enough samples; a bounded change per
cycle; stale samples expire; the ratio is the weighted geometric mean, clamped.

Hypothesis prints the falsifying example (its seed with --hypothesis-seed).
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from larkps.config.calibration import CalibrationPolicy
from larkps.model import BandwidthEstimate, Calibration, Family, PathKey, Provenance
from larkps.stats.calibration import Sample, calibrate, live_samples
from larkps.stats.expected import calibrated

NOW = 1_800_000_000
POLICY = CalibrationPolicy(half_life=3 * 86400, max_age=14 * 86400, min_samples=5)

rates = st.floats(min_value=1e3, max_value=1e11, allow_nan=False)
ages = st.integers(min_value=0, max_value=POLICY.max_age)
samples = st.builds(
    lambda age, achieved, predicted: Sample(NOW - age, achieved, predicted),
    ages,
    rates,
    rates,
)
previous = st.one_of(st.none(), st.floats(min_value=0.25, max_value=2.0))


@given(st.lists(samples, max_size=POLICY.min_samples - 1), previous)
def test_no_calibration_without_enough_samples(found: list[Sample], before: float | None):
    result = calibrate(found, before, NOW, POLICY)
    assert not result.applied and result.ratio == 1.0 and result.count == len(found)


@given(st.lists(samples, min_size=POLICY.min_samples, max_size=40), previous)
def test_a_bounded_change_per_cycle(found: list[Sample], before: float | None):
    result = calibrate(found, before, NOW, POLICY)
    start = 1.0 if before is None else before
    assert result.applied
    assert start / POLICY.max_step * (1 - 1e-12) <= result.ratio
    assert result.ratio <= start * POLICY.max_step * (1 + 1e-12)
    assert POLICY.min_ratio * (1 - 1e-12) <= result.ratio <= POLICY.max_ratio * (1 + 1e-12)


@given(st.lists(samples, min_size=POLICY.min_samples, max_size=20), st.integers(1, 10**6))
def test_stale_samples_expire(found: list[Sample], later: int):
    """Once every sample is older than max_age, the pair is uncalibrated again."""
    now = max(s.completed for s in found) + POLICY.max_age + later
    result = calibrate(found, 0.5, now, POLICY)
    assert not result.applied and result.count == 0 and result.ratio == 1.0
    assert live_samples(found, now, POLICY) == []


@given(st.floats(min_value=0.01, max_value=50), st.integers(POLICY.min_samples, 30))
@settings(max_examples=60)
def test_repeated_cycles_converge_to_the_clamped_ratio(ratio: float, count: int):
    found = [Sample(NOW - i, ratio * 1e9, 1e9) for i in range(count)]
    target = min(POLICY.max_ratio, max(POLICY.min_ratio, ratio))
    applied = None
    steps = 0
    while applied is None or not math.isclose(applied, target, rel_tol=1e-9):
        applied = calibrate(found, applied, NOW, POLICY).ratio
        steps += 1
        assert steps <= 5  # log(4) / log(1.5) < 4 steps from 1 to either bound
    assert math.isclose(applied, target, rel_tol=1e-9)


def test_the_weighted_geometric_mean_by_hand():
    policy = CalibrationPolicy(half_life=86400, min_samples=2, max_step=100.0)
    found = [Sample(NOW, 0.5e9, 1e9), Sample(NOW - 86400, 2e9, 1e9)]  # weights 1 and 0.5
    expected = math.exp((1 * math.log(0.5) + 0.5 * math.log(2.0)) / 1.5)
    result = calibrate(found, None, NOW, policy)
    assert result.ratio == pytest.approx(expected) and result.count == 2
    mean = (0.5 + 0.5 * 2.0) / 1.5
    variance = ((0.5 - mean) ** 2 + 0.5 * (2 - mean) ** 2) / 1.5
    assert result.spread == pytest.approx(math.sqrt(variance))


def test_transfers_too_short_to_time_are_not_counted():
    short = [Sample(NOW, 1e9, 1e9, seconds=POLICY.min_seconds - 1)] * 10
    assert calibrate(short, None, NOW, POLICY).count == 0
    timed = [Sample(NOW, 1e9, 1e9, seconds=POLICY.min_seconds)] * 10
    assert calibrate(timed, None, NOW, POLICY).count == 10


def test_rate_limited_jobs_are_censored():
    limited = [Sample(NOW, 95e6, 1e9, rate_limit_bps=100e6)] * 10
    assert calibrate(limited, None, NOW, POLICY).count == 0
    slow = [Sample(NOW, 50e6, 1e9, rate_limit_bps=100e6)] * 10
    assert calibrate(slow, None, NOW, POLICY).count == 10


def test_the_calibration_scales_the_figure_and_says_so():
    path = PathKey("A", "B", Family.IPV4)
    estimate = BandwidthEstimate(path, 8e9, 1e9, Provenance.FORECAST, False, 1.0, NOW, "nws")
    applied = calibrated(estimate, Calibration(0.5, 9, 0.1, True, "achieved/predicted 0.5"))
    assert applied.lower_bound_bps == pytest.approx(0.5 * 7e9)
    kept = calibrated(estimate, Calibration(1.0, 2, 0.0, False, "2 of 5 jobs needed"))
    assert kept.lower_bound_bps == estimate.lower_bound_bps and kept.calibration is not None
