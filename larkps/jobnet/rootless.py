"""Rootless mode: what a job's own user and network namespaces get, as a Recipe.

Pure: the plan and the node's classes in, the commands out (the limit on the tap in
both directions: tbf on the tap's egress, the tap's ingress redirected to an ifb
device and shaped there; the per-namespace TCP buffers; the nft rules). The wrapper
or the planner (:mod:`larkps.jobnet.planner_service`) makes the recipe; the runner
(:mod:`larkps.jobnet.runner`) runs it. :func:`run_rootless` does both in one process.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from larkps.apply.tc import Device, Shaping, tc_commands
from larkps.config.jobnet import Network, Policy, UserNet
from larkps.errors import LarkpsError
from larkps.jobnet.request import JobPlan
from larkps.jobnet.rules import Counters, counters_from_json, ruleset
from larkps.jobnet.runner import IFB, MTU, TAP, Batch, Hooks, JobNetError, Recipe, run_recipe
from larkps.jobnet.supervise import say

if TYPE_CHECKING:
    from larkps.jobnet.supervise import Recorder


@dataclass(frozen=True, slots=True)
class Launch:
    """What a rootless run needs besides the plan."""

    argv: Sequence[str]
    user_net: UserNet = UserNet.PASTA
    classes: Mapping[str, Iterable[Network]] | None = None
    workdir: str | None = None  # where the slirp4netns API socket goes (default: a temp dir)


# ---------------------------------------------------------------------------------------------
# Commands, as argument lists (pure)


def receive_window(rate_bps: int) -> int:
    """The largest TCP receive buffer in the namespace (bytes): a quarter second at the
    rate, at least 256 KiB. Each direction's queue holds that much: a sender that keeps
    to the advertised window (inbound), or to TCP small queues (outbound, half of it),
    then never overflows it. Drops cost dear here: the user-mode stacks' TCP keeps no
    out-of-order data, so one lost 64 KiB frame is resent with all that followed."""
    return max(rate_bps // 32, 256 * 1024)


def shaping_commands(rate_bps: int | None) -> tuple[list[list[str]], list[list[str]]]:
    """ip and tc commands that limit the tap to rate_bps in both directions: those that
    can run before the tap exists (the ifb device and its queue), and those on the tap."""
    if rate_bps is None:
        return [], []
    queue_ms = math.ceil(receive_window(rate_bps) * 8 * 1000 / rate_bps) + 50
    shaping = Shaping(float(rate_bps), mtu=MTU, latency_ms=min(queue_ms, 10000))
    redirect = ["u32", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect"]
    redirect += ["dev", IFB]  # every packet
    early = [
        ["ip", "link", "add", IFB, "mtu", "65535", "type", "ifb"],
        ["ip", "link", "set", IFB, "up"],
        *tc_commands(shaping, Device(IFB)),
    ]
    on_tap = [
        *tc_commands(shaping, Device(TAP)),
        ["tc", "qdisc", "add", "dev", TAP, "handle", "ffff:", "ingress"],
        ["tc", "filter", "add", "dev", TAP, "parent", "ffff:", "protocol", "all", *redirect],
    ]
    return early, on_tap


def batches(commands: list[list[str]]) -> list[Batch]:
    """The commands as one ``ip -batch -`` / ``tc -batch -`` run per program, in order
    (argv, stdin text). Every word is this module's own or a checked number."""
    runs: list[Batch] = []
    for argv in commands:
        if runs and runs[-1][0][0] == argv[0]:
            runs[-1] = (runs[-1][0], runs[-1][1] + " ".join(argv[1:]) + "\n")
        else:
            runs.append(([argv[0], "-batch", "-"], " ".join(argv[1:]) + "\n"))
    return runs


def tcp_limits(rate_bps: int | None) -> dict[str, str]:
    """Per-namespace sysctls (under /proc/sys/net) that go with the limit."""
    if rate_bps is None:
        return {}
    window = receive_window(rate_bps)
    return {
        "ipv4/tcp_rmem": f"4096 131072 {window}",
        "ipv4/tcp_limit_output_bytes": str(window // 2),
    }


def recipe(plan: JobPlan, user_net: UserNet, classes: Mapping[str, Iterable[Network]]) -> Recipe:
    """What the runner does for ``plan`` (FieldError when the classes are wrong)."""
    early, on_tap = shaping_commands(plan.rate_bps)
    ports = plan.ports if plan.policy is Policy.PORTS else ()
    return Recipe(
        user_net=user_net.value,
        early=batches(early),
        sysctls=tcp_limits(plan.rate_bps),
        rules=ruleset(plan, classes, TAP),
        on_tap=batches(on_tap),
        ports=ports,
    )


def recorder_hooks(plan: JobPlan, recorder: Recorder) -> Hooks:
    """The runner's hooks that hand the run to ``recorder``."""

    def ended(exit_status: int, counters: bytes | None) -> None:
        recorder.end(plan, exit_status, read_counters(counters))

    return Hooks(lambda objects: recorder.start(plan, objects), ended)


def read_counters(printed: bytes | None) -> Counters:
    """The counters ``nft -j`` printed (empty, said on stderr, when there are none)."""
    if printed is None:
        return Counters.empty()
    try:
        return counters_from_json(json.loads(printed or b"{}"))
    except (ValueError, LarkpsError) as exc:
        say(f"counters not read: {exc}")
        return Counters.empty()


def run_rootless(plan: JobPlan, launch: Launch, recorder: Recorder) -> int:
    """Run the job of ``plan`` in its namespaces; its wait status.

    JobNetError (and nothing started any more) when the namespace could not be made.
    """
    try:
        made = recipe(plan, launch.user_net, launch.classes or {})
    except LarkpsError as exc:
        raise JobNetError(str(exc)) from None
    return run_recipe(made, launch.argv, recorder_hooks(plan, recorder), launch.workdir)
