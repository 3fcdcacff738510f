"""Per-job rate limits on a job's veth pair, rendered as exact ``tc`` commands and applied.

Egress from the job is shaped on the job-side end, inside the job's network
namespace (``ip netns exec NS tc ...``); ingress to the job is shaped on the
host-side end, whose egress is the job's ingress. Commands run as argument
lists, never through a shell, and every name is checked against a strict
pattern before anything runs. Formula for the bucket size: docs/throttling.md.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from larkps.errors import FieldError, LarkpsError

IFACE_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
NETNS_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
QDISCS = ("tbf", "htb")
TIMER_HZ = 100  # the slowest kernel timer larkps sizes the bucket for
LINK_HEADER = 14  # Ethernet header bytes on top of the MTU
MIN_RATE = 8e3  # bits/s
MAX_RATE = 1e12  # bits/s
COMMAND_TIMEOUT = 10.0  # seconds, per tc/ip call


class CommandFailed(LarkpsError):
    """A tc or ip command failed or could not run."""


def check_interface(name: str, field: str = "dev") -> str:
    """A Linux interface name: 1-15 of [A-Za-z0-9_.-], not '.' or '..', no leading '-'."""
    if not IFACE_PATTERN.match(name) or name in (".", "..") or name.startswith("-"):
        raise FieldError(
            field,
            "expected an interface name of 1-15 letters, digits, '_', '.' or '-'"
            f" (not starting with '-'), got {name!r}",
        )
    return name


def check_netns(name: str, field: str = "netns") -> str:
    """A network namespace name: a letter, digit or '_' then up to 63 of [A-Za-z0-9_.-]."""
    if not NETNS_PATTERN.match(name):
        raise FieldError(
            field,
            "expected a namespace name of letters, digits, '_', '.' or '-'"
            f" (not starting with '.' or '-'), got {name!r}",
        )
    return name


def check_rate(rate_bps: float, field: str = "rate_bps") -> float:
    if not (math.isfinite(rate_bps) and MIN_RATE <= rate_bps <= MAX_RATE):
        raise FieldError(field, f"expected a rate between 8kbit and 1Tbit, got {rate_bps!r}")
    return rate_bps


def burst_bytes(rate_bps: float, mtu: int = 1500) -> int:
    """Token bucket size: max(ceil(rate / 8 / HZ), MTU + link header), in bytes.

    The bucket must hold one timer tick's worth of data at the rate (rate/HZ)
    or the shaper cannot reach the rate, and at least one full frame or no
    frame ever fits.
    """
    return max(math.ceil(rate_bps / 8.0 / TIMER_HZ), mtu + LINK_HEADER)


@dataclass(frozen=True, slots=True)
class Shaping:
    """One rate limit: qdisc kind, rate, frame size and queueing delay bound."""

    rate_bps: float
    qdisc: str = "tbf"
    mtu: int = 1500
    latency_ms: int = 50

    def __post_init__(self) -> None:
        check_rate(self.rate_bps)
        if self.qdisc not in QDISCS:
            raise FieldError("qdisc", f"expected one of {', '.join(QDISCS)}, got {self.qdisc!r}")
        if not 576 <= self.mtu <= 65535:
            raise FieldError("mtu", f"expected 576..65535, got {self.mtu}")
        if not 1 <= self.latency_ms <= 10000:
            raise FieldError("latency_ms", f"expected 1..10000, got {self.latency_ms}")

    @property
    def burst(self) -> int:
        return burst_bytes(self.rate_bps, self.mtu)


JOB_SIDE, HOST_SIDE = "job side", "host side"
DEVICE_FIELDS = {JOB_SIDE: ("dev", "netns"), HOST_SIDE: ("host_dev", "host_netns")}


@dataclass(frozen=True, slots=True)
class Device:
    """An interface and the namespace it lives in (None: the namespace larkps runs in)."""

    dev: str
    netns: str | None = None
    label: str = JOB_SIDE

    def __post_init__(self) -> None:
        dev_field, netns_field = DEVICE_FIELDS.get(self.label, ("dev", "netns"))
        check_interface(self.dev, dev_field)
        if self.netns is not None:
            check_netns(self.netns, netns_field)

    @property
    def where(self) -> str:
        """``job side veth-job in netns job42``, for messages."""
        return f"{self.label} {self.dev}" + (f" in netns {self.netns}" if self.netns else "")

    def tc(self, *words: str) -> list[str]:
        """argv of ``tc words...`` on this device's namespace."""
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        return [*prefix, "tc", *words]


