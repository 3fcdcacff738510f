"""Privileged mode without the kernel: names, addresses, leases, rules text, trust checks.

The nft text is also checked by ``nft -c`` (nothing is loaded) when root has nft.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from larkps.config.jobnet import Mode, NodeJobNet, Policy
from larkps.jobnet import helper, helperconf, privileged
from larkps.jobnet.helperconf import HelperRefused
from larkps.jobnet.privileged import Layout, Side, names_for
from larkps.jobnet.request import JobPlan


def plan(policy: Policy, **extra: object) -> JobPlan:
    return JobPlan("12.3", "alice", Mode.PRIVILEGED, policy, **extra)  # type: ignore[arg-type]


def routed_layout(policy: Policy, **extra: object) -> Layout:
    sides = (
        Side(ipaddress.ip_interface("198.18.100.2/32"), privileged.GATEWAY4),
        Side(ipaddress.ip_interface("2001:db8:100::2/128"), privileged.GATEWAY6),
    )
    return Layout(names_for("12.3"), plan(policy, **extra), sides)


def bridge_layout(**extra: object) -> Layout:
    sides = (
        Side(ipaddress.ip_interface("198.18.100.2/24"), ipaddress.ip_address("198.18.100.1")),
        Side(ipaddress.ip_interface("2001:db8:100::2/64"), None),
    )
    return Layout(names_for("12.3"), plan(Policy.BRIDGE, **extra), sides, bridge="larkbr0")


def test_every_name_comes_from_the_job_id_alone():
    names = names_for("12.3")
    assert (names.netns, names.table, names.job_dev) == ("larkps-12-3", "larkps_12_3", "eth0")
    assert names.host_dev.startswith("lk") and len(names.host_dev) <= 15
    assert names_for("12.4").host_dev != names.host_dev


@pytest.mark.parametrize("bad", ["1.2; rm -rf /", "-1.0", "1.0\n", "1", "a.b", "1.2.3", ""])
def test_a_job_id_that_is_not_two_numbers_is_refused(bad: str):
    with pytest.raises(privileged.PrivilegedError):
        names_for(bad)


def test_the_jobs_mac_follows_its_address():
    assert privileged.job_mac(routed_layout(Policy.NAT).sides) == "02:4c:c6:12:64:02"
    six = (Side(ipaddress.ip_interface("2001:db8:100::1:2/128"), None),)
    assert privileged.job_mac(six) == "02:4c:00:01:00:02"


def test_routed_addresses_use_link_local_gateways_and_a_host_route():
    commands = privileged.address_commands(routed_layout(Policy.ROUTED))
    dev = names_for("12.3").host_dev
    job = ["ip", "-n", "larkps-12-3"]
    assert [*job, "addr", "add", "198.18.100.2/32", "dev", "eth0", "nodad"] in commands
    assert ["ip", "addr", "add", "169.254.1.1/32", "dev", dev, "nodad"] in commands
    assert ["ip", "route", "add", "198.18.100.2", "dev", dev] in commands
    assert ["ip", "route", "add", "2001:db8:100::2", "dev", dev] in commands
    assert [*job, "route", "add", "::/0", "via", "fe80::1", "dev", "eth0"] in commands
    up = commands.index(["ip", "link", "set", dev, "up"])
    assert up < commands.index(["ip", "route", "add", "198.18.100.2", "dev", dev])


def test_bridge_addresses_have_the_bridges_prefix_and_gateway():
    commands = privileged.address_commands(bridge_layout())
    dev = names_for("12.3").host_dev
    assert commands[0] == ["ip", "link", "set", dev, "master", "larkbr0"]
    assert [
        "ip",
        "-n",
        "larkps-12-3",
        "addr",
        "add",
        "198.18.100.2/24",
        "dev",
        "eth0",
        "nodad",
    ] in commands
    assert not any("169.254.1.1/32" in argv for argv in commands)
    default = ["ip", "-n", "larkps-12-3", "route", "add", "default", "via", "198.18.100.1"]
    assert [*default, "dev", "eth0"] in commands


def test_nat_masquerades_and_refuses_new_inbound():
    text = privileged.host_rules(routed_layout(Policy.NAT))
    dev = names_for("12.3").host_dev
    assert "table inet larkps_12_3 {" in text
    assert f'ip saddr 198.18.100.2 oifname != "{dev}" masquerade' in text
    assert f'oifname "{dev}" ct state established,related counter accept' in text
    assert f'oifname "{dev}" counter drop' in text
    assert "dnat" not in text


def test_ports_forwards_exactly_the_listed_ports():
    text = privileged.host_rules(routed_layout(Policy.PORTS, ports=(5000, 5001)))
    assert "th dport { 5000, 5001 } dnat ip to 198.18.100.2" in text
    assert "th dport { 5000, 5001 } dnat ip6 to 2001:db8:100::2" in text
    assert "ct status dnat counter accept" in text


def test_routed_accepts_inbound_and_stops_spoofing():
    text = privileged.host_rules(routed_layout(Policy.ROUTED))
    dev = names_for("12.3").host_dev
    assert f'oifname "{dev}" counter accept' in text and "masquerade" not in text
    assert f'iifname "{dev}" ip saddr != 198.18.100.2 counter drop' in text


def test_the_allowlist_drops_the_other_family_when_it_names_none():
    allow = (ipaddress.ip_network("198.18.2.0/24"),)
    text = privileged.host_rules(routed_layout(Policy.NAT, allow=allow))
    dev = names_for("12.3").host_dev
    assert f'iifname "{dev}" ip daddr != {{ 198.18.2.0/24 }} counter drop' in text
    assert f'iifname "{dev}" meta nfproto ipv6 counter drop' in text


def test_bridge_rules_live_in_a_bridge_table():
    allow = (ipaddress.ip_network("2001:db8::/32"),)
    text = privileged.host_rules(bridge_layout(allow=allow))
    assert text.startswith("table bridge larkps_12_3 {")
    assert "ip6 daddr != { 2001:db8::/32 } counter drop" in text


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("nft") is None, reason="nft -c needs root and nftables"
)
@pytest.mark.parametrize("policy", list(Policy))
@pytest.mark.parametrize("allow", ["198.18.0.0/15", "2001:db8::/32"])
def test_nft_accepts_every_table(policy: Policy, allow: str):
    extra: dict[str, object] = {"allow": (ipaddress.ip_network(allow),)}
    if policy is Policy.PORTS:
        extra["ports"] = (5000, 5002)
    layout = bridge_layout(**extra) if policy is Policy.BRIDGE else routed_layout(policy, **extra)
    done = subprocess.run(
        ["unshare", "-n", "nft", "-c", "-f", "-"],
        input=privileged.host_rules(layout),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_addresses_are_the_lowest_free_ones(tmp_path: Path):
    pool = ipaddress.ip_network("198.18.100.0/29")
    made: list[tuple[str, str]] = []
    tag = privileged.owner_tag(os.getpid())
    reserved = [ipaddress.ip_address("198.18.100.1")]
    got = [privileged.allocate(pool, reserved, tag, lambda *o: made.append(o), tmp_path)]
    got.append(privileged.allocate(pool, reserved, tag, lambda *o: made.append(o), tmp_path))
    assert [str(a) for a in got] == ["198.18.100.2", "198.18.100.3"]
    assert [kind for kind, _ in made] == ["lease", "lease"]
    assert privileged.remove(made) == [] and not list((tmp_path / "addr").iterdir())


def test_a_dead_holders_lease_is_taken_over_and_a_live_ones_is_not(tmp_path: Path):
    leases = tmp_path / "addr"
    leases.mkdir()
    (leases / "198.18.100.2").write_text("999999999 1")  # no such process
    (leases / "198.18.100.3").write_text(privileged.owner_tag(1))  # init: alive
    pool = ipaddress.ip_network("198.18.100.0/29")
    tag = privileged.owner_tag(os.getpid())
    got = [str(privileged.allocate(pool, [], tag, lambda *o: None, tmp_path)) for _ in range(3)]
    assert got == ["198.18.100.1", "198.18.100.2", "198.18.100.4"]


def test_removal_leaves_a_lease_another_job_holds(tmp_path: Path):
    path = tmp_path / "5000"
    path.write_text("1 2")
    assert privileged.remove([("lease", f"{path} 3 4")]) == []
    assert path.read_text() == "1 2"


def test_a_port_another_job_forwards_is_refused(tmp_path: Path):
    tag = privileged.owner_tag(os.getpid())
    privileged.take_ports([5000], privileged.owner_tag(1), lambda *o: None, tmp_path)
    with pytest.raises(privileged.PrivilegedError, match="5000"):
        privileged.take_ports([5001, 5000], tag, lambda *o: None, tmp_path)


def test_the_bridge_policy_needs_the_node_to_allow_it():
    node = NodeJobNet(mode=Mode.PRIVILEGED, policies=frozenset({Policy.NAT}))
    with pytest.raises(privileged.PrivilegedError, match="not allowed"):
        privileged.make(plan(Policy.BRIDGE), node, "1 2", lambda *o: None)


# --- the helper's trust checks ------------------------------------------------------


def test_the_helper_runs_only_through_sudo_for_an_ordinary_user():
    with pytest.raises(HelperRefused, match="sudo"):
        helper.caller_from_sudo({})
    with pytest.raises(HelperRefused, match="root"):
        helper.caller_from_sudo({"SUDO_UID": "0", "SUDO_GID": "0"})
    other = str(os.getuid() + 4242)
    with pytest.raises(HelperRefused, match="parent"):
        helper.caller_from_sudo({"SUDO_UID": other, "SUDO_GID": other})


def test_a_config_someone_but_root_can_change_is_refused(tmp_path: Path):
    config = tmp_path / "jobnet.toml"
    config.write_text("[jobnet]\n")
    with pytest.raises(HelperRefused, match="absolute"):
        helperconf.config_path({"LARKPS_JOBNET_CONFIG": "jobnet.toml"})
    if os.geteuid() != 0:
        with pytest.raises(HelperRefused, match="not owned by root"):
            helperconf.config_path({"LARKPS_JOBNET_CONFIG": str(config)})
        return
    config.chmod(0o664)
    with pytest.raises(HelperRefused, match="writable"):
        helperconf.config_path({"LARKPS_JOBNET_CONFIG": str(config)})
    config.chmod(0o644)
    os.chown(config, 1, 1)
    with pytest.raises(HelperRefused, match="not owned by root"):
        helperconf.config_path({"LARKPS_JOBNET_CONFIG": str(config)})
    os.chown(config, 0, 0)
    assert helperconf.config_path({"LARKPS_JOBNET_CONFIG": str(config)}) == str(config)
    (tmp_path / "sub").mkdir(mode=0o777)
    (tmp_path / "sub").chmod(0o777)  # a directory above it others may write to
    inner = tmp_path / "sub" / "jobnet.toml"
    inner.write_text("[jobnet]\n")
    with pytest.raises(HelperRefused, match="sub is writable by group or others"):
        helperconf.config_path({"LARKPS_JOBNET_CONFIG": str(inner)})
    with pytest.raises(HelperRefused, match="rootless"):
        helperconf.load_node(str(config))  # privileged mode is off


def test_the_job_ad_must_be_in_the_callers_scratch_directory(tmp_path: Path):
    caller = helper.Caller(os.getuid() + 4242, 1, (), "someone", os.getppid())
    env = {"_CONDOR_SCRATCH_DIR": str(tmp_path)}
    with pytest.raises(HelperRefused, match="scratch directory"):
        helper.check_scratch("/etc/shadow", env, caller)
    with pytest.raises(HelperRefused, match="not the caller's"):
        helper.check_scratch(str(tmp_path / ".job.ad"), env, caller)
    with pytest.raises(HelperRefused, match="not set"):
        helper.check_scratch(str(tmp_path / ".job.ad"), {}, caller)


def _allocate_in_a_child(leases: str, out: str, release: object) -> None:
    """In a fresh process: one address from the shared pool, written to ``out``; then
    live (holding the lease) until ``release`` is set."""
    pool = ipaddress.ip_network("198.18.60.0/24")
    tag = privileged.owner_tag(os.getpid())
    address = privileged.allocate(pool, [], tag, lambda *o: None, Path(leases))
    Path(out).write_text(str(address))
    release.wait(60)  # type: ignore[attr-defined]


def test_helpers_at_once_never_share_an_address(tmp_path: Path):
    import multiprocessing

    context = multiprocessing.get_context("fork")
    release = context.Event()
    outs = [tmp_path / f"got{index}" for index in range(12)]
    children = [
        context.Process(target=_allocate_in_a_child, args=(str(tmp_path), str(out), release))
        for out in outs
    ]
    for child in children:
        child.start()
    try:
        deadline = time.monotonic() + 60
        while not all(out.exists() for out in outs) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        release.set()
        for child in children:
            child.join(30)
    assert all(child.exitcode == 0 for child in children)
    got = [out.read_text() for out in outs]
    assert len(set(got)) == 12, sorted(got)


def test_the_helpers_start_loads_neither_classad2_nor_the_planning_modules():
    """What a job's start pays for in privileged mode with a builder: the helper's own
    imports (the rest loads only without a builder, or after the job)."""
    probe = (
        "import sys; before = set(sys.modules); import larkps.jobnet.helper;"
        " print('\\n'.join(sorted(set(sys.modules) - before)))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = set(done.stdout.split())
    assert "larkps.jobnet.helper" in loaded  # the probe saw the import
    heavy = {"classad2", "htcondor2", "larkps.jobnet.privileged", "larkps.jobnet.request",
             "larkps.config.jobnet", "larkps.jobnet.ledger", "sqlite3", "tomllib",
             "dataclasses", "typing", "pathlib", "ipaddress", "subprocess"}  # fmt: skip
    assert not heavy & loaded, heavy & loaded
