"""The ``[jobnet]`` section: what per-job network namespaces on this execute node may do.

The job wrapper reads it from larkps.toml; in privileged mode the root-owned helper
reads the same keys from its own file (``/etc/larkps/jobnet.toml``), so that nothing
the job's user can write widens what a job may get (docs/jobnet.md).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from larkps.config.sites import IPNetwork

if TYPE_CHECKING:  # the reader (tomllib, pathlib) is loaded only when a file is read
    from pathlib import Path

    from larkps.config.reader import Section

Network = IPNetwork  # the one network type of the config (config.sites)


class Mode(StrEnum):
    """How the job's namespace is made: by the job's user, or by a root-owned helper."""

    ROOTLESS = "rootless"
    PRIVILEGED = "privileged"


class Policy(StrEnum):
    """What the job's interface lets through (docs/jobnet.md)."""

    NAT = "nat"  # outbound only
    PORTS = "ports"  # outbound, and inbound to the listed ports
    BRIDGE = "bridge"  # its own address on the node's bridge, reachable from peers
    ROUTED = "routed"  # its own address, routed by the node


class UserNet(StrEnum):
    """The user-mode network stack that connects a rootless namespace."""

    PASTA = "pasta"
    SLIRP4NETNS = "slirp4netns"


#: The policies a rootless namespace can give (the rest need addresses on the host).
ROOTLESS_POLICIES = frozenset({Policy.NAT, Policy.PORTS})
#: Interface names the node may configure (Linux allows 15 bytes).
INTERFACE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,14}$")
#: Destination classes for accounting, in the order a destination is tested.
CLASSES = ("same-site", "other-sites")
ELSEWHERE = "elsewhere"
LEDGER = "/var/lib/larkps/jobnet/ledger.sqlite"
#: The one command a sudoers rule lets slot users run as root (privileged mode).
HELPER = "/opt/larkps/venv/bin/larkps-jobnet-helper"


@dataclass(frozen=True, slots=True)
class NodeJobNet:
    """The ``[jobnet]`` settings (docs/configuration.md)."""

    mode: Mode = Mode.ROOTLESS
    policies: frozenset[Policy] = ROOTLESS_POLICIES
    default_policy: Policy = Policy.NAT
    user_net: UserNet = UserNet.PASTA
    max_rate_bps: float | None = None  # no job gets more
    default_rate_bps: float | None = None  # when neither the job ad nor larkps gives one
    ledger: str = LEDGER
    helper: str = HELPER
    bridge: str = "larkbr0"
    pool4: ipaddress.IPv4Network | None = None  # job addresses for bridge/routed
    pool6: ipaddress.IPv6Network | None = None
    classes: dict[str, tuple[Network, ...]] = field(default_factory=dict)

    def destination_class(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
        """The accounting class of one destination address."""
        for name in CLASSES:
            if any(address in net for net in self.classes.get(name, ())):
                return name
        return ELSEWHERE


def jobnet_settings(section: Section) -> NodeJobNet:
    """Read ``[jobnet]`` (an absent section gives the rootless defaults)."""
    mode = Mode(section.choice("mode", [m.value for m in Mode], Mode.ROOTLESS.value))
    policies = _policies(section, mode)
    default = Policy(section.choice("default_policy", [p.value for p in Policy], "nat"))
    if default not in policies:
        raise section.error("default_policy", f"{default.value!r} is not in policies")
    result = NodeJobNet(
        mode=mode,
        policies=policies,
        default_policy=default,
        user_net=UserNet(section.choice("user_net", [u.value for u in UserNet], "pasta")),
        max_rate_bps=section.rate("max_rate"),
        default_rate_bps=section.rate("default_rate"),
        ledger=section.string("ledger", LEDGER),
        helper=_absolute(section, "helper", HELPER),
        bridge=section.pattern("bridge", INTERFACE_NAME, "an interface name", "larkbr0"),
        pool4=_pool(section, "pool4", 4),  # type: ignore[arg-type]
        pool6=_pool(section, "pool6", 6),  # type: ignore[arg-type]
        classes=_classes(section.section("classes")),
    )
    _check_rates(section, result)
    _check_pools(section, result)
    section.finish()
    return result


def _policies(section: Section, mode: Mode) -> frozenset[Policy]:
    default = sorted(p.value for p in ROOTLESS_POLICIES)
    names = section.string_list("policies") if "policies" in section.data else default
    section.keep("policies", names)
    known = {p.value for p in Policy}
    for index, name in enumerate(names):
        if name not in known:
            options = ", ".join(sorted(known))
            raise section.error(f"policies[{index}]", f"expected one of {options}, got {name!r}")
    chosen = frozenset(Policy(n) for n in names)
    if not chosen:
        raise section.error("policies", "expected at least one policy")
    if mode is Mode.ROOTLESS and not chosen <= ROOTLESS_POLICIES:
        extra = ", ".join(sorted(p.value for p in chosen - ROOTLESS_POLICIES))
        raise section.error("policies", f'{extra} needs mode = "privileged"')
    return chosen


def _absolute(section: Section, key: str, default: str) -> str:
    value = section.string(key, default)
    if not value.startswith("/"):
        raise section.error(key, f"expected an absolute path, got {value!r}")
    return value


def _pool(section: Section, key: str, version: int) -> Network | None:
    value = section.optional_string(key)
    if value is None:
        return None
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise section.error(key, f"expected an IPv{version} network, {exc}") from None
    if network.version != version or network.num_addresses < 4:
        raise section.error(key, f"expected an IPv{version} network of 4 or more addresses")
    return network


def _classes(section: Section) -> dict[str, tuple[Network, ...]]:
    result: dict[str, tuple[Network, ...]] = {}
    for name in CLASSES:
        networks = section.network_list(name)
        if networks:
            result[name] = tuple(networks)
    section.finish()
    return result


def _check_rates(section: Section, node: NodeJobNet) -> None:
    cap, default = node.max_rate_bps, node.default_rate_bps
    for key, value in (("max_rate", cap), ("default_rate", default)):
        if value is not None and value <= 0:
            raise section.error(key, "must be positive")
    if cap is not None and default is not None and default > cap:
        raise section.error("default_rate", "is above max_rate")


def _check_pools(section: Section, node: NodeJobNet) -> None:
    routable = node.policies & {Policy.BRIDGE, Policy.ROUTED}
    if routable and node.pool4 is None and node.pool6 is None:
        names = ", ".join(sorted(p.value for p in routable))
        raise section.error("pool4", f"policies {names} need pool4 or pool6")


def load_jobnet(path: str | Path, alone: bool = True) -> NodeJobNet:
    """The ``[jobnet]`` table of a file: the helper's own file, which may hold nothing
    else (``alone``), or a whole larkps.toml, whose other tables are not read."""
    from larkps.config.reader import Section, read_toml

    root = Section(read_toml(path), str(path), "")
    node = jobnet_settings(root.section("jobnet"))
    if alone:
        root.finish()
    return node
