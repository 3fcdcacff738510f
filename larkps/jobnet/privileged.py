"""Privileged mode: the job's network namespace, veth pair, addresses, nft rules and tc.

Everything is made from a validated plan: the job id gives every name (netns
``larkps-<cluster>-<proc>``, host-side veth ``lk<hash>``, host-side nft table
``larkps_<cluster>_<proc>``), addresses come from the node's pools through
lease files, and every command is an argument list of checked names and numbers.
Each object is reported to a ``record`` callback as soon as it exists, so that
:func:`remove` (run by whoever outlives a crash) takes away exactly what was made.

Layout by policy (docs/jobnet.md):
  nat, ports, routed: the job's address is /32 (/128) on its ``eth0``; the host end
    holds the link-local gateways 169.254.1.1 and fe80::1 and a host route to the
    job's address. nat and ports masquerade what leaves and refuse new inbound
    connections; ports forwards the listed host ports (TCP and UDP) to the job.
  bridge: the host end is a port of the node's bridge; the job's address has the
    bridge's prefix and the bridge's own address in that prefix is its gateway.
Every policy: the host-side table lets the job send from its own addresses only and
(if the job ad has one) only to its allowlist. nat and ports also load the
namespace's ruleset (:mod:`larkps.jobnet.rules`), whose counters give the bytes per
destination class; bridge and routed count on the veth. ``eth0``'s MAC follows its
address, so that peers' neighbour entries survive an address's reuse.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import ipaddress
import itertools
import json
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from larkps.apply import tc
from larkps.apply.tc import HOST_SIDE, Device, Shaping, tc_commands
from larkps.config.jobnet import Network, NodeJobNet, Policy
from larkps.errors import LarkpsError
from larkps.jobnet import kernel
from larkps.jobnet.helperconf import PATH
from larkps.jobnet.request import JobPlan
from larkps.jobnet.rules import TABLE as JOB_TABLE
from larkps.jobnet.rules import Counters, counters_from_json, ruleset
from larkps.jobnet.supervise import held

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

JOB_ID_PATTERN = re.compile(r"([0-9]{1,10})\.([0-9]{1,10})")  # whole: fullmatch, ASCII only
JOB_DEV = "eth0"
GATEWAY4 = ipaddress.IPv4Address("169.254.1.1")
GATEWAY6 = ipaddress.IPv6Address("fe80::1")
LEASES = Path("/run/larkps/jobnet")
HELPER_TIMEOUT = 15.0  # seconds, per ip/tc/nft call
MAX_POOL_SCAN = 65536  # addresses tried in one pool before giving up

Record = Callable[[str, str], None]


class HelperRecorder(Protocol):
    """Where a run's start and end are written (the jobnet ledger)."""

    def start(self, plan: JobPlan, objects: Sequence[tuple[str, str]]) -> None: ...

    def end(self, plan: JobPlan, exit_status: int, counters: object) -> None: ...


class PrivilegedError(LarkpsError):
    """The job's network could not be made as planned (nothing of it is left)."""


@dataclass(frozen=True, slots=True)
class Names:
    """Every kernel object name of one job, derived from its id alone."""

    job_id: str
    netns: str
    host_dev: str
    table: str
    job_dev: str = JOB_DEV


def names_for(job_id: str) -> Names:
    """Names for job ``cluster.proc`` (digits only, so they are safe anywhere)."""
    match = JOB_ID_PATTERN.fullmatch(job_id)
    if match is None:
        raise PrivilegedError(f"job id {job_id!r} is not cluster.proc")
    cluster, proc = match.groups()
    digest = hashlib.sha256(job_id.encode()).hexdigest()[:10]
    return Names(job_id, f"larkps-{cluster}-{proc}", f"lk{digest}", f"larkps_{cluster}_{proc}")


@dataclass(frozen=True, slots=True)
class Side:
    """The job's address in one family and how it is reached."""

    address: Interface  # on the job's eth0
    gateway: Address | None  # the job's default route


