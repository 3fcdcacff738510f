"""Pure: per site pair, how far jobs' achieved rates fall from the predicted figure.

Each sample is one job's input transfer: its achieved rate over the expected
bandwidth figure of its path (the uncalibrated lower bound) when it was recorded.
A pair's ratio is the weighted geometric mean of its samples' ratios, each weighted
``0.5 ** (age / half_life)``; samples older than ``max_age`` are dropped, and
with fewer than ``min_samples`` live samples there is no calibration (ratio 1).
The ratio is clamped to ``[min_ratio, max_ratio]`` and moves by at most a factor
``max_step`` per cycle from the ratio applied in the previous cycle (1 before the
first). Transfers shorter than ``min_seconds`` are not counted: HTCondor times
them in whole seconds. A job limited by larkps's rate limit to R that achieved 0.9 R or more says
only that the path carries R: it is censored, not counted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from larkps.config.calibration import CalibrationPolicy
from larkps.model import Calibration

CENSORED_FRACTION = 0.9


@dataclass(frozen=True, slots=True)
class Sample:
    """One job's transfer on a path: when, achieved and predicted rates (bits/s)."""

    completed: int
    achieved_bps: float
    predicted_bps: float
    rate_limit_bps: float | None = None
    seconds: int | None = None  # the transfer's duration (None: not known, not checked)

    @property
    def censored(self) -> bool:
        limit = self.rate_limit_bps
        return limit is not None and self.achieved_bps >= CENSORED_FRACTION * limit

    @property
    def ratio(self) -> float:
        return self.achieved_bps / self.predicted_bps


def live_samples(samples: Iterable[Sample], now: int, policy: CalibrationPolicy) -> list[Sample]:
    """Samples usable now: not expired, not censored, long enough to time, with
    positive finite rates."""
    return [
        s
        for s in samples
        if now - s.completed <= policy.max_age
        and not s.censored
        and (s.seconds is None or s.seconds >= policy.min_seconds)
        and _positive(s.achieved_bps)
        and _positive(s.predicted_bps)
    ]


def calibrate(
    samples: Sequence[Sample], previous: float | None, now: int, policy: CalibrationPolicy
) -> Calibration:
    """The ratio to apply this cycle to a pair's expected bandwidth (see the module)."""
    live = live_samples(samples, now, policy)
    count = len(live)
    if count < policy.min_samples:
        return Calibration(1.0, count, 0.0, False, f"{count} of {policy.min_samples} jobs needed")
    weights = [0.5 ** (max(0, now - s.completed) / policy.half_life) for s in live]
    total = sum(weights)
    logs = [math.log(s.ratio) for s in live]
    mean = math.exp(sum(w * x for w, x in zip(weights, logs, strict=True)) / total)
    linear = [s.ratio for s in live]
    average = sum(w * r for w, r in zip(weights, linear, strict=True)) / total
    spread = math.sqrt(
        sum(w * (r - average) ** 2 for w, r in zip(weights, linear, strict=True)) / total
    )
    target = min(policy.max_ratio, max(policy.min_ratio, mean))
    start = 1.0 if previous is None or not _positive(previous) else previous
    ratio = min(start * policy.max_step, max(start / policy.max_step, target))
    note = _note(count, mean, target, ratio, policy)
    return Calibration(ratio, count, spread, True, note)


def _note(count: int, mean: float, target: float, ratio: float, policy: CalibrationPolicy) -> str:
    parts = [f"achieved/predicted {mean:.3g} over {count} jobs"]
    parts.append(f"half-life {policy.half_life / 3600:.3g}h")
    if target != mean:
        parts.append(f"clamped to {target:.3g}")
    if ratio != target:
        parts.append(f"stepped to {ratio:.3g} (at most x{policy.max_step:g} a cycle)")
    return ", ".join(parts)


def _positive(value: float) -> bool:
    return math.isfinite(value) and value > 0
