"""The rate limit, measured: two network namespaces, a veth pair and iperf3.

The "job" namespace holds one end of the veth pair, the "host" namespace the
other (standing in for the execute node). iperf3 measures TCP throughput without
a limit, with `larkps ratelimit apply` (both directions within +-10% of R) and
after `larkps ratelimit clear` (full rate back). Needs root and the Debian
packages iproute2 and iperf3; the namespaces are removed even when a check fails.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from larkps.cli.app import main

pytestmark = [pytest.mark.root, pytest.mark.slow]

RATE = 50e6  # bits/s, the limit under test
SECONDS = 4  # each iperf3 run (plus one omitted warm-up second)
TIMEOUT = 30.0  # seconds, for every subprocess


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create network namespaces and set tc qdiscs"
    for tool, package in (("ip", "iproute2"), ("tc", "iproute2"), ("iperf3", "iperf3")):
        if shutil.which(tool) is None:
            return (
                f"{tool} not installed (Debian package {package}, scripts/debian-test-packages.txt)"
            )
    return None


if (_reason := _missing()) is not None:
    pytest.skip(_reason, allow_module_level=True)


def sh(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert done.returncode == 0, f"{' '.join(argv)}: {done.stderr.strip()}"
    return done.stdout


@dataclass(frozen=True)
class Pair:
    job_ns: str
    host_ns: str
    job_dev: str
    host_dev: str
    server_ip: str


@pytest.fixture
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    """A fresh job/host namespace pair per test, removed whatever the test does."""
    tag = secrets.token_hex(3)
    net = f"198.18.{int(tag[:2], 16)}"
    made = Pair(f"larkps-job-{tag}", f"larkps-host-{tag}", f"lkj{tag}", f"lkh{tag}", f"{net}.2")
    created: list[str] = []

    def remove() -> None:
        for ns in created:
            argv = ["ip", "netns", "del", ns]
            subprocess.run(argv, capture_output=True, timeout=TIMEOUT, check=False)
        left = sh("ip", "netns", "list")
        assert made.job_ns not in left and made.host_ns not in left

    request.addfinalizer(remove)
    for ns in (made.job_ns, made.host_ns):
        sh("ip", "netns", "add", ns)
        created.append(ns)
    sh("ip", "link", "add", "name", made.job_dev, "netns", made.job_ns, "type", "veth",
       "peer", "name", made.host_dev, "netns", made.host_ns)  # fmt: skip
    ends = ((made.job_ns, made.job_dev, f"{net}.1"), (made.host_ns, made.host_dev, f"{net}.2"))
    for ns, dev, ip in ends:
        sh("ip", "-n", ns, "addr", "add", f"{ip}/30", "dev", dev)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "link", "set", dev, "up")
    yield made


def measure(pair: Pair, reverse: bool = False) -> float:
    """Bits/s the receiver saw over one bounded iperf3 run (reverse: host -> job)."""
    server = subprocess.Popen(
        ["ip", "netns", "exec", pair.host_ns, "iperf3", "-s", "-1", "-B", pair.server_ip],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        return _client(pair, reverse)
    finally:
        server.terminate()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)


def _client(pair: Pair, reverse: bool) -> float:
    argv = ["ip", "netns", "exec", pair.job_ns, "iperf3", "-c", pair.server_ip, "-J"]
    argv += ["-t", str(SECONDS), "-O", "1", "--connect-timeout", "1000"]
    argv += ["-R"] if reverse else []
    for _ in range(50):  # the server needs a moment to listen; bounded retries
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, check=False)
        report = json.loads(done.stdout or "{}")
        received = report.get("end", {}).get("sum_received", {}).get("bits_per_second")
        if done.returncode == 0 and received is not None:
            return float(received)
        if "refused" not in str(report.get("error", "")) + done.stderr:
            raise AssertionError(f"iperf3 failed: {report.get('error')} {done.stderr[-300:]}")
        time.sleep(0.1)
    raise AssertionError("iperf3 server never listened")


def ratelimit(pair: Pair, action: str, *extra: str) -> int:
    argv = ["ratelimit", action, "--netns", pair.job_ns, "--dev", pair.job_dev]
    argv += ["--host-dev", pair.host_dev, "--host-netns", pair.host_ns, *extra]
    return main(argv)


def test_tbf_limit_holds_both_ways_and_clears(pair: Pair, capsys: pytest.CaptureFixture[str]):
    unlimited = measure(pair)
    assert unlimited > 3 * RATE
    assert ratelimit(pair, "apply", "--rate", "50Mbit") == 0
    assert ratelimit(pair, "show") == 0
    shown = capsys.readouterr().out
    assert shown.count("qdisc tbf") == 2 and "rate 50Mbit" in shown
    egress, ingress = measure(pair), measure(pair, reverse=True)
    assert abs(egress - RATE) <= 0.1 * RATE, egress
    assert abs(ingress - RATE) <= 0.1 * RATE, ingress
    assert ratelimit(pair, "clear") == 0
    assert ratelimit(pair, "clear") == 0  # nothing left to clear is not an error
    assert "root qdisc noqueue, left alone" in capsys.readouterr().out
    assert measure(pair) > 3 * RATE


def test_htb_limit_holds(pair: Pair, capsys: pytest.CaptureFixture[str]):
    assert ratelimit(pair, "apply", "--rate", "6.25MB/s", "--qdisc", "htb") == 0
    egress = measure(pair)
    assert abs(egress - RATE) <= 0.1 * RATE, egress
    assert ratelimit(pair, "clear") == 0
    assert "qdisc del dev" in capsys.readouterr().out


def root_kind(ns: str, dev: str) -> str:
    shown = json.loads(sh("ip", "netns", "exec", ns, "tc", "-j", "qdisc", "show", "dev", dev))
    return next(str(q["kind"]) for q in shown if q.get("root"))


def test_apply_checks_both_ends_before_changing_anything(
    pair: Pair, capsys: pytest.CaptureFixture[str]
):
    before = root_kind(pair.job_ns, pair.job_dev), root_kind(pair.host_ns, pair.host_dev)
    argv = ["ratelimit", "apply", "--netns", pair.job_ns, "--dev", pair.job_dev]
    argv += ["--host-dev", "lkabsent0", "--host-netns", pair.host_ns, "--rate", "50Mbit"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"larkps: error: host side lkabsent0 in netns {pair.host_ns}: ")
    assert err.endswith("; nothing was changed\n") and err.count("\n") == 1
    after = root_kind(pair.job_ns, pair.job_dev), root_kind(pair.host_ns, pair.host_dev)
    assert after == before


def test_a_change_that_fails_half_way_is_undone(
    pair: Pair, tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    """The host side's tc fails after the job side was shaped (the real tc behind a
    wrapper that refuses that one command): the job side is left as it was."""
    real = shutil.which("tc")
    wrapper = tmp_path / "tc"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'case "$*" in *"qdisc replace dev {pair.host_dev} "*)\n'
        '  echo "RTNETLINK answers: No buffer space available" >&2; exit 2;;\nesac\n'
        f'exec {real} "$@"\n'
    )
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    before = root_kind(pair.job_ns, pair.job_dev)
    assert ratelimit(pair, "apply", "--rate", "50Mbit") == 1
    err = capsys.readouterr().err
    assert "RTNETLINK answers: No buffer space available" in err
    assert err.rstrip().endswith(
        f"; shaping removed again from job side {pair.job_dev} in netns {pair.job_ns}"
    )
    assert root_kind(pair.job_ns, pair.job_dev) == before != "tbf"
    assert root_kind(pair.host_ns, pair.host_dev) != "tbf"


def test_clear_checks_both_ends_first(pair: Pair, capsys: pytest.CaptureFixture[str]):
    assert ratelimit(pair, "apply", "--rate", "50Mbit") == 0
    argv = ["ratelimit", "clear", "--netns", pair.job_ns, "--dev", pair.job_dev]
    argv += ["--host-dev", "lkabsent0", "--host-netns", pair.host_ns]
    assert main(argv) == 1
    assert capsys.readouterr().err.rstrip().endswith("; nothing was changed")
    assert root_kind(pair.job_ns, pair.job_dev) == "tbf"  # still shaped: not half-cleared
    assert ratelimit(pair, "clear") == 0
    assert root_kind(pair.job_ns, pair.job_dev) != "tbf"
