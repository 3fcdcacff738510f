"""The nftables ruleset of one job's namespace, as the text ``nft -f -`` reads.

Pure. Table ``inet larkps_job``: inbound on the job's interface only what belongs to
connections the job opened (``nat``), and new connections to the listed ports
(``ports``); outbound only to the allowlist when the plan has one; named counters of
the accepted bytes and packets per direction and destination class (``same-site``,
``other-sites``, ``elsewhere``), and of the refused ones per direction. Only
validated integers, networks and this module's own names are formatted into the
text: nothing a job ad holds reaches it as a string.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from larkps.config.jobnet import CLASSES, ELSEWHERE, Network, Policy
from larkps.errors import FieldError
from larkps.jobnet.request import JobPlan

TABLE = "larkps_job"
DIRECTIONS = ("in", "out")
REFUSED = "refused"
#: Every class a counter is kept for, in the order a destination is tested.
ALL_CLASSES = (*CLASSES, ELSEWHERE)
_IFACE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,14}$")
#: ICMPv6 that IPv6 needs on a link whatever the policy (neighbour and router discovery).
_ND_TYPES = "nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert, nd-redirect"
_ND_OUT = "nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit"


def counter_name(direction: str, klass: str) -> str:
    """The nft counter of one direction and class (``out_same_site``, ``in_refused``)."""
    if direction not in DIRECTIONS or klass not in (*ALL_CLASSES, REFUSED):
        raise ValueError(f"no counter for {direction!r} {klass!r}")
    return f"{direction}_{klass.replace('-', '_')}"


@dataclass(frozen=True, slots=True)
class Count:
    """Bytes (IP packet lengths) and packets."""

    bytes: int = 0
    packets: int = 0

    def __add__(self, other: Count) -> Count:
        return Count(self.bytes + other.bytes, self.packets + other.packets)


@dataclass(frozen=True, slots=True)
class Counters:
    """What a job's interface carried: accepted per (direction, class), refused per direction."""

    accepted: Mapping[tuple[str, str], Count]
    refused: Mapping[str, Count]

    def total(self, direction: str) -> Count:
        """All accepted traffic of one direction (``in`` or ``out``)."""
        found = [c for (d, _), c in self.accepted.items() if d == direction]
        return sum(found, Count())

    @classmethod
    def empty(cls) -> Counters:
        return cls({(d, k): Count() for d in DIRECTIONS for k in ALL_CLASSES}, {})


def counters_from_json(document: object) -> Counters:
    """Counters from ``nft -j list counters table inet larkps_job`` (parsed JSON)."""
    names = {counter_name(d, k): (d, k) for d in DIRECTIONS for k in (*ALL_CLASSES, REFUSED)}
    accepted = dict(Counters.empty().accepted)
    refused: dict[str, Count] = {}
    items = document.get("nftables", []) if isinstance(document, dict) else []
    for item in items if isinstance(items, list) else []:
        counter = item.get("counter") if isinstance(item, dict) else None
        if not isinstance(counter, dict) or counter.get("table") != TABLE:
            continue
        key = names.get(str(counter.get("name")))
        got, packets = counter.get("bytes"), counter.get("packets")
        if key is None or not isinstance(got, int) or not isinstance(packets, int):
            continue
        direction, klass = key
        if klass == REFUSED:
            refused[direction] = Count(got, packets)
        else:
            accepted[key] = Count(got, packets)
    return Counters(accepted, refused)


