"""What one job's network namespace gets: its job ad and this node's rules -> a JobPlan.

Pure: plain dicts in (the job ad and the machine ad as :mod:`larkps.jobnet.jobad`
reads them), a validated :class:`JobPlan` out. Every value from the job ad is checked
here, before anything can format it into a command or a rule; a value the node
refuses raises :class:`JobNetRefused` naming the job-ad attribute.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from larkps.config.jobnet import Mode, Network, NodeJobNet, Policy
from larkps.config.throttle import ThrottlePolicy
from larkps.errors import FieldError
from larkps.publish.identifiers import site_fragment
from larkps.units import format_rate

POLICY = "LarkNetworkPolicy"
#: Policies Lark had that larkps does not build, with the reason.
NOT_BUILT = {"vlan": "VLAN tagging is not implemented (see docs/jobnet.md, Limitations)"}
PORTS = "LarkNetworkPorts"
ALLOW = "LarkNetworkAllow"
RATE = "LarkNetworkRateLimit"  # Mbps
JOBS = "LarkNetworkJobs"  # how many jobs share the path (the workflow's N)
SOURCE_SITES = ("LarkPSSourceSite", "LarkNetworkDataSite")
#: At most this many ports or networks in one job ad.
MAX_ITEMS = 64
#: A job's owner as a Unix user name.
USER_NAME = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
_PORT_ITEM = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?$")


class JobNetRefused(FieldError):
    """The job ad asks for something this node does not allow, or is malformed."""


@dataclass(frozen=True, slots=True)
class JobPlan:
    """One job's namespace: who, which policy, what it may reach, at what rate."""

    job_id: str  # "cluster.proc"
    owner: str
    mode: Mode
    policy: Policy
    ports: tuple[int, ...] = ()
    allow: tuple[Network, ...] = ()  # egress allowlist; empty: every destination
    rate_bps: int | None = None  # both directions
    rationale: tuple[str, ...] = ()

    @property
    def tag(self) -> str:
        """The job id as a name fragment (``123_0``) for namespaces, links and tables."""
        return self.job_id.replace(".", "_")


def plan_job(
    job_ad: Mapping[str, object],
    machine_ad: Mapping[str, object],
    node: NodeJobNet,
    throttle: ThrottlePolicy | None = None,
) -> JobPlan:
    """The JobPlan for a job on this node (JobNetRefused when the node refuses it)."""
    job_ad, machine_ad = Caseless(job_ad), Caseless(machine_ad)
    policy = _policy(job_ad, node)
    ports = _ports(job_ad) if policy is Policy.PORTS else ()
    if policy is not Policy.PORTS and PORTS in job_ad:
        raise JobNetRefused(PORTS, f'only allowed with {POLICY} = "ports"')
    rate, why = _rate(job_ad, machine_ad, node, throttle or ThrottlePolicy())
    allow = _allow(job_ad)
    lines = [f"policy {policy.value} ({_policy_source(job_ad)}), mode {node.mode.value}", why]
    if ports:
        lines.append("inbound ports " + ",".join(str(p) for p in ports))
    if allow:
        lines.append("egress only to " + ", ".join(str(n) for n in allow))
    return JobPlan(
        job_id=_job_id(job_ad),
        owner=_owner(job_ad),
        mode=node.mode,
        policy=policy,
        ports=ports,
        allow=allow,
        rate_bps=rate,
        rationale=tuple(lines),
    )


class Caseless(Mapping[str, object]):
    """A read-only ad whose attribute names match whatever their case, as in ClassAds."""

    def __init__(self, ad: Mapping[str, object]) -> None:
        self._values = {key.lower(): value for key, value in ad.items()}
        self._names = {key.lower(): key for key in ad}

    def __getitem__(self, name: str) -> object:
        return self._values[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._names.values())

    def __len__(self) -> int:
        return len(self._values)


