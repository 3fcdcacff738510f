"""The physics of the mesh: per-path delay/throughput model, diurnal load, loss bursts
and host outages. Everything is a pure function of the seed and absolute time."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from larkps.embedded._rand import Stream, hash_u01, hash_u01_array
from larkps.embedded.hosts import Host, Roles, Site

DAY = 86400
HOUR = 3600
_PEAK_HOUR = 14.0


@dataclass(frozen=True)
class PathModel:
    """Base characteristics of one directed path in one address family."""

    owd_ms: float
    shift_ms: float
    rtt_ms: float
    jitter_ms: float
    queue_ms: float
    base_loss: float
    reorder_rate: float
    base_bps: float
    cap_bps: float
    retx_scale: float
    hops: int
    terr_ms: float


@dataclass(frozen=True, order=True)
class Outage:
    """A window [start, end) during which a host ran no tests."""

    start: int
    end: int
    host: str
    site: str


@dataclass(frozen=True)
class Physics:
    """Mesh-wide knobs the world needs (a subset of MeshConfig)."""

    seed: int
    clock_offset_ms: float
    burst_probability: float


class World:
    """Sites plus the deterministic models that act on them."""

    def __init__(self, physics: Physics, sites: tuple[Site, ...], roles: Roles) -> None:
        self.physics = physics
        self.sites = sites
        self.roles = roles
        self._paths: dict[tuple[int, int, str], PathModel] = {}
        self._lock = threading.Lock()

    # -- paths ---------------------------------------------------------------
    def path(self, src: int, dst: int, family: str) -> PathModel:
        """The (cached) model of the path ``src`` -> ``dst`` in ``family``."""
        key = (src, dst, family)
        model = self._paths.get(key)
        if model is None:
            model = self._build_path(src, dst, family)
            with self._lock:
                self._paths[key] = model
        return model

    def _owd(self, src: int, dst: int, family: str) -> float:
        s, d = self.sites[src], self.sites[dst]
        dist = math.hypot(s.x - d.x, s.y - d.y)
        seed = self.physics.seed
        asym = 1.0 + 0.06 * (hash_u01(seed, Stream.PATH, src, dst, 1) - 0.5)
        base = (1.0 + 1.1 * dist) * asym
        if family == "ipv6":
            lo, hi = sorted((src, dst))
            base *= 0.97 + 0.15 * hash_u01(seed, Stream.FAMILY, lo, hi, 1)
        return base

    def _build_path(self, src: int, dst: int, family: str) -> PathModel:
        seed = self.physics.seed
        u = [
            hash_u01(seed, Stream.PATH, src, dst, 10 + i, 1 if family == "ipv6" else 0)
            for i in range(8)
        ]
        owd = self._owd(src, dst, family)
        rtt = owd + self._owd(dst, src, family)
        cap = min(self.sites[src].nic_bps, self.sites[dst].nic_bps)
        eff = 0.95 / (1.0 + rtt / (60.0 + 200.0 * u[0]))
        fam = 1.0 if family == "ipv4" else 0.8 + 0.25 * u[1]
        clock = self.roles.clock_error
        offset = self.physics.clock_offset_ms
        shift = (offset if src == clock else 0.0) - (offset if dst == clock else 0.0)
        terr = 0.02 + 0.4 * u[2]
        if clock in (src, dst):
            terr += abs(offset) + 5.0 + 10.0 * u[3]
        return PathModel(
            owd_ms=owd,
            shift_ms=shift,
            rtt_ms=rtt,
            jitter_ms=0.01 + 0.08 * u[4],
            queue_ms=0.05 + 0.5 * u[5],
            base_loss=0.0 if u[6] < 0.6 else 10 ** (-5.0 + 2.0 * u[7]),
            reorder_rate=0.0 if u[6] < 0.8 else 1e-4,
            base_bps=min(cap * eff * fam, 0.94 * cap),
            cap_bps=cap,
            retx_scale=5.0 + 200.0 * u[3] ** 2,
            hops=3
            + round(math.hypot(*self._delta(src, dst)) / 4.0)
            + (1 if family == "ipv6" else 0),
            terr_ms=terr,
        )

    def _delta(self, src: int, dst: int) -> tuple[float, float]:
        s, d = self.sites[src], self.sites[dst]
        return s.x - d.x, s.y - d.y

    # -- time-varying conditions --------------------------------------------------
    def load(self, site: int, ts: NDArray[np.int64]) -> NDArray[np.float64]:
        """Diurnal load in [0, 1]: 1 at 14:00 local time, ~0 at night."""
        local = (ts / HOUR + self.sites[site].utc_offset) % 24.0
        wave: NDArray[np.float64] = (
            0.5 * (1.0 + np.cos(2 * np.pi * (local - _PEAK_HOUR) / 24.0))
        ) ** 2
        return wave

    def path_load(self, src: int, dst: int, ts: NDArray[np.int64]) -> NDArray[np.float64]:
        """Mean diurnal load of both ends."""
        return 0.5 * (self.load(src, ts) + self.load(dst, ts))

    def burst_loss(self, src: int, dst: int, ts: NDArray[np.int64]) -> NDArray[np.float64]:
        """Extra packet-loss fraction from hour-long loss bursts on ``src`` -> ``dst``."""
        hours = ts // HOUR
        prefix = (self.physics.seed, Stream.BURST, src, dst)
        hit = hash_u01_array(prefix, hours) < self.physics.burst_probability
        rate = 0.01 + 0.29 * hash_u01_array((*prefix, 1), hours)
        out: NDArray[np.float64] = np.where(hit, rate, 0.0)
        return out

    # -- outages ---------------------------------------------------------------------
    def outage_windows(self, host: Host, day: int) -> tuple[tuple[int, int], ...]:
        """Outage windows [start, end) of ``host`` that begin on ``day``."""
        site = self.sites_index(host)
        return _outage_windows(self.physics.seed, site, host.index, site == self.roles.outage, day)

    def sites_index(self, host: Host) -> int:
        """Index of the site a host belongs to."""
        return host.index // 2

    def down_until(self, host: Host, ts: int) -> int | None:
        """Start of the outage covering ``ts`` for ``host``, or None if it is up."""
        day = ts // DAY
        for d in (day, day - 1):
            for a, b in self.outage_windows(host, d):
                if a <= ts < b:
                    return a
        return None

    def down_mask(self, host: Host, ts: NDArray[np.int64]) -> NDArray[np.bool_]:
        """True where ``host`` is down at ``ts``."""
        mask = np.zeros(ts.shape, dtype=bool)
        if ts.size == 0:
            return mask
        for d in range(int(ts.min()) // DAY - 1, int(ts.max()) // DAY + 1):
            for a, b in self.outage_windows(host, d):
                mask |= (ts >= a) & (ts < b)
        return mask


@lru_cache(maxsize=65536)
def _outage_windows(
    seed: int, site: int, host: int, flaky: bool, day: int
) -> tuple[tuple[int, int], ...]:
    windows: list[tuple[int, int]] = []
    start_of_day = day * DAY
    if flaky:  # the flaky site loses both hosts for 2-5 hours every day
        start = (
            start_of_day + int(hash_u01(seed, Stream.OUTAGE, site, day, 1) * 20 * HOUR) // 60 * 60
        )
        length = int(2 * HOUR + hash_u01(seed, Stream.OUTAGE, site, day, 2) * 3 * HOUR) // 60 * 60
        windows.append((start, start + length))
    if hash_u01(seed, Stream.OUTAGE, 1000 + host, day, 3) < 0.03:
        start = (
            start_of_day + int(hash_u01(seed, Stream.OUTAGE, 1000 + host, day, 4) * DAY) // 60 * 60
        )
        length = (
            int(HOUR + hash_u01(seed, Stream.OUTAGE, 1000 + host, day, 5) * 3 * HOUR) // 60 * 60
        )
        windows.append((start, start + length))
    return tuple(windows)
