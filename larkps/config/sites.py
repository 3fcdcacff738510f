"""Host -> site mapping by exact name, domain suffix and IPv4/IPv6 network.

Lookup order: exact hostname, then the longest matching domain suffix, then the
IP address (exact or the longest matching CIDR); where two rules match alike, the
earlier wins (configured rules come before an embedded archive's own). A host that matches nothing
counts as its own site, so without a site map every host is a site.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class SiteRule:
    """How the hosts of one site are recognised."""

    site: str
    hosts: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    networks: tuple[IPNetwork, ...] = ()


class SiteMap:
    """Resolve a (hostname, IP) pair to a site name."""

    def __init__(self, rules: tuple[SiteRule, ...] = ()) -> None:
        self.rules = rules
        self._hosts: dict[str, str] = {}
        for rule in rules:  # the first rule naming a host wins, as for domains and networks
            for host in rule.hosts:
                self._hosts.setdefault(host.lower().rstrip("."), rule.site)
        self._domains = sorted(
            ((d.lower().strip("."), r.site) for r in rules for d in r.domains),
            key=lambda item: -len(item[0]),
        )
        self._networks = sorted(
            ((n, r.site) for r in rules for n in r.networks),
            key=lambda item: -item[0].prefixlen,
        )
        self.site_for = lru_cache(maxsize=65536)(self._site_for)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def _site_for(self, host: str, ip: str = "") -> str:
        name = host.lower().rstrip(".")
        return (
            self._hosts.get(name)
            or self._by_domain(name)
            or self._by_address(ip or host)
            or (host or ip)
        )

    def _by_domain(self, name: str) -> str | None:
        for domain, site in self._domains:
            if name == domain or name.endswith("." + domain):
                return site
        return None

    def _by_address(self, text: str) -> str | None:
        try:
            address = ipaddress.ip_address(text.strip("[]"))
        except ValueError:
            return None
        for network, site in self._networks:
            if address.version == network.version and address in network:
                return site
        return None