@dataclass(frozen=True, slots=True)
class Layout:
    """The job's network as made: names, policy, addresses, what was asked."""

    names: Names
    request: JobPlan
    sides: tuple[Side, ...]
    bridge: str | None = None

    def addresses(self) -> list[str]:
        return [str(side.address.ip) for side in self.sides]


# --- commands -------------------------------------------------------------------------


def run_command(
    argv: Sequence[str], stdin: str | None = None, timeout: float = HELPER_TIMEOUT
) -> str:
    """Run one command (an argument list, never a shell) with the helper's own PATH and
    environment; its stdout or PrivilegedError."""
    try:
        return tc.run(argv, timeout, stdin=stdin, search=PATH)
    except tc.CommandFailed as exc:
        raise PrivilegedError(str(exc)) from None


def _quiet(argv: Sequence[str]) -> bool:
    """Run a removal; False when it failed (the object was already gone, mostly)."""
    try:
        run_command(argv)
    except PrivilegedError:
        return False
    return True


# --- address leases -------------------------------------------------------------------


def _process_start(pid: int) -> str | None:
    """The start time of a process (field 22 of /proc/PID/stat), None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()[19]


def owner_tag(pid: int) -> str:
    """``pid start-time``: which process holds a lease, immune to pid reuse."""
    return f"{pid} {_process_start(pid)}"


def lease_alive(tag: str) -> bool:
    pid_text, _, start = tag.strip().partition(" ")
    return pid_text.isascii() and pid_text.isdigit() and _process_start(int(pid_text)) == start


def take_lease(directory: Path, key: str, tag: str, record: Record) -> Path | None:
    """Create ``directory/key`` holding tag unless a live holder has it; its path or None.

    Helpers take leases one at a time (a lock on the directory), and a lease file
    appears whole (written aside, then linked), so no helper reads one half-made or
    removes another's. The lease is recorded before it is created, so that a helper
    killed in between leaves nothing; :func:`remove` takes away only a lease that
    holds its tag.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / key
    with _locked(directory):
        try:
            holder: str | None = path.read_text()
        except FileNotFoundError:
            holder = None
        if holder and lease_alive(holder):
            return None
        record("lease", f"{path} {tag}")
        if holder is not None:
            path.unlink(missing_ok=True)  # its holder died without removing it
        aside = directory / f".{key}.{os.getpid()}"
        aside.unlink(missing_ok=True)
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(tag)
        try:
            os.link(aside, path)
        except FileExistsError:
            return None
        finally:
            aside.unlink(missing_ok=True)
    return path


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive lock on directory (released by the kernel if the holder dies)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def allocate(
    pool: Network, reserved: Iterable[Address], tag: str, record: Record, leases: Path = LEASES
) -> Address:
    """The lowest free address of pool (not its network address, broadcast or reserved)."""
    skip = {str(a) for a in reserved}
    last = pool.broadcast_address
    for index, address in enumerate(pool):
        if index >= MAX_POOL_SCAN:
            break
        if index == 0 or (pool.version == 4 and address == last) or str(address) in skip:
            continue
        if take_lease(leases / "addr", str(address), tag, record) is not None:
            return ipaddress.ip_address(int(address))
    raise PrivilegedError(f"no free address left in {pool}")


def take_ports(ports: Iterable[int], tag: str, record: Record, leases: Path = LEASES) -> None:
    """Hold each host port (TCP and UDP) for this job; refuse one another job holds."""
    for port in ports:
        if take_lease(leases / "port", str(int(port)), tag, record) is None:
            raise PrivilegedError(f"host port {port} is forwarded to another job already")


# --- the bridge -----------------------------------------------------------------------


