"""The inputs of a throttle decision: policy, per-job demand, candidate bottlenecks."""

from __future__ import annotations

import math
from dataclasses import dataclass

from larkps.config.throttle import ThrottlePolicy
from larkps.units import format_duration, format_rate, format_size

__all__ = ["Capacity", "Demand", "ThrottlePolicy"]


@dataclass(frozen=True, slots=True)
class Demand:
    """What each job needs: a rate, or a volume to move within ``transfer_time``.

    ``consumers`` is how many independent users (DAGs, workflows) share the
    bottleneck equally, this one included.
    """

    per_job_bps: float | None = None
    bytes_per_job: int | None = None
    transfer_time: int = 600  # seconds, used with bytes_per_job
    consumers: int = 1

    def __post_init__(self) -> None:
        if (self.per_job_bps is None) == (self.bytes_per_job is None):
            raise ValueError("give exactly one of a per-job rate or a per-job volume")
        if self.per_job_bps is not None and not (
            math.isfinite(self.per_job_bps) and self.per_job_bps > 0
        ):
            raise ValueError("the per-job rate must be a positive number of bits/s")
        if self.bytes_per_job is not None and self.bytes_per_job <= 0:
            raise ValueError("the per-job volume must be a positive number of bytes")
        if self.transfer_time <= 0 or self.consumers < 1:
            raise ValueError("transfer_time must be positive and consumers at least 1")

    @property
    def rate_bps(self) -> float:
        """The rate one job needs, in bits/s."""
        if self.per_job_bps is not None:
            return self.per_job_bps
        assert self.bytes_per_job is not None
        return self.bytes_per_job * 8.0 / self.transfer_time

    def describe(self) -> str:
        if self.per_job_bps is not None:
            return f"per-job rate {format_rate(self.per_job_bps)}"
        assert self.bytes_per_job is not None
        return (
            f"{format_size(self.bytes_per_job)} per job in {format_duration(self.transfer_time)}"
            f" = {format_rate(self.rate_bps)}"
        )


@dataclass(frozen=True, slots=True)
class Capacity:
    """One candidate bottleneck: a path, a site's aggregate, or a given figure.

    ``bps`` is the usable bandwidth (an estimate's lower bound or a configured
    capacity); ``usable`` is False when the figure is missing, stale or of too
    low a quality, and ``detail`` says how the figure was formed or why not.
    """

    name: str
    bps: float | None
    usable: bool
    detail: str

    def __post_init__(self) -> None:
        if self.usable and (self.bps is None or not math.isfinite(self.bps) or self.bps < 0):
            raise ValueError(f"usable capacity {self.name} needs a finite bandwidth >= 0")

    def describe(self) -> str:
        figure = "no figure" if self.bps is None else format_rate(self.bps)
        return f"{self.name} = {figure} ({self.detail})"