def _job_id(ad: Mapping[str, object]) -> str:
    cluster, proc = ad.get("ClusterId"), ad.get("ProcId")
    for name, value in (("ClusterId", cluster), ("ProcId", proc)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise JobNetRefused(name, "expected a non-negative integer")
    return f"{cluster}.{proc}"


def _owner(ad: Mapping[str, object]) -> str:
    owner = ad.get("Owner")
    if not isinstance(owner, str) or not USER_NAME.match(owner):
        raise JobNetRefused("Owner", "expected a Unix user name")
    return owner


def _policy(ad: Mapping[str, object], node: NodeJobNet) -> Policy:
    value = ad.get(POLICY)
    if value is None:
        return node.default_policy
    known = {p.value: p for p in Policy}
    if isinstance(value, str) and value.strip().lower() in NOT_BUILT:
        raise JobNetRefused(POLICY, NOT_BUILT[value.strip().lower()])
    if not isinstance(value, str) or value.strip().lower() not in known:
        raise JobNetRefused(POLICY, f"expected one of {', '.join(known)}")
    policy = known[value.strip().lower()]
    if policy not in node.policies:
        allowed = ", ".join(sorted(p.value for p in node.policies))
        raise JobNetRefused(POLICY, f"{policy.value!r} is not allowed on this node ({allowed})")
    return policy


def _policy_source(ad: Mapping[str, object]) -> str:
    return f"from {POLICY}" if POLICY in ad else "the node's default"


def _items(ad: Mapping[str, object], name: str) -> list[str]:
    value = ad.get(name)
    if not isinstance(value, str):
        raise JobNetRefused(name, "expected a string of comma-separated items")
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items:
        raise JobNetRefused(name, "is empty")
    if len(items) > MAX_ITEMS:
        raise JobNetRefused(name, f"more than {MAX_ITEMS} items")
    return items


def _ports(ad: Mapping[str, object]) -> tuple[int, ...]:
    if PORTS not in ad:
        raise JobNetRefused(PORTS, f'is required with {POLICY} = "ports"')
    ports: set[int] = set()
    for item in _items(ad, PORTS):
        match = _PORT_ITEM.match(item)
        if not match:
            raise JobNetRefused(PORTS, f"{_shown(item)} is not a port or a range of ports")
        low = int(match.group(1))
        high = int(match.group(2) or low)
        for port in (low, high):
            if not 1 <= port <= 65535:
                raise JobNetRefused(PORTS, f"{port} is not a port (1-65535)")
        if high < low or high - low >= MAX_ITEMS:
            raise JobNetRefused(PORTS, f"{_shown(item)}: at most {MAX_ITEMS} ports, low to high")
        ports.update(range(low, high + 1))
    if len(ports) > MAX_ITEMS:
        raise JobNetRefused(PORTS, f"more than {MAX_ITEMS} ports")
    return tuple(sorted(ports))


def _allow(ad: Mapping[str, object]) -> tuple[Network, ...]:
    if ALLOW not in ad:
        return ()
    networks = []
    for item in _items(ad, ALLOW):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise JobNetRefused(ALLOW, f"{_shown(item)} is not a network") from None
    return tuple(sorted(set(networks), key=lambda n: (n.version, n)))


def _rate(
    job: Mapping[str, object],
    machine: Mapping[str, object],
    node: NodeJobNet,
    throttle: ThrottlePolicy,
) -> tuple[int | None, str]:
    cap = node.max_rate_bps
    if RATE in job:
        asked = _positive(job, RATE) * 1e6
        return _capped(asked, cap, f"rate {format_rate(asked)} from {RATE}")
    larkps = _larkps_rate(job, machine, throttle)
    if larkps is not None:
        bps, why = larkps
        return _capped(bps, cap, why)
    if node.default_rate_bps is not None:
        return _capped(node.default_rate_bps, cap, "rate: the node's default_rate")
    if cap is not None:
        return _capped(cap, cap, "rate: the node's max_rate")
    return None, "no rate limit (no job-ad rate, no larkps figure, no node default)"


def _capped(bps: float, cap: float | None, why: str) -> tuple[int, str]:
    if cap is not None and bps > cap:
        return int(cap), f"{why}, capped at the node's max_rate {format_rate(cap)}"
    return max(int(bps), 1), why


def _positive(ad: Mapping[str, object], name: str) -> float:
    value = ad.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise JobNetRefused(name, "expected a number")
    if not math.isfinite(value) or value <= 0:
        raise JobNetRefused(name, "expected a positive number")
    return float(value)


def _larkps_rate(
    job: Mapping[str, object], machine: Mapping[str, object], throttle: ThrottlePolicy
) -> tuple[float, str] | None:
    """R = target_utilisation x safety_factor x lower bound / N for the job's path."""
    site = next((job[k] for k in SOURCE_SITES if isinstance(job.get(k), str)), None)
    if not isinstance(site, str) or not site.strip():
        return None
    prefix = f"LarkPS_From_{site_fragment(site.strip())}"
    low = _lookup(machine, f"{prefix}_BandwidthLowMbps")
    trusted = _lookup(machine, f"{prefix}_Trusted")
    if isinstance(low, bool) or not isinstance(low, int | float) or trusted is not True:
        return None
    if not math.isfinite(low) or low <= 0:
        return None
    jobs = int(_positive(job, JOBS)) if JOBS in job else 1
    factor = throttle.target_utilisation * throttle.safety_factor
    bps = factor * low * 1e6 / max(jobs, 1)
    path = f"{site.strip()} -> {_lookup(machine, 'LarkPS_Site')}"
    why = (
        f"rate {format_rate(bps)} from larkps: {factor:g} x lower bound"
        f" {format_rate(low * 1e6)} of {path} / {jobs} job{'s' if jobs != 1 else ''}"
    )
    return bps, why


def _lookup(ad: Mapping[str, object], name: str) -> object:
    return ad.get(name)


def _shown(text: str) -> str:
    return repr(text[:40])