def bridge_addresses(bridge: str) -> list[Interface]:
    """The bridge's own addresses (empty list if it has none); PrivilegedError if absent."""
    output = run_command(["ip", "-j", "addr", "show", "dev", bridge])
    entries = json.loads(output or "[]")
    found: list[Interface] = []
    for entry in entries:
        for info in entry.get("addr_info", []):
            if info.get("family") in ("inet", "inet6") and info.get("scope") == "global":
                found.append(ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}"))
    return found


def _bridge_side(pool: Network, own: list[Interface], tag: str, record: Record) -> Side:
    """An address of pool on the bridge's subnet, the bridge's address as gateway."""
    subnet = next((a for a in own if a.version == pool.version and pool.subnet_of(a.network)), None)  # type: ignore[arg-type]
    reserved = [a.ip for a in own]
    address = allocate(pool, reserved, tag, record)
    prefix = subnet.network.prefixlen if subnet else pool.prefixlen
    return Side(ipaddress.ip_interface(f"{address}/{prefix}"), subnet.ip if subnet else None)


def _routed_side(pool: Network, reserved: list[Address], tag: str, record: Record) -> Side:
    address = allocate(pool, reserved, tag, record)
    gateway: Address = GATEWAY4 if pool.version == 4 else GATEWAY6
    return Side(ipaddress.ip_interface(f"{address}/{pool.max_prefixlen}"), gateway)


def plan_sides(request: JobPlan, node: NodeJobNet, tag: str, record: Record) -> tuple[Side, ...]:
    """Allocate the job's addresses (one per configured pool), never one of the bridge's."""
    pools = [p for p in (node.pool4, node.pool6) if p is not None]
    if not pools:
        raise PrivilegedError("privileged mode needs pool4 or pool6 in the helper's config")
    if request.policy is Policy.BRIDGE:
        own = bridge_addresses(node.bridge)
        return tuple(_bridge_side(pool, own, tag, record) for pool in pools)
    try:
        reserved = [a.ip for a in bridge_addresses(node.bridge)]
    except PrivilegedError:
        reserved = []  # no bridge on this node
    return tuple(_routed_side(pool, reserved, tag, record) for pool in pools)


# --- making and removing --------------------------------------------------------------


def _forwarding_on(family: int) -> bool:
    key = "ipv4/ip_forward" if family == 4 else "ipv6/conf/all/forwarding"
    try:
        return Path(f"/proc/sys/net/{key}").read_text().strip() == "1"
    except OSError:
        return False


def check_node(layout_sides: Sequence[Side], request: JobPlan) -> None:
    """Refuse before anything is made if the node cannot route the job's traffic."""
    if request.policy is Policy.BRIDGE:
        return
    for side in layout_sides:
        if not _forwarding_on(side.address.version):
            key = (
                "net.ipv4.ip_forward"
                if side.address.version == 4
                else "net.ipv6.conf.all.forwarding"
            )
            raise PrivilegedError(f"{key} is 0 on this node: enable forwarding (docs/jobnet.md)")


def inside(netns: str, *argv: str) -> list[str]:
    """argv run in the job's namespace (nsenter: no mount namespace, unlike ip netns exec)."""
    return ["nsenter", f"--net=/run/netns/{netns}", "--", *argv]


#: Set in the job's namespace before eth0 comes up: no DAD wait; and a gratuitous ARP
#: and unsolicited NA when eth0 comes up, so that peers that knew the address with an
#: earlier job's MAC learn the new one at once.
JOB_SYSCTLS = tuple(
    f"net/{key.format(scope)}"
    for key in (
        "ipv6/conf/{}/accept_dad=0",
        "ipv4/conf/{}/arp_notify=1",
        "ipv6/conf/{}/ndisc_notify=1",
    )
    for scope in ("all", "default", JOB_DEV)
)


