"""``larkps ratelimit apply|show|clear``: per-job rate limits on a job's veth pair."""

from __future__ import annotations

import argparse

from larkps.apply.tc import (
    HOST_SIDE,
    JOB_SIDE,
    QDISCS,
    Device,
    Shaping,
    apply,
    as_text,
    check_interface,
    check_netns,
    clear,
    render_show,
    run,
    tc_commands,
)
from larkps.cli.commands.common import Subparsers, add_command, field_arg, flag_errors, rate_arg
from larkps.errors import UsageError
from larkps.units import format_rate

FLAGS = {  # the stage's field -> the flag that sets it
    "dev": "--dev",
    "netns": "--netns",
    "host_dev": "--host-dev",
    "host_netns": "--host-netns",
    "rate_bps": "--rate",
    "qdisc": "--qdisc",
    "mtu": "--mtu",
    "latency_ms": "--latency-ms",
}
EXAMPLE = "larkps ratelimit apply --netns job42 --dev veth-job --host-dev veth-h42 --rate 100Mbit"


def register(commands: Subparsers) -> None:
    group = add_command(
        commands,
        "ratelimit",
        _missing_action,
        "shape a job's network namespace to a rate with tc (apply, show, clear)",
        EXAMPLE,
    )
    actions = group.add_subparsers(dest="ratelimit_action", required=True, metavar="ACTION")
    sub = add_command(
        actions, "apply", cmd_apply, "limit the job's egress (and ingress with --host-dev)", EXAMPLE
    )
    _add_devices(sub)
    sub.add_argument("--rate", required=True, type=rate_arg, help="per-job rate, e.g. 100Mbit")
    sub.add_argument("--qdisc", choices=QDISCS, default="tbf", help="shaper (default tbf)")
    sub.add_argument("--mtu", type=int, default=1500, help="MTU of the veth pair (1500)")
    sub.add_argument("--latency-ms", type=int, default=50, help="tbf queueing bound, ms (50)")
    sub.add_argument("--dry-run", action="store_true", help="print the tc commands, run nothing")
    sub = add_command(
        actions,
        "show",
        cmd_show,
        "print the qdiscs and their counters on the job's veth pair",
        "larkps ratelimit show --netns job42 --dev veth-job --host-dev veth-h42",
    )
    _add_devices(sub)
    sub = add_command(
        actions,
        "clear",
        cmd_clear,
        "remove larkps's tbf/htb shaping from the job's veth pair",
        "larkps ratelimit clear --netns job42 --dev veth-job --host-dev veth-h42",
    )
    _add_devices(sub)


def _missing_action(args: argparse.Namespace) -> int:
    raise UsageError("ratelimit: name an action: apply, show or clear")


def _add_devices(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--netns", required=True, type=field_arg(check_netns, "netns"))
    sub.add_argument("--dev", required=True, type=field_arg(check_interface, "dev"))
    sub.add_argument("--host-dev", type=field_arg(check_interface, "host_dev"))
    sub.add_argument("--host-netns", type=field_arg(check_netns, "host_netns"))


def _devices(args: argparse.Namespace) -> list[Device]:
    with flag_errors(FLAGS):
        devices = [Device(args.dev, args.netns, JOB_SIDE)]
        if args.host_dev:
            devices.append(Device(args.host_dev, args.host_netns, HOST_SIDE))
    if args.host_netns and not args.host_dev:
        raise UsageError("--host-netns: only with --host-dev")
    return devices


def cmd_apply(args: argparse.Namespace) -> int:
    with flag_errors(FLAGS):
        shaping = Shaping(args.rate, args.qdisc, args.mtu, args.latency_ms)
    devices = _devices(args)
    if args.dry_run:
        for device in devices:
            for argv in tc_commands(shaping, device):
                print(as_text(argv))
        return 0
    for line in apply(shaping, devices):
        print(line)
    sides = " and ".join(f"{d.label} {d.dev}" for d in devices)
    print(f"# {sides}: {format_rate(args.rate)}, {args.qdisc}, burst {shaping.burst} bytes")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    for device in _devices(args):
        argv = render_show(device)
        print(f"# {device.label}: {as_text(argv)}")
        print(run(argv), end="")
    return 0


def cmd_clear(args: argparse.Namespace) -> int:
    for line in clear(_devices(args)):
        print(line)
    return 0
