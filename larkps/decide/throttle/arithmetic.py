"""Throttle primitives: bandwidth in, a plain concurrency figure out."""

from __future__ import annotations

import math


def concurrency_for(
    bandwidth_bps: float,
    per_job_rate_bps: float,
    utilisation: float,
    min_jobs: int,
    max_jobs: int,
) -> int:
    """How many jobs fit: floor(utilisation * bandwidth / per-job rate), clamped.

    >>> concurrency_for(10e9, 1e9, 0.8, 1, 100)
    8
    """
    if per_job_rate_bps <= 0 or not math.isfinite(per_job_rate_bps):
        raise ValueError("per-job rate must be a positive number of bits/s")
    if bandwidth_bps < 0 or not math.isfinite(bandwidth_bps):
        raise ValueError("bandwidth must be a non-negative number of bits/s")
    fitting = fitting_jobs(utilisation * bandwidth_bps, per_job_rate_bps)
    return max(min_jobs, min(max_jobs, fitting))


def fitting_jobs(share_bps: float, per_job_rate_bps: float) -> int:
    """floor(share / rate), forgiving the last bit of float rounding (0.72e9/72e6 = 10)."""
    return math.floor(share_bps / per_job_rate_bps * (1.0 + 1e-12))


def transfer_seconds(size_bytes: int, bandwidth_bps: float) -> float:
    """Time to move size_bytes at bandwidth_bps (infinite when there is no bandwidth)."""
    if bandwidth_bps <= 0:
        return math.inf
    return size_bytes * 8.0 / bandwidth_bps