def make_links(names: Names, sides: Sequence[Side], record: Record) -> None:
    """The namespace and the veth pair (host end here, ``eth0`` in the job's), one ``ip``
    call; refuse if a namespace of that name exists (another run of this job)."""
    if Path(f"/run/netns/{names.netns}").exists():
        raise PrivilegedError(f"netns {names.netns} exists already: is job {names.job_id} running?")
    record("netns", names.netns)
    record("veth", names.host_dev)
    peer = f"peer name {names.job_dev} address {job_mac(sides)} netns {names.netns}"
    batch = f"netns add {names.netns}\nlink add {names.host_dev} type veth {peer}\n"
    run_command(["ip", "-batch", "-"], stdin=batch)
    Path(f"/proc/sys/net/ipv6/conf/{names.host_dev}/accept_dad").write_text("0\n")
    write_sysctls(names.netns, JOB_SYSCTLS)


def write_sysctls(netns: str, settings: Sequence[str]) -> None:
    """``key=value`` settings (keys as paths under /proc/sys) in a named namespace, from a
    thread that enters it (this process's other threads stay where they are)."""
    failed: list[str] = []

    def inside_netns() -> None:
        try:
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                kernel.setns(fd, kernel.CLONE_NEWNET)
            finally:
                os.close(fd)
            for setting in settings:
                key, _, value = setting.partition("=")
                with open(f"/proc/sys/{key}", "w", encoding="ascii") as handle:
                    handle.write(value + "\n")
        except OSError as exc:
            failed.append(f"{exc.filename or netns}: {exc.strerror}")

    worker = threading.Thread(target=inside_netns, name=f"sysctl {netns}")
    worker.start()
    worker.join()
    if failed:
        raise PrivilegedError(f"sysctl in netns {netns}: {failed[0]}")


def job_mac(sides: Sequence[Side]) -> str:
    """eth0's MAC, from its address (locally administered, 02:4c:...): a peer that knew the
    address from an earlier job keeps a right neighbour entry (a gratuitous ARP sent as
    the link comes up may reach the bridge before its port forwards)."""
    ordered = sorted(sides, key=lambda s: s.address.version)  # IPv4 first
    packed = ordered[0].address.ip.packed[-4:]
    return ":".join(f"{b:02x}" for b in (0x02, 0x4C, *packed))


def address_commands(layout: Layout) -> list[list[str]]:
    """ip commands that give both ends their addresses, bring them up and route: first
    the host end's, then the job's (each group runs as one ``ip -batch``)."""
    n = layout.names
    job = ["ip", "-n", n.netns]
    host: list[list[str]] = []
    host_routes: list[list[str]] = []
    mine: list[list[str]] = [[*job, "link", "set", "lo", "up"]]
    job_routes: list[list[str]] = []
    if layout.bridge is not None:
        host.append(["ip", "link", "set", n.host_dev, "master", layout.bridge])
    for side in layout.sides:
        mine.append([*job, "addr", "add", str(side.address), "dev", n.job_dev, "nodad"])
        gw = side.gateway
        if layout.bridge is None and gw is not None:
            host_gw = f"{gw}/{64 if gw.version == 6 else 32}"
            host.append(["ip", "addr", "add", host_gw, "dev", n.host_dev, "nodad"])
            host_routes.append(["ip", "route", "add", str(side.address.ip), "dev", n.host_dev])
            if gw.version == 4:
                job_routes.append(
                    [*job, "route", "add", str(gw), "dev", n.job_dev, "scope", "link"]
                )
        if gw is not None:
            default = "default" if gw.version == 4 else "::/0"
            job_routes.append([*job, "route", "add", default, "via", str(gw), "dev", n.job_dev])
    host.append(["ip", "link", "set", n.host_dev, "up"])
    mine.append([*job, "link", "set", n.job_dev, "up"])
    return [*host, *host_routes, *mine, *job_routes]


def run_ip(commands: Sequence[Sequence[str]]) -> None:
    """Consecutive ip commands of one namespace as one ``ip [-n NS] -batch -``."""
    for prefix, group in itertools.groupby(commands, key=_ip_prefix):
        lines = "".join(" ".join(argv[len(prefix) :]) + "\n" for argv in group)
        run_command([*prefix, "-batch", "-"], stdin=lines)


