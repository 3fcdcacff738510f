"""Measurement series: one per (test kind, ordered site pair, address family)."""

from __future__ import annotations

from dataclasses import dataclass

from larkps.embedded._rand import Stream, hash_u01, sha256_hex
from larkps.embedded.catalog import KINDS
from larkps.embedded.hosts import Host, Site


@dataclass(frozen=True)
class Cadence:
    """Test intervals (seconds) and packets per test."""

    throughput: int
    latencybg: int
    rtt: int
    latency_packets: int
    rtt_packets: int

    def interval(self, kind: str) -> int:
        """Seconds between two tests of ``kind``."""
        return int(getattr(self, kind))


@dataclass(frozen=True)
class Series:
    """One test between two hosts in one address family."""

    index: int
    kind: str
    src: Site
    dst: Site
    family: str
    key: str
    interval: int
    phase: int

    @property
    def src_host(self) -> Host:
        """Host that sends (bandwidth host for throughput, latency host otherwise)."""
        return self.src.bandwidth if self.kind == "throughput" else self.src.latency

    @property
    def dst_host(self) -> Host:
        """Host that receives."""
        return self.dst.bandwidth if self.kind == "throughput" else self.dst.latency

    @property
    def source_ip(self) -> str:
        """Source address in the series' family."""
        return _must(self.src_host.address(self.family))

    @property
    def dest_ip(self) -> str:
        """Destination address in the series' family."""
        return _must(self.dst_host.address(self.family))

    @property
    def agent_host(self) -> Host:
        """Measurement agent: the source for rtt, else the lower-indexed site's host."""
        if self.kind == "rtt" or self.src.index < self.dst.index:
            return self.src_host
        return self.dst_host

    def ts_of(self, k: int) -> int:
        """Timestamp of the k-th grid point."""
        return k * self.interval + self.phase


def _must(address: str | None) -> str:
    if address is None:  # pragma: no cover - series only exist for shared families
        raise ValueError("series without an address in its family")
    return address


def metadata_key(seed: int, kind: str, src: Site, dst: Site, family: str, flavour: str) -> str:
    """esmond: 32 hex characters; elmond: 64 (a SHA-256 like its test checksum)."""
    digest = sha256_hex(f"larkps-mesh:{seed}:{kind}:{src.name}:{dst.name}:{family}")
    return digest if flavour == "elmond" else digest[:32]


def enumerate_series(
    seed: int, sites: tuple[Site, ...], cadence: Cadence, flavour: str
) -> list[Series]:
    """Every series of a full mesh, in a fixed order (its position is its index)."""
    out: list[Series] = []
    for src in sites:
        for dst in sites:
            if src.index == dst.index:
                continue
            for family in (f for f in src.families if f in dst.families):
                for kind in KINDS:
                    idx = len(out)
                    interval = cadence.interval(kind)
                    phase = int(hash_u01(seed, Stream.PHASE, idx) * interval)
                    key = metadata_key(seed, kind, src, dst, family, flavour)
                    out.append(Series(idx, kind, src, dst, family, key, interval, phase))
    return out