def ruleset(
    plan: JobPlan, classes: Mapping[str, Iterable[Network]], interface: str = "tap0"
) -> str:
    """The ruleset for ``plan`` on ``interface`` (classes: CLASSES name -> networks)."""
    if not _IFACE.match(interface):
        raise FieldError("interface", f"expected a plain interface name, got {interface!r}")
    unknown = sorted(set(classes) - set(CLASSES))
    if unknown:
        raise FieldError("classes", f"unknown class {unknown[0]!r} (known: {', '.join(CLASSES)})")
    ports = _ports(plan)
    sets = {f"{_ident(name)}_": _networks(classes.get(name, ())) for name in CLASSES}
    if plan.allow:
        sets["allow_"] = _networks(plan.allow)
    lines = [f"table inet {TABLE} {{"]
    for direction in DIRECTIONS:
        for klass in (*ALL_CLASSES, REFUSED):
            lines.append(f"  counter {counter_name(direction, klass)} {{ }}")
    for prefix, (v4, v6) in sets.items():
        lines += _set(prefix + "v4", "ipv4_addr", v4) + _set(prefix + "v6", "ipv6_addr", v6)
    lines += _output_chain(interface, bool(plan.allow))
    lines += _input_chain(interface, ports)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _ports(plan: JobPlan) -> tuple[int, ...]:
    if plan.policy is not Policy.PORTS:
        if plan.ports:
            raise FieldError("ports", f"only with policy ports, not {plan.policy.value}")
        return ()
    for port in plan.ports:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise FieldError("ports", f"{port!r} is not a port")
    return tuple(sorted(set(plan.ports)))


def _networks(networks: Iterable[object]) -> tuple[list[str], list[str]]:
    """Each family's networks, collapsed (no overlaps) and in canonical text."""
    v4: list[ipaddress.IPv4Network] = []
    v6: list[ipaddress.IPv6Network] = []
    for net in networks:
        if isinstance(net, ipaddress.IPv4Network):
            v4.append(net)
        elif isinstance(net, ipaddress.IPv6Network):
            v6.append(net)
        else:
            raise FieldError("networks", f"expected an IP network, got {type(net).__name__}")
    return (
        [str(n) for n in ipaddress.collapse_addresses(v4)],
        [str(n) for n in ipaddress.collapse_addresses(v6)],
    )


def _ident(klass: str) -> str:
    return klass.replace("-", "_")


def _set(name: str, kind: str, elements: list[str]) -> list[str]:
    body = [f"  set {name} {{", f"    type {kind}", "    flags interval"]
    if elements:
        body.append(f"    elements = {{ {', '.join(elements)} }}")
    return [*body, "  }"]


def _classified(direction: str, field: str, verdict: str) -> list[str]:
    """Rules counting by class on the address ``field`` (``daddr``/``saddr``), then verdict."""
    rules = []
    for klass in CLASSES:
        name = counter_name(direction, klass)
        rules.append(f'    ip {field} @{_ident(klass)}_v4 counter name "{name}" {verdict}')
        rules.append(f'    ip6 {field} @{_ident(klass)}_v6 counter name "{name}" {verdict}')
    rules.append(f'    counter name "{counter_name(direction, ELSEWHERE)}" {verdict}')
    return rules


def _output_chain(interface: str, allowlist: bool) -> list[str]:
    lines = [
        "  chain output {",
        "    type filter hook output priority filter; policy accept;",
        f'    oifname != "{interface}" accept',
    ]
    if allowlist:
        refused = f'counter name "{counter_name("out", REFUSED)}" reject'
        lines.append(f"    icmpv6 type {{ {_ND_OUT} }} accept")
        lines.append(f"    meta nfproto ipv4 ip daddr != @allow_v4 {refused}")
        lines.append(f"    meta nfproto ipv6 ip6 daddr != @allow_v6 {refused}")
    return [*lines, *_classified("out", "daddr", "accept"), "  }"]


def _input_chain(interface: str, ports: tuple[int, ...]) -> list[str]:
    lines = [
        "  chain input {",
        "    type filter hook input priority filter; policy accept;",
        f'    iifname != "{interface}" accept',
        f"    icmpv6 type {{ {_ND_TYPES} }} accept",
        "    ct state established,related jump counted",
    ]
    if ports:
        listed = ", ".join(str(p) for p in ports)
        lines.append(f"    meta l4proto {{ tcp, udp }} th dport {{ {listed} }} jump counted")
    lines.append(f'    counter name "{counter_name("in", REFUSED)}" drop')
    lines.append("  }")
    return [*lines, "  chain counted {", *_classified("in", "saddr", "accept"), "  }"]