def _ip_prefix(argv: Sequence[str]) -> tuple[str, ...]:
    return tuple(argv[:3]) if argv[1:2] == ["-n"] else ("ip",)


def _set(items: Iterable[object]) -> str:
    return "{ " + ", ".join(str(i) for i in items) + " }"


ND_TYPES = "{ nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert }"


def _allow_rules(request: JobPlan, match_in: str, bridge: bool = False) -> list[str]:
    """Drop what the job sends outside its allowlist (neighbour discovery always passes)."""
    if not request.allow:
        return []
    rules = [f"{match_in} icmpv6 type {ND_TYPES} accept"]
    for family, version in (("ip", 4), ("ip6", 6)):
        nets = [n for n in request.allow if n.version == version]
        if nets:
            rules.append(f"{match_in} {family} daddr != {_set(nets)} counter drop")
        else:
            kind = f"ether type {family}" if bridge else f"meta nfproto ipv{version}"
            rules.append(f"{match_in} {kind} counter drop")
    return rules


FILTER = "type filter hook {} priority filter; policy accept;"
SRCNAT = "type nat hook postrouting priority srcnat; policy accept;"
DSTNAT = "type nat hook prerouting priority dstnat; policy accept;"
DSTNAT_LOCAL = "type nat hook output priority -100; policy accept;"


def host_rules(layout: Layout) -> str:
    """The host-side nft table of one job (only validated names, numbers and networks)."""
    if layout.bridge is not None:
        return _bridge_table(layout)
    dev = f'"{layout.names.host_dev}"'
    closed = layout.request.policy in (Policy.NAT, Policy.PORTS)
    inbound = _inbound_rules(layout, dev)
    sent = [*_spoof_rules(layout, dev), *_allow_rules(layout.request, f"iifname {dev}")]
    sent.append(f'iifname {dev} counter accept comment "out"')
    chains = [
        _chain("forward", FILTER.format("forward"), sent + inbound),
        _chain("input", FILTER.format("input"), _allow_rules(layout.request, f"iifname {dev}")),
        _chain("output", FILTER.format("output"), inbound if closed else []),
        _chain("postrouting", SRCNAT, _masquerade(layout, dev) if closed else []),
        *_port_chains(layout),
    ]
    return _table(f"inet {layout.names.table}", chains)


def _table(name: str, chains: list[list[str]]) -> str:
    lines = [f"table {name} {{", *(line for chain in chains for line in chain), "}"]
    return "\n".join(lines) + "\n"


def _spoof_rules(layout: Layout, dev: str) -> list[str]:
    """The job sends from its own addresses only."""
    return [
        f"iifname {dev} {_family(s)} saddr != {s.address.ip} counter drop" for s in layout.sides
    ]


def _inbound_rules(layout: Layout, dev: str) -> list[str]:
    """nat and ports: replies, and (ports) what the node forwards; bridge, routed: all."""
    policy = layout.request.policy
    if policy not in (Policy.NAT, Policy.PORTS):
        return [f'oifname {dev} counter accept comment "in"']
    rules = [
        f"oifname {dev} icmpv6 type {ND_TYPES} accept",
        f'oifname {dev} ct state established,related counter accept comment "in"',
    ]
    if policy is Policy.PORTS and layout.request.ports:
        rules.append(f'oifname {dev} ct status dnat counter accept comment "in"')
    return [*rules, f"oifname {dev} counter drop"]


def _masquerade(layout: Layout, dev: str) -> list[str]:
    return [f"{_family(s)} saddr {s.address.ip} oifname != {dev} masquerade" for s in layout.sides]


def _family(side: Side) -> str:
    return "ip" if side.address.version == 4 else "ip6"


