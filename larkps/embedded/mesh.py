"""Mesh: the deterministic synthetic perfSONAR mesh and its ground truth."""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass

from larkps.embedded import summaries
from larkps.embedded.catalog import KIND_EVENT_TYPES
from larkps.embedded.config import MeshConfig
from larkps.embedded.directory import Directory
from larkps.embedded.generate import (
    Block,
    GenParams,
    IntArray,
    concat_blocks,
    is_failed,
    make_block,
    select,
)
from larkps.embedded.hosts import FAMILIES, Host, Site, build_sites, roles_for
from larkps.embedded.metadata import Shape, bucket_width
from larkps.embedded.render import RenderCtx, event_rows, presence, values
from larkps.embedded.series import Cadence, Series, enumerate_series
from larkps.embedded.truth import METRIC_KIND, METRICS, Truth, compute_truth
from larkps.embedded.world import DAY, Outage, Physics, World

MAX_SPAN_DAYS = 400
__all__ = ["Mesh", "MeshClock", "MeshConfig"]


class Mesh:
    """A full mesh of sites whose measurements are generated on demand.

    Building a mesh is cheap; data is generated per (series, block) when first asked
    for (a block spans ``block_seconds``, a day by default) and kept in a bounded LRU
    cache. The data do not depend on the block span (see larkps.embedded.generate).
    """

    def __init__(self, config: MeshConfig | None = None) -> None:
        self.config = config or MeshConfig()
        cfg = self.config
        self.sites: tuple[Site, ...] = build_sites(cfg.seed, cfg.sites)
        self.hosts: tuple[Host, ...] = tuple(h for s in self.sites for h in s.hosts)
        self.roles = roles_for(cfg.sites)
        self.world = World(
            Physics(cfg.seed, cfg.clock_offset_ms, cfg.burst_probability), self.sites, self.roles
        )
        self.gen = GenParams(cfg.seed, cfg.failure_rate, cfg.packets_per_sample, cfg.rtt_packets)
        self.shape = Shape(
            cfg.seed,
            cfg.flavour,
            cfg.packets_per_sample,
            cfg.latency_interval,
            cfg.rtt_packets,
            self.roles.fine_bucket,
        )
        self._cadence = Cadence(
            cfg.throughput_interval,
            cfg.latency_interval,
            cfg.rtt_interval,
            cfg.packets_per_sample,
            cfg.rtt_packets,
        )
        self.directory = Directory(self.sites)
        self._site_index = {s.name: s for s in self.sites}
        self._series: list[Series] | None = None
        self._by_key: dict[str, Series] = {}
        self._pairs: dict[tuple[int, int], tuple[int, int]] = {}
        self._cache: OrderedDict[tuple[int, int], _Cached] = OrderedDict()
        self._pending: dict[tuple[int, int], Future[_Cached]] = {}
        self._ctx: dict[int, RenderCtx] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Mesh({self.config!r})"

    # -- structure ---------------------------------------------------------------------
    @property
    def series(self) -> list[Series]:
        """Every series, in index order (built on first use)."""
        built = self._series  # set last, once everything else is in place
        if built is not None:
            return built
        with self._lock:
            if self._series is None:
                cfg = self.config
                series = enumerate_series(cfg.seed, self.sites, self._cadence, cfg.flavour)
                self._by_key = {s.key: s for s in series}
                for s in series:
                    lo, _ = self._pairs.get((s.src.index, s.dst.index), (s.index, s.index))
                    self._pairs[(s.src.index, s.dst.index)] = (lo, s.index + 1)
                self._series = series
            return self._series

    def series_by_key(self, key: str) -> Series | None:
        """The series with metadata key ``key`` (case-insensitive), if any."""
        _ = self.series
        return self._by_key.get(key.lower())

    def find_series(self, src_site: str, dst_site: str, family: str, kind: str) -> Series | None:
        """The series of ``kind`` from ``src_site`` to ``dst_site`` in ``family``."""
        src, dst = self._site(src_site), self._site(dst_site)
        if family not in FAMILIES:
            raise ValueError(f"family must be ipv4 or ipv6, not {family!r}")
        for s in self.series_between(src, dst):
            if s.family == family and s.kind == kind:
                return s
        return None

    def series_between(self, src: Site, dst: Site) -> list[Series]:
        """All series from ``src`` to ``dst``."""
        everything = self.series
        span = self._pairs.get((src.index, dst.index))
        return everything[span[0] : span[1]] if span else []

    def _site(self, name: str) -> Site:
        site = self._site_index.get(name)
        if site is None:
            raise ValueError(f"unknown site {name!r}")
        return site

    def site_of(self, host_or_ip: str) -> str | None:
        """Site of a host name or an address (exact host address or site network)."""
        return self.directory.site_of(host_or_ip)

    def site_map(self) -> dict[str, dict[str, list[str]]]:
        """``{site: {"hosts": [...], "networks": [cidr, ...]}}`` for host -> site mapping."""
        return self.directory.site_map()

    def resolve(self, name_or_ip: str, rule: str = "v4v6") -> list[str]:
        """Addresses a name resolves to in the mesh's own host table, per dns-match-rule."""
        return self.directory.resolve(name_or_ip, rule)

    def outages(self, start: int, end: int) -> list[Outage]:
        """Host outage windows overlapping [start, end], by start time."""
        out: list[Outage] = []
        for host in self.hosts:
            for day in range(start // DAY - 1, end // DAY + 1):
                for a, b in self.world.outage_windows(host, day):
                    if a <= end and b > start:
                        out.append(Outage(a, b, host.name, host.site))
        return sorted(out)

    # -- data --------------------------------------------------------------------------
    def render_ctx(self, series: Series) -> RenderCtx:
        """How values of ``series`` are written (label scale 10 for 0.0001 buckets)."""
        ctx = self._ctx.get(series.index)
        if ctx is None:
            scale = 10 if bucket_width(series, self.shape) < 0.001 else 1
            ctx = self._ctx[series.index] = RenderCtx(self.config.seed, self.config.flavour, scale)
        return ctx

    def block(self, series: Series, index: int) -> Block:
        """The (cached) block of ``series`` that starts at ``index * block_seconds``."""
        return self._cached(series, index).block

    def _cached(self, series: Series, index: int) -> _Cached:
        """The cached block, generated once: concurrent requests for a block being
        generated wait for it (a client asks for several event types of a series at once)."""
        key = (series.index, index)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
            pending = self._pending.get(key)
            owner = pending is None
            if pending is None:
                pending = self._pending[key] = Future()
        if not owner:
            return pending.result()
        try:
            made = _Cached(self._make(series, index))
        except BaseException as exc:
            with self._lock:
                del self._pending[key]
            pending.set_exception(exc)
            raise
        with self._lock:
            del self._pending[key]
            self._cache[key] = made
            while len(self._cache) > self.config.cache_blocks:
                self._cache.popitem(last=False)
        pending.set_result(made)
        return made

    def _make(self, series: Series, index: int) -> Block:
        span = self.config.block_seconds
        return make_block(self.gen, self.world, series, index * span, (index + 1) * span)

    def _blocks(self, lo: int, hi: int) -> range:
        """Indices of the blocks that hold lo <= ts <= hi (ts >= 0)."""
        span = self.config.block_seconds
        return range(max(lo, 0) // span, max(hi, 0) // span + 1)

    def collect(self, series: Series, lo: int, hi: int) -> Block:
        """All runs of ``series`` with lo <= ts <= hi, as one block."""
        _check_span(lo, hi)
        parts = [self.block(series, b) for b in self._blocks(lo, hi)]
        merged = concat_blocks(parts)
        return select(merged, (merged.ts >= lo) & (merged.ts <= hi))

    def points(
        self,
        metadata_key: str,
        event_type: str,
        start: int,
        end: int,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[dict[str, object]]:
        """Base points ``{"ts", "val"}`` with start <= ts <= end, ascending."""
        series = self._require(metadata_key)
        _check_span(start, end)
        if end < max(start, 0) or not self._may_have(series, event_type):
            return []
        ctx = self.render_ctx(series)
        out: list[dict[str, object]] = []
        skip = offset
        for index in self._blocks(start, end):
            cached = self._cached(series, index)
            found = cached.event_rows(series, event_type)
            if found is None:
                return []
            rows, ts = found
            a, b = int(ts.searchsorted(start)), int(ts.searchsorted(end, side="right"))
            drop = min(skip, b - a)
            a, skip = a + drop, skip - drop
            if limit is not None:
                b = min(b, a + limit - len(out))
            vals = values(ctx, series, event_type, cached.block, rows[a:b])
            out.extend({"ts": t, "val": v} for t, v in zip(ts[a:b].tolist(), vals, strict=True))
            if limit is not None and len(out) >= limit:
                break
        return out

    def summary(
        self,
        metadata_key: str,
        event_type: str,
        summary_type: str,
        window: int,
        start: int,
        end: int,
        now: int,
    ) -> list[dict[str, object]]:
        """Summary points (JSON summary type) whose window start lies in [start, end]."""
        series = self._require(metadata_key)
        lo = start // window * window if window > 0 else start
        hi = min(now, end // window * window + window - 1 if window > 0 else end)
        data = self.collect(series, lo, hi)
        rows = event_rows(series, event_type, data)
        if rows is None:
            return []
        pts = summaries.compute(
            self.render_ctx(series), event_type, summary_type, window, data, rows
        )
        return [p for p in pts if start <= int(p["ts"]) <= end]  # type: ignore[call-overload]

    def last_ts(self, series: Series, event: str, lower: int, upper: int) -> int | None:
        """Timestamp of the latest point of ``event`` with lower <= ts <= upper."""
        if not self._may_have(series, event):
            return None
        need = presence(event)
        lower = max(lower, upper - MAX_SPAN_DAYS * DAY)
        k = (upper - series.phase) // series.interval
        while (ts := series.ts_of(k)) >= lower:
            down = self._down_start(series, ts)
            if down is not None:
                k = (down - 1 - series.phase) // series.interval
            elif need == "any" or is_failed(self.gen, series, k) == (need == "failed"):
                return ts
            else:
                k -= 1
        return None

    def _may_have(self, series: Series, event: str) -> bool:
        """False when ``series`` can never have a point of ``event``."""
        if event not in KIND_EVENT_TYPES[series.kind]:
            return False
        failures_possible = series.kind == "throughput" and self.gen.failure_rate > 0.0
        return presence(event) != "failed" or failures_possible

    def _down_start(self, series: Series, ts: int) -> int | None:
        starts = [self.world.down_until(h, ts) for h in (series.src_host, series.dst_host)]
        found = [s for s in starts if s is not None]
        return min(found) if found else None

    def _require(self, key: str) -> Series:
        series = self.series_by_key(key)
        if series is None:
            raise KeyError(key)
        return series

    def at(self, now: int) -> MeshClock:
        """A view of the mesh as an archive sees it at ``now`` (for time-updated)."""
        return MeshClock(self, now, now - self.config.retention_days * DAY)

    # -- truth -------------------------------------------------------------------------
    def truth(
        self, src_site: str, dst_site: str, family: str, metric: str, start: int, end: int
    ) -> Truth:
        """Ground truth over points with start < ts <= end (see :class:`Truth`)."""
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}")
        series = self.find_series(src_site, dst_site, family, METRIC_KIND[metric])
        if series is None or end <= start:
            return Truth(metric=metric)
        data = self.collect(series, start + 1, end)
        if metric in ("owdelay", "rtt") and data.hist is not None:
            data = select(data, data.hist.totals > 0)
        return compute_truth(metric, [data] if data.ts.size else [])


class _Cached:
    """A cached block and, per event type, its rows carrying a point and their ``ts``."""

    def __init__(self, block: Block) -> None:
        self.block = block
        self._rows: dict[str, tuple[IntArray, IntArray] | None] = {}

    def event_rows(self, series: Series, event: str) -> tuple[IntArray, IntArray] | None:
        """(rows, ts ascending) of ``event``; None when ``series`` has no such event."""
        try:
            return self._rows[event]
        except KeyError:
            rows = event_rows(series, event, self.block)
            found = None if rows is None else (rows, self.block.ts[rows])
            self._rows[event] = found
            return found


@dataclass(frozen=True)
class MeshClock:
    """The mesh seen at one instant: answers time-updated and run look-ups."""

    mesh: Mesh
    now: int
    oldest: int

    def time_updated(self, series: Series, event: str) -> int | None:
        """Latest point of ``event`` within retention, up to now."""
        return self.mesh.last_ts(series, event, self.oldest, self.now)

    def updated_since(self, series: Series, event: str, begin: int) -> int | None:
        """Latest point of ``event`` if it is at or after ``begin`` (a bounded search)."""
        return self.mesh.last_ts(series, event, max(begin, self.oldest), self.now)

    def last_run(self, series: Series, lower: int, upper: int | None) -> int | None:
        """Latest run with lower <= ts <= upper (clipped to retention and now)."""
        top = self.now if upper is None else min(upper, self.now)
        return self.mesh.last_ts(series, "pscheduler-run-href", max(lower, self.oldest), top)


def _check_span(start: int, end: int) -> None:
    if end - start > MAX_SPAN_DAYS * DAY:
        raise ValueError(f"time span longer than {MAX_SPAN_DAYS} days")
