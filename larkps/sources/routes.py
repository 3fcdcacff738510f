"""One form of a traceroute, whichever archive stored it.

A route is ``[(ttl, sorted responding IPs), ...]`` in ttl order; a hop whose probes
all failed has no IPs. esmond/elmond ``packet-trace`` values (a list of probes) and
the WLCG ``ps_trace`` documents (parallel ``hops``/``ttls`` lists) are both read into
it, so the same route from either archive has the same :func:`path_fingerprint`.
"""

from __future__ import annotations

import hashlib
import ipaddress

from larkps.units import finite_number

Route = list[tuple[int, tuple[str, ...]]]


def trace_hops(value: object) -> Route:
    """The route of an esmond ``packet-trace`` value (one dict per probe).

    Old bwctl data give every field as a string; pScheduler data use numbers.
    """
    if not isinstance(value, list):
        return []
    by_ttl: dict[int, set[str]] = {}
    for probe in value:
        if not isinstance(probe, dict):
            continue
        ttl = _ttl(probe.get("ttl"))
        if ttl is None:
            continue
        addresses = by_ttl.setdefault(ttl, set())
        ip = probe.get("ip")
        if isinstance(ip, str) and ip and probe.get("success", 1) not in (0, "0", False):
            addresses.add(_normal_ip(ip))
    return _ordered(by_ttl)


def listed_hops(hops: object, ttls: object = None) -> Route:
    """The route of a ``ps_trace`` document: ``hops`` lists one IP per hop.

    ``ttls``, when it is a list as long as ``hops``, gives each hop's ttl; otherwise
    the hops are numbered from 1. An entry that is not an address (null, ``""``,
    ``"*"``) is a hop that did not answer.
    """
    if not isinstance(hops, list):
        return []
    numbers = ttls if isinstance(ttls, list) and len(ttls) == len(hops) else None
    by_ttl: dict[int, set[str]] = {}
    for position, ip in enumerate(hops):
        ttl = _ttl(numbers[position]) if numbers is not None else position + 1
        if ttl is None:
            continue
        addresses = by_ttl.setdefault(ttl, set())
        if isinstance(ip, str) and ip.strip("* "):
            addresses.add(_normal_ip(ip))
    return _ordered(by_ttl)


def path_fingerprint(hops: Route) -> str:
    """sha256 of the hop IP sequence: equal fingerprints mean the same route."""
    text = ";".join(f"{ttl}:{'|'.join(ips) or '*'}" for ttl, ips in hops)
    return hashlib.sha256(text.encode()).hexdigest()


def _ttl(value: object) -> int | None:
    ttl = finite_number(value)
    return int(ttl) if ttl is not None and 0 < ttl < 256 else None


def _ordered(by_ttl: dict[int, set[str]]) -> Route:
    return [(ttl, tuple(sorted(by_ttl[ttl]))) for ttl in sorted(by_ttl)]


def _normal_ip(text: str) -> str:
    try:
        return ipaddress.ip_address(text.strip("[]")).compressed
    except ValueError:
        return "".join(c if c.isprintable() else " " for c in text)[:64]