def _chain(name: str, head: str, rules: list[str]) -> list[str]:
    return [f"  chain {name} {{", f"    {head}", *(f"    {r}" for r in rules), "  }"]


def _port_chains(layout: Layout) -> list[list[str]]:
    """DNAT of the listed host ports (TCP and UDP) on the node's own addresses to the job."""
    req = layout.request
    if req.policy is not Policy.PORTS or not req.ports:
        return []
    ports = _set(sorted(set(req.ports)))
    rules = [
        f"meta nfproto ipv{s.address.version} fib daddr type local"
        f" meta l4proto {{ tcp, udp }} th dport {ports} dnat {_family(s)} to {s.address.ip}"
        for s in layout.sides
    ]
    return [_chain("prerouting", DSTNAT, rules), _chain("localnat", DSTNAT_LOCAL, rules)]


def _bridge_table(layout: Layout) -> str:
    """On the bridge: the job's port sends from its own addresses only, within its allowlist."""
    dev = f'"{layout.names.host_dev}"'
    rules = []
    for side in layout.sides:
        other = "fe80::/10, ::" if side.address.version == 6 else "0.0.0.0"  # noqa: S104 - DAD, DHCP
        own = f"{side.address.ip}, {other}"
        rules.append(f"iifname {dev} {_family(side)} saddr != {{ {own} }} counter drop")
    rules += _allow_rules(layout.request, f"iifname {dev}", bridge=True)
    chains = [_chain(hook, FILTER.format(hook), rules) for hook in ("forward", "input")]
    return _table(f"bridge {layout.names.table}", chains)


def host_table(layout: Layout) -> str:
    """``FAMILY NAME`` of the job's host-side table."""
    return f"{'bridge' if layout.bridge is not None else 'inet'} {layout.names.table}"


def make_host_table(layout: Layout) -> None:
    """The host-side table (recorded by the caller before this runs)."""
    table = host_table(layout)
    rules = host_rules(layout)
    try:  # a table of that name must not exist yet ...
        run_command(["nft", "-f", "-"], stdin=f"create table {table}\n{rules}")
    except PrivilegedError:  # ... else one transaction drops what a crashed run left
        fresh = f"table {table}\ndelete table {table}\n"
        run_command(["nft", "-f", "-"], stdin=fresh + rules)


def make_job_rules(layout: Layout, node: NodeJobNet) -> None:
    """nat and ports: the namespace's own ruleset, with its counters per class."""
    if counted_inside(layout):
        text = ruleset(layout.request, node.classes, layout.names.job_dev)
        run_command(inside(layout.names.netns, "nft", "-f", "-"), stdin=text)


class Background:
    """A call run in a thread meanwhile; :meth:`wait` re-raises what it raised."""

    def __init__(self, call: Callable[[], None]) -> None:
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(call,), name="privileged")
        self._thread.start()

    def _run(self, call: Callable[[], None]) -> None:
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - handed to wait()
            self._error = exc

    def wait(self) -> None:
        """Wait for the call, the forwarded signals held meanwhile: a signal must not end
        the wait (and start the removal) while the call may still make something."""
        with held():
            self._thread.join()
        if self._error is not None:
            raise self._error


def counted_inside(layout: Layout) -> bool:
    """Whether the namespace holds the per-class ruleset: its input chain admits only
    replies and listed ports, which is the policy of nat and ports alone."""
    return layout.request.policy in (Policy.NAT, Policy.PORTS)


def shape(layout: Layout) -> None:
    """tc on both ends: the job's egress on its eth0, its ingress on the host end."""
    rate = layout.request.rate_bps
    if rate is None:
        return
    shaping = Shaping(float(rate))
    n = layout.names
    for argv in tc_commands(shaping, Device(n.job_dev)):  # tc -n: in the job's namespace
        run_command([argv[0], "-n", n.netns, *argv[1:]])
    for argv in tc_commands(shaping, Device(n.host_dev, None, HOST_SIDE)):
        run_command(argv)