def tc_commands(shaping: Shaping, device: Device) -> list[list[str]]:
    """The exact tc commands that shape `device`'s egress to shaping.rate_bps."""
    rate, burst, dev = f"{round(shaping.rate_bps)}bit", str(shaping.burst), device.dev
    if shaping.qdisc == "tbf":
        shape = ["rate", rate, "burst", burst, "latency", f"{shaping.latency_ms}ms"]
        return [device.tc("qdisc", "replace", "dev", dev, "root", "tbf", *shape)]
    shape = ["rate", rate, "ceil", rate, "burst", burst, "cburst", burst]
    return [
        device.tc("qdisc", "replace", "dev", dev, "root", "handle", "1:", "htb", "default", "1"),
        device.tc("class", "replace", "dev", dev, "parent", "1:", "classid", "1:1", "htb", *shape),
    ]


def render_clear(device: Device) -> list[str]:
    return device.tc("qdisc", "del", "dev", device.dev, "root")


def render_show(device: Device) -> list[str]:
    return device.tc("-s", "qdisc", "show", "dev", device.dev)


def as_text(argv: Sequence[str]) -> str:
    """How a command reads in documentation and dry runs."""
    return shlex.join(argv)


def run(
    argv: Sequence[str],
    timeout: float = COMMAND_TIMEOUT,
    stdin: str | None = None,
    search: str | None = None,
) -> str:
    """Run one command (an argument list, no shell); its stdout, or CommandFailed.

    ``search``: the PATH the program is looked up in, and the command's whole
    environment (``PATH`` and ``LC_ALL=C``) instead of this process's."""
    program = shutil.which(argv[0], path=search)
    if program is None:
        where = f" in {search}" if search else ""
        raise CommandFailed(f"{argv[0]} not found{where} (Debian package iproute2)")
    env = None if search is None else {"PATH": search, "LC_ALL": "C"}
    try:
        done = subprocess.run(  # noqa: S603 - argument list of checked names and numbers
            [program, *argv[1:]],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=env,
        )
    except subprocess.TimeoutExpired:
        raise CommandFailed(f"{as_text(argv)}: no answer within {timeout:g}s") from None
    except OSError as exc:
        raise CommandFailed(f"{as_text(argv)}: {exc.strerror}") from None
    if done.returncode != 0:
        problem = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[0]
        raise CommandFailed(f"{as_text(argv)}: {problem}")
    return done.stdout


def check_devices(devices: list[Device]) -> dict[Device, str]:
    """Each device's root qdisc kind; CommandFailed naming the end (side, namespace,
    interface) that is missing or cannot be read. Changes nothing."""
    found = {}
    for device in devices:
        try:
            found[device] = root_qdisc(device)
        except CommandFailed as exc:
            raise CommandFailed(f"{device.where}: {exc}; nothing was changed") from None
    return found


def apply(shaping: Shaping, devices: list[Device]) -> list[str]:
    """Shape every device, all or none; returns the commands run, as text.

    Both ends are checked before anything changes (:func:`check_devices`). Should a
    command still fail, the shaping already set is removed again (the kernel's
    default qdisc comes back) and the error says so.
    """
    check_devices(devices)
    done: list[str] = []
    touched: list[Device] = []
    for device in devices:
        for argv in tc_commands(shaping, device):
            try:
                run(argv)
            except CommandFailed as exc:  # a failed replace leaves its device as it was
                raise CommandFailed(f"{exc}; {_undo(touched)}") from None
            if device not in touched:
                touched.append(device)
            done.append(as_text(argv))
    return done


def _undo(devices: list[Device]) -> str:
    """Remove the root qdisc larkps set on each device; say what was undone."""
    undone, stuck = [], []
    for device in devices:
        try:
            if root_qdisc(device) in QDISCS:
                run(render_clear(device))
            undone.append(device.where)
        except CommandFailed:
            stuck.append(device.where)
    text = f"shaping removed again from {', '.join(undone)}" if undone else "nothing was changed"
    if stuck:
        text += f"; could not undo on {', '.join(stuck)}: check with `larkps ratelimit show`"
    return text


def root_qdisc(device: Device) -> str:
    """The kind of the device's root qdisc ("noqueue", "tbf", "htb", ...)."""
    output = run(device.tc("-j", "qdisc", "show", "dev", device.dev, "root"))
    try:
        entries = json.loads(output or "[]")
    except json.JSONDecodeError:
        raise CommandFailed(f"tc -j qdisc show dev {device.dev}: not JSON") from None
    roots = [e for e in entries if isinstance(e, dict) and e.get("root")]
    return str(roots[0].get("kind", "")) if roots else ""


def clear(devices: list[Device]) -> list[str]:
    """Remove larkps's shaping (a root tbf or htb) from each device; other qdiscs stay.
    Both ends are checked first, so a missing one leaves the other as it was."""
    done = []
    for device, kind in check_devices(devices).items():
        if kind in QDISCS:
            argv = render_clear(device)
            run(argv)
            done.append(as_text(argv))
        else:
            done.append(f"# {device.label} {device.dev}: root qdisc {kind or 'none'}, left alone")
    return done
