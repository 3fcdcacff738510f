"""MeshConfig: every knob of the synthetic mesh, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass

from larkps.embedded.catalog import FLAVOURS
from larkps.embedded.hosts import MAX_SITES

_DAY = 86400


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


@dataclass(frozen=True)
class MeshConfig:
    """Shape, cadence and defects of a synthetic perfSONAR mesh.

    Intervals are seconds between tests of one series; ``packets_per_sample`` is the
    powstream sample size, ``rtt_packets`` the ping count. ``failure_rate`` is the share
    of failed throughput tests, ``burst_probability`` the chance that a path has a loss
    burst in a given hour, ``clock_offset_ms`` the clock error of one latency host and
    ``retention_days`` how far back the archive keeps data. Data are generated and
    cached in blocks of ``block_seconds`` (whole hours dividing a day; the data are the
    same whatever the span): short blocks cost less memory and time for short windows
    over big meshes, day blocks less per point for long windows. ``cache_blocks``
    bounds the cache.
    """

    sites: int = 4
    seed: int = 1
    flavour: str = "esmond"
    throughput_interval: int = 7200
    latency_interval: int = 60
    rtt_interval: int = 600
    packets_per_sample: int = 600
    rtt_packets: int = 10
    failure_rate: float = 0.03
    burst_probability: float = 0.02
    clock_offset_ms: float = 22.5
    retention_days: int = 30
    cache_blocks: int = 128
    block_seconds: int = _DAY

    def __post_init__(self) -> None:
        _check(3 <= self.sites <= MAX_SITES, f"sites must be between 3 and {MAX_SITES}")
        _check(self.seed >= 0, "seed must not be negative")
        _check(self.flavour in FLAVOURS, f"flavour must be one of {', '.join(FLAVOURS)}")
        for name in ("throughput_interval", "latency_interval", "rtt_interval"):
            value = getattr(self, name)
            _check(10 <= value <= _DAY, f"{name} must be between 10 and {_DAY} seconds")
        _check(1 <= self.packets_per_sample <= 10000, "packets_per_sample must be 1..10000")
        _check(1 <= self.rtt_packets <= 1000, "rtt_packets must be 1..1000")
        _check(0.0 <= self.failure_rate < 1.0, "failure_rate must be in [0, 1)")
        _check(0.0 <= self.burst_probability <= 1.0, "burst_probability must be in [0, 1]")
        _check(abs(self.clock_offset_ms) < 1000.0, "clock_offset_ms must be within +/-1000")
        _check(1 <= self.retention_days <= 400, "retention_days must be 1..400")
        _check(self.cache_blocks >= 1, "cache_blocks must be at least 1")
        whole_hours = self.block_seconds > 0 and self.block_seconds % 3600 == 0
        _check(
            whole_hours and _DAY % self.block_seconds == 0,
            "block_seconds must be a whole number of hours that divides a day",
        )
