"""The mesh's own host table: host/address -> site, and name resolution for filters."""

from __future__ import annotations

import ipaddress

from larkps.embedded.hosts import Host, Site, normalise_address


class Directory:
    """Look-ups over the hosts of a mesh (never touches real DNS)."""

    def __init__(self, sites: tuple[Site, ...]) -> None:
        self.sites = sites
        hosts = [h for s in sites for h in s.hosts]
        self._names = {h.name: h for h in hosts}
        self._addresses = {a: h for h in hosts for a in (h.ipv4, h.ipv6) if a}

    def host(self, name: str) -> Host | None:
        """The host called ``name`` (case-insensitive, trailing dot allowed)."""
        return self._names.get(name.strip().lower().rstrip("."))

    def site_of(self, host_or_ip: str) -> str | None:
        """Site of a host name or an address (exact host address or site network)."""
        host = self.host(host_or_ip)
        if host is not None:
            return host.site
        addr = normalise_address(host_or_ip)
        if addr is None:
            return None
        if addr in self._addresses:
            return self._addresses[addr].site
        ip = ipaddress.ip_address(addr)
        for site in self.sites:
            nets = [n for n in (site.ipv4_net, site.ipv6_net) if n]
            if any(ip in ipaddress.ip_network(n) for n in nets):
                return site.name
        return None

    def site_map(self) -> dict[str, dict[str, list[str]]]:
        """``{site: {"hosts": [...], "networks": [cidr, ...]}}`` for host -> site mapping."""
        return {
            s.name: {
                "hosts": [h.name for h in s.hosts],
                "networks": [n for n in (s.ipv4_net, s.ipv6_net) if n],
            }
            for s in self.sites
        }

    def resolve(self, name_or_ip: str, rule: str = "v4v6") -> list[str]:
        """Addresses of a name (or an IP literal) under an esmond ``dns-match-rule``."""
        literal = normalise_address(name_or_ip)
        if literal is not None:
            v4 = literal if ":" not in literal else None
            v6 = literal if ":" in literal else None
        else:
            host = self.host(name_or_ip)
            if host is None:
                return []
            v4, v6 = host.ipv4, host.ipv6
        picks = {
            "only-v4": [v4],
            "only-v6": [v6],
            "prefer-v4": [v4] if v4 else [v6],
            "prefer-v6": [v6] if v6 else [v4],
        }.get(rule, [v4, v6])
        return [a for a in picks if a]
