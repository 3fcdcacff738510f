"""Fictional sites and their perfSONAR hosts (RFC 2606 names, documentation addresses)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from larkps.embedded._rand import Stream, hash_u01

NATO_SITES = (
    "ALPHA-T2",
    "BRAVO-T1",
    "CHARLIE-T2",
    "DELTA-T2",
    "ECHO-T1",
    "FOXTROT-T2",
    "GOLF-T2",
    "HOTEL-T3",
    "INDIA-T2",
    "JULIET-T2",
    "KILO-T1",
    "LIMA-T2",
    "MIKE-T2",
    "NOVEMBER-T3",
    "OSCAR-T2",
    "PAPA-T2",
    "QUEBEC-T2",
    "ROMEO-T1",
    "SIERRA-T2",
    "TANGO-T2",
    "UNIFORM-T3",
    "VICTOR-T2",
    "WHISKEY-T2",
    "XRAY-T2",
    "YANKEE-T1",
    "ZULU-T2",
)
_TEST_NETS = ("192.0.2.0", "198.51.100.0", "203.0.113.0")
_SMALL_MESH = 16 * len(_TEST_NETS)
MAX_SITES = 512
FAMILIES = ("ipv4", "ipv6")


@dataclass(frozen=True)
class Host:
    """One perfSONAR host (a latency or a bandwidth node)."""

    name: str
    site: str
    role: str
    index: int
    ipv4: str
    ipv6: str | None

    def address(self, family: str) -> str | None:
        """The host's address in ``family`` ("ipv4" | "ipv6"), or None."""
        return self.ipv4 if family == "ipv4" else self.ipv6


@dataclass(frozen=True)
class Site:
    """A site with one latency and one bandwidth host."""

    name: str
    index: int
    x: float
    y: float
    utc_offset: int
    nic_bps: float
    ipv4_net: str
    ipv6_net: str | None
    latency: Host
    bandwidth: Host

    @property
    def families(self) -> tuple[str, ...]:
        """Address families the site's hosts have."""
        return FAMILIES if self.ipv6_net else ("ipv4",)

    @property
    def hosts(self) -> tuple[Host, Host]:
        """The latency host, then the bandwidth host."""
        return (self.latency, self.bandwidth)


@dataclass(frozen=True)
class Roles:
    """Indices of the sites that carry the mesh's deliberate defects."""

    clock_error: int
    fine_bucket: int
    v4_only: int
    outage: int


def roles_for(n_sites: int) -> Roles:
    """Which site has the clock error, 0.0001 buckets, no IPv6 and daily outages."""
    return Roles(clock_error=1, fine_bucket=2, v4_only=n_sites - 1, outage=3 % n_sites)


def site_names(n_sites: int) -> list[str]:
    """Deterministic site names: NATO names for small meshes, SITE-0001... otherwise."""
    if n_sites <= len(NATO_SITES):
        return list(NATO_SITES[:n_sites])
    return [f"SITE-{i + 1:04d}" for i in range(n_sites)]


def _ipv4_plan(index: int, n_sites: int) -> tuple[str, str, str]:
    """(network CIDR, latency address, bandwidth address) for a site."""
    if n_sites <= _SMALL_MESH:
        base = ipaddress.IPv4Address(_TEST_NETS[index // 16]) + 16 * (index % 16)
        return f"{base}/28", str(base + 4), str(base + 5)
    base = ipaddress.IPv4Address("198.18.0.0") + 256 * index
    return f"{base}/24", str(base + 10), str(base + 20)


def _ipv6_plan(index: int) -> tuple[str, str, str]:
    net = ipaddress.IPv6Network(f"2001:db8:{index + 1:x}::/48")
    base = net.network_address
    return str(net), str(base + 0x10), str(base + 0x20)


def _coordinates(seed: int, index: int) -> tuple[float, float]:
    """Position on a 50 x 50 plane whose unit is roughly one millisecond of delay."""
    if index == 1:  # the clock-error site sits next to site 0 (short paths)
        x0, y0 = _coordinates(seed, 0)
        return x0 + 1.5 + 2.5 * hash_u01(seed, Stream.SITE, 1, 7), y0 + 1.0 + 2.0 * hash_u01(
            seed, Stream.SITE, 1, 8
        )
    return 50.0 * hash_u01(seed, Stream.SITE, index, 1), 50.0 * hash_u01(
        seed, Stream.SITE, index, 2
    )


def _host(name: str, site: str, role: str, index: int, v4: str, v6: str | None) -> Host:
    return Host(name=name, site=site, role=role, index=index, ipv4=v4, ipv6=v6)


def build_site(seed: int, index: int, n_sites: int, name: str) -> Site:
    """Build one site with its two hosts."""
    roles = roles_for(n_sites)
    net4, lat4, bw4 = _ipv4_plan(index, n_sites)
    net6, lat6, bw6 = _ipv6_plan(index)
    v6 = index != roles.v4_only
    x, y = _coordinates(seed, index)
    slug = name.lower()
    nic = 1e9 if hash_u01(seed, Stream.SITE, index, 3) < 0.2 and index > 1 else 1e10
    return Site(
        name=name,
        index=index,
        x=x,
        y=y,
        utc_offset=round(x / 50.0 * 14.0) - 6,
        nic_bps=nic,
        ipv4_net=net4,
        ipv6_net=net6 if v6 else None,
        latency=_host(
            f"ps-lat.{slug}.example.org", name, "latency", 2 * index, lat4, lat6 if v6 else None
        ),
        bandwidth=_host(
            f"ps-bw.{slug}.example.org", name, "bandwidth", 2 * index + 1, bw4, bw6 if v6 else None
        ),
    )


def build_sites(seed: int, n_sites: int) -> tuple[Site, ...]:
    """All sites of a mesh, in index order."""
    return tuple(build_site(seed, i, n_sites, nm) for i, nm in enumerate(site_names(n_sites)))


def normalise_address(text: str) -> str | None:
    """Canonical form of an IP literal, or None if ``text`` is not one."""
    try:
        return str(ipaddress.ip_address(text.strip().strip("[]")))
    except ValueError:
        return None