def make(
    request: JobPlan,
    node: NodeJobNet,
    tag: str,
    record: Record,
    named: Callable[[], None] | None = None,
) -> Layout:
    """Make the job's whole network; each object goes to record before it exists (the
    host-side table is loaded meanwhile, in a thread); ``named`` is called once every
    object has been recorded, while the rest is set up."""
    names = names_for(request.job_id)
    if request.policy not in node.policies:
        raise PrivilegedError(f"policy {request.policy.value} is not allowed on this node")
    if request.policy is Policy.PORTS:
        take_ports(request.ports, tag, record)
    sides = plan_sides(request, node, tag, record)
    check_node(sides, request)
    bridge = node.bridge if request.policy is Policy.BRIDGE else None
    layout = Layout(names, request, sides, bridge)
    record("nft", host_table(layout))
    table = Background(lambda: make_host_table(layout))
    try:
        make_links(names, sides, record)
        if named is not None:
            named()
        run_ip(address_commands(layout))
        make_job_rules(layout, node)
        shape(layout)
    finally:
        table.wait()
    return layout


def netns_processes(netns: str) -> list[int]:
    """Pids of the processes in a named namespace (not this one's)."""
    try:
        target = os.stat(f"/run/netns/{netns}")
    except OSError:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            info = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        if (info.st_dev, info.st_ino) == (target.st_dev, target.st_ino):
            found.append(int(entry))
    return found


def kill_netns_processes(netns: str, rounds: int = 50) -> None:
    """SIGKILL every process still in the namespace, until none is left."""
    for _ in range(rounds):
        pids = [p for p in netns_processes(netns) if p != os.getpid()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def remove(objects: Sequence[tuple[str, str]]) -> list[str]:
    """Remove what was made, newest first; the problems (empty: everything went)."""
    problems = []
    for kind, name in reversed(objects):
        if kind == "netns":
            kill_netns_processes(name)
            ok = _quiet(["ip", "netns", "del", name]) or not Path(f"/run/netns/{name}").exists()
        elif kind == "veth":
            ok = _quiet(["ip", "link", "del", name]) or not _quiet(["ip", "link", "show", name])
        elif kind == "nft":
            family, _, table = name.partition(" ")
            ok = _quiet(["nft", "delete", "table", family, table]) or not _table_exists(
                family, table
            )
        elif kind == "lease":
            ok = _drop_lease(*name.split(" ", 1))
        else:
            ok = False
        if not ok:
            problems.append(f"{kind} {name}")
    return problems


def _table_exists(family: str, table: str) -> bool:
    return _quiet(["nft", "list", "table", family, table])


def _drop_lease(path: str, tag: str) -> bool:
    """Remove a lease file if it is ours (holds tag, or nothing yet)."""
    try:
        if Path(path).read_text() in (tag, ""):
            os.unlink(path)
    except OSError as exc:
        return exc.errno == errno.ENOENT
    return True


def counters(layout: Layout) -> Counters | dict[str, int]:
    """The job's counters: per direction and class from the namespace's ruleset where it
    has one, else the totals of its veth."""
    if not counted_inside(layout):
        return veth_counters(layout)
    argv = ["nft", "-j", "list", "counters", "table", "inet", JOB_TABLE]
    output = run_command(inside(layout.names.netns, *argv))
    return counters_from_json(json.loads(output or "{}"))


def veth_counters(layout: Layout) -> dict[str, int]:
    """Bytes and packets the job sent and received, read on the host end of its veth."""
    output = run_command(["ip", "-j", "-s", "link", "show", "dev", layout.names.host_dev])
    stats = json.loads(output)[0]["stats64"]
    return {
        "bytes_sent": int(stats["rx"]["bytes"]),
        "packets_sent": int(stats["rx"]["packets"]),
        "bytes_received": int(stats["tx"]["bytes"]),
        "packets_received": int(stats["tx"]["packets"]),
    }
