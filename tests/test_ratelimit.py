"""Per-job rate limits: the exact tc commands, the bucket size, and refusal of bad names.

The namespace/iperf3 measurement is in test_ratelimit_netns.py (root only).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from larkps.apply.tc import (
    HOST_SIDE,
    TIMER_HZ,
    Device,
    Shaping,
    as_text,
    burst_bytes,
    check_interface,
    check_netns,
    tc_commands,
)
from larkps.cli.app import main
from larkps.errors import FieldError, UsageError


def test_tbf_lines_for_both_ends(capsys: pytest.CaptureFixture[str]):
    argv = ["ratelimit", "apply", "--netns", "job42", "--dev", "veth-job"]
    argv += ["--host-dev", "veth-h42", "--rate", "50Mbit", "--dry-run"]
    assert main(argv) == 0
    burst = math.ceil(50e6 / 8 / TIMER_HZ)
    assert capsys.readouterr().out.splitlines() == [
        "ip netns exec job42 tc qdisc replace dev veth-job root tbf rate 50000000bit"
        f" burst {burst} latency 50ms",
        f"tc qdisc replace dev veth-h42 root tbf rate 50000000bit burst {burst} latency 50ms",
    ]


def test_htb_lines():
    lines = [as_text(a) for a in tc_commands(Shaping(1.5e9, "htb"), Device("vj", "ns1"))]
    burst = math.ceil(1.5e9 / 8 / TIMER_HZ)
    assert lines == [
        "ip netns exec ns1 tc qdisc replace dev vj root handle 1: htb default 1",
        "ip netns exec ns1 tc class replace dev vj parent 1: classid 1:1 htb"
        f" rate 1500000000bit ceil 1500000000bit burst {burst} cburst {burst}",
    ]


@pytest.mark.parametrize("rate", [8e3, 1e6, 12.5e6, 1e9, 100e9])
@pytest.mark.parametrize("mtu", [1500, 9000])
def test_burst_holds_a_tick_and_a_frame(rate: float, mtu: int):
    burst = burst_bytes(rate, mtu)
    assert burst >= rate / 8 / TIMER_HZ
    assert burst >= mtu + 14
    assert burst == max(math.ceil(rate / 8 / TIMER_HZ), mtu + 14)


HOSTILE = ["a b", "a;reboot", "$(id)", "`id`", "a\nb", "x|y", "..", ".", "", "a" * 16, "-rf"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_interface_names_are_refused(name: str):
    with pytest.raises(FieldError, match=r"^host_dev: ") as caught:
        check_interface(name, "host_dev")
    assert caught.value.field == "host_dev"
    with pytest.raises(FieldError, match=r"^dev: ") as caught:
        Device(name, "ns")
    assert caught.value.field == "dev"


@pytest.mark.parametrize("name", [*HOSTILE[:8], "", ".hidden", "-n", "a/b", "x" * 65])
def test_hostile_namespace_names_are_refused(name: str):
    with pytest.raises(FieldError, match=r"^netns: "):
        check_netns(name)
    with pytest.raises(FieldError, match=r"^host_netns: ") as caught:
        Device("veth0", name, HOST_SIDE)
    assert caught.value.field == "host_netns"


@pytest.mark.parametrize(
    ("flag", "name"), [("--dev", "a;b"), ("--host-dev", "x" * 16), ("--host-netns", "$(id)")]
)
def test_the_command_names_the_flag_of_a_hostile_name(
    flag: str, name: str, capsys: pytest.CaptureFixture[str]
):
    argv = ["ratelimit", "apply", "--netns", "job42", "--dev", "veth-job", "--rate", "1Mbit"]
    argv += ["--host-dev", "veth-h42", flag, name, "--dry-run"]
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: expected a" in err
    assert f" {flag.lstrip('-').replace('-', '_')}: " not in err  # not the stage's field name


@pytest.mark.parametrize("name", ["veth0", "lk-job.42", "a_b", "x" * 15])
def test_ordinary_interface_names_pass(name: str):
    assert check_interface(name) == name


@pytest.mark.parametrize("option", ["--netns", "--dev", "--host-dev", "--host-netns"])
@pytest.mark.parametrize("name", ["a b", "a;reboot", "$(touch /tmp/x)", "a\nb"])
@pytest.mark.parametrize("action", ["apply", "show", "clear"])
def test_cli_refuses_bad_names_before_running_anything(
    option: str,
    name: str,
    action: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    # With an empty PATH, running anything would fail with "not found" (exit 1);
    # a usage error (exit 2) naming the option proves nothing was attempted.
    monkeypatch.setenv("PATH", str(tmp_path))
    values = {"--netns": "job", "--dev": "vj", "--host-dev": "vh", "--host-netns": "host"}
    values[option] = name
    argv = ["ratelimit", action] + [w for pair in values.items() for w in pair]
    if action == "apply":
        argv += ["--rate", "10Mbit"]
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert f"argument {option}:" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_missing_tools_or_namespace_is_a_runtime_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setenv("PATH", str(tmp_path))
    argv = ["ratelimit", "apply", "--netns", "job", "--dev", "vj", "--rate", "10Mbit"]
    assert main(argv) == 1
    assert capsys.readouterr().err.strip() == (
        "larkps: error: job side vj in netns job: ip not found (Debian package iproute2);"
        " nothing was changed"
    )


def test_a_failing_command_names_itself(capsys: pytest.CaptureFixture[str]):
    missing = f"larkps-absent-{os.getpid()}"
    argv = ["ratelimit", "apply", "--netns", missing, "--dev", "vj", "--rate", "10Mbit"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    # the check of both ends fails first, before any qdisc is replaced
    assert err.startswith(
        f"larkps: error: job side vj in netns {missing}: ip netns exec {missing} tc -j qdisc"
        " show dev vj root: "
    )
    assert err.rstrip().endswith("; nothing was changed")
    assert err.count("\n") == 1


def test_bad_shaping_values_are_usage_errors_naming_the_field():
    for bad, field in [
        (lambda: Shaping(1e6, "cake"), "qdisc"),
        (lambda: Shaping(1.0), "rate_bps"),
        (lambda: Shaping(1e6, mtu=100), "mtu"),
        (lambda: Shaping(1e6, latency_ms=0), "latency_ms"),
    ]:
        with pytest.raises(FieldError, match=rf"^{field}: expected ") as caught:
            bad()
        assert isinstance(caught.value, UsageError) and caught.value.field == field


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--mtu", "100"], "--mtu: expected 576..65535, got 100"),
        (["--latency-ms", "0"], "--latency-ms: expected 1..10000, got 0"),
        (["--rate", "1bit"], "--rate: expected a rate between 8kbit and 1Tbit, got 1.0"),
    ],
)
def test_the_command_names_the_flag_of_a_bad_shaping_value(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
):
    argv = ["ratelimit", "apply", "--netns", "job42", "--dev", "veth-job", "--rate", "1Mbit"]
    assert main([*argv, *extra, "--dry-run"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.strip().endswith(message) and err.count("\n") == 1


@pytest.mark.parametrize("group", ["throttle", "ratelimit"])
def test_every_action_has_help_and_an_example(group: str):
    from larkps.cli.app import build_parser

    def choices(parser: object) -> dict[str, object]:
        actions = parser._actions  # type: ignore[attr-defined]
        return next(a for a in actions if a.choices and hasattr(a, "add_parser")).choices

    sub = choices(build_parser())[group]
    for name, action in choices(sub).items():
        assert action.description, name  # type: ignore[attr-defined]
        assert action.epilog.startswith(f"example: larkps {group} {name} "), name  # type: ignore[attr-defined]
