"""Rootless mode's commands, as argument lists (no namespaces needed)."""

from __future__ import annotations

from larkps.config.jobnet import Mode, Policy, UserNet
from larkps.jobnet.request import JobPlan
from larkps.jobnet.rootless import (
    IFB,
    TAP,
    batches,
    receive_window,
    recipe,
    shaping_commands,
    tcp_limits,
)
from larkps.jobnet.runner import pasta_argv, slirp_argv


def plan(policy: Policy = Policy.NAT, **fields: object) -> JobPlan:
    return JobPlan("7.0", "alice", Mode.ROOTLESS, policy, **fields)  # type: ignore[arg-type]


def test_no_rate_no_shaping() -> None:
    assert shaping_commands(None) == ([], [])
    assert tcp_limits(None) == {}


def test_both_directions_are_shaped_with_a_queue_that_holds_the_window() -> None:
    early, on_tap = shaping_commands(40_000_000)
    assert ["ip", "link", "add", IFB, "mtu", "65535", "type", "ifb"] in early
    ifb = [c for c in early if c[:5] == ["tc", "qdisc", "replace", "dev", IFB]]
    tap = [c for c in on_tap if c[:5] == ["tc", "qdisc", "replace", "dev", TAP]]
    assert len(ifb) == len(tap) == 1
    for argv in (ifb[0], tap[0]):
        assert argv[argv.index("rate") + 1] == "40000000bit"
        # a quarter second at the rate (1.25 MB) fits in the queue: 250 ms + 50 ms
        assert argv[argv.index("latency") + 1] == "300ms"
    redirect = on_tap[-1]
    assert redirect[-6:] == ["action", "mirred", "egress", "redirect", "dev", IFB]
    assert receive_window(40_000_000) == 1_250_000
    assert receive_window(1_000_000) == 256 * 1024  # the floor
    assert tcp_limits(40_000_000) == {
        "ipv4/tcp_rmem": "4096 131072 1250000",
        "ipv4/tcp_limit_output_bytes": "625000",
    }


def test_a_slow_rate_caps_the_queue_at_ten_seconds() -> None:
    early, _ = shaping_commands(10_000)
    tbf = next(c for c in early if "tbf" in c)
    assert tbf[tbf.index("latency") + 1] == "10000ms"


def test_batches_group_consecutive_commands_of_one_program() -> None:
    early, on_tap = shaping_commands(40_000_000)
    runs = batches(early)
    assert [argv for argv, _ in runs] == [["ip", "-batch", "-"], ["tc", "-batch", "-"]]
    assert runs[0][1] == f"link add {IFB} mtu 65535 type ifb\nlink set {IFB} up\n"
    assert [argv for argv, _ in batches(on_tap)] == [["tc", "-batch", "-"]]
    assert batches(on_tap)[0][1].count("\n") == 3


def test_pasta_forwards_only_the_plans_ports_and_nothing_to_the_host() -> None:
    nat = pasta_argv(recipe(plan(), UserNet.PASTA, {}).ports, 123, "/tmp/p.pid")
    assert nat[nat.index("-t") + 1] == nat[nat.index("-u") + 1] == "none"
    assert nat[nat.index("-T") + 1] == nat[nat.index("-U") + 1] == "none"
    assert "--no-map-gw" in nat and "-f" in nat
    assert nat[-1] == "123"
    opened = recipe(plan(Policy.PORTS, ports=(5000, 5001)), UserNet.PASTA, {})
    ports = pasta_argv(opened.ports, 123, "/tmp/p.pid")
    assert ports[ports.index("-t") + 1] == ports[ports.index("-u") + 1] == "5000,5001"


def test_slirp4netns_has_no_host_loopback_and_exits_with_the_wrapper() -> None:
    argv = slirp_argv(123, 5, 6, "/tmp/s.sock")
    assert "--disable-host-loopback" in argv
    assert argv[argv.index("--exit-fd") + 1] == "6"
    assert argv[argv.index("--ready-fd") + 1] == "5"
    assert argv[-2:] == ["123", TAP]


def test_the_recipe_holds_the_shaping_the_limits_and_the_rules_of_the_plan() -> None:
    made = recipe(plan(rate_bps=40_000_000), UserNet.SLIRP4NETNS, {})
    early, on_tap = shaping_commands(40_000_000)
    assert made.early == batches(early) and made.on_tap == batches(on_tap)
    assert made.sysctls == tcp_limits(40_000_000)
    assert "table inet larkps_job" in made.rules and made.user_net == "slirp4netns"
    assert made.ports == ()
    bare = recipe(plan(), UserNet.PASTA, {})
    assert (bare.early, bare.on_tap, bare.sysctls) == ([], [], {})


ROUTE_HEAD = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
V6_DEFAULT = "0" * 32 + " 00 " + "0" * 32 + " 00 " + "fd" + "0" * 29 + "1 00000400 0 0 3 tap0\n"
V6_LINK = "fe80" + "0" * 28 + " 40 " + "0" * 32 + " 00 " + "0" * 32 + " 00000100 0 0 1 tap0\n"


def _net(tmp_path, route: str, ipv6_route: str):
    (tmp_path / "route").write_text(ROUTE_HEAD + route)
    (tmp_path / "ipv6_route").write_text(ipv6_route)
    return str(tmp_path)


def test_pasta_counts_as_configured_once_each_familys_default_route_is_on_the_tap(tmp_path):
    from larkps.jobnet.runner import _routed

    v4_default = "tap0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
    v4_subnet = "tap0\t0002A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
    other_default = "eth0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
    assert not _routed(_net(tmp_path, v4_subnet, V6_LINK), ("ipv4",))
    assert not _routed(_net(tmp_path, other_default, ""), ("ipv4",))
    assert _routed(_net(tmp_path, v4_subnet + v4_default, ""), ("ipv4",))
    assert not _routed(_net(tmp_path, v4_default, V6_LINK), ("ipv4", "ipv6"))
    assert _routed(_net(tmp_path, v4_default, V6_LINK + V6_DEFAULT), ("ipv4", "ipv6"))
    assert not _routed(str(tmp_path / "gone"), ("ipv4",))
