"""Privileged mode in the real mini pool: jobs submitted as usual run through the
shipped snippet's privileged wrapper line, sudo with the shipped rule, the helper,
and the builder started as its shipped unit's ExecStart says (only paths put in).

The pool runs in a private mount namespace holding a tmpfs on /run (the builder's
socket and the named network namespaces live there) and the test's sudoers file
(the shipped rule for the pool's job user) bind-mounted over /etc/sudoers; the
machine's own files are never changed. The builder is started in that namespace
before the pool. Jobs ask for the ``bridge`` policy on a bridge the test makes in
the host's network namespace (bridged jobs need no forwarding on the host) and run
iperf3 against a server on the bridge's own address.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import classad2
import pytest
from minipool import (
    Install,
    Pool,
    chirp_tool,
    minipool,
    require_root_and,
    service_settings,
    shipped,
    wait_until,
    world_dir,
)

from larkps.jobnet.ledger import ledger_files, read_runs

SNIPPET = "config/condor/50-larkps-jobnet.conf"
BUILDER_UNIT = "config/systemd/larkps-jobnet-builder.service"
SUDOERS = "config/condor/larkps-jobnet.sudoers"
PRIVILEGED_LINE = "#USER_JOB_WRAPPER = /opt/larkps/venv/bin/larkps-job-wrap-privileged"
BRIDGE = "lkpoolbr0"
BRIDGE4 = "198.18.251.1"
POOL4 = "198.18.251.128/25"
IPERF_PORT = 5301
RATE_MBPS = 40
PREFIX = "larkps-jobnet: "

pytestmark = pytest.mark.root


def _require_tools() -> None:
    require_root_and(
        ("sudo", "iperf3", "unshare", "ip", "nft", "tc"), "sudo, the builder and the job's bridge"
    )


@dataclass(frozen=True)
class Node:
    pool: Pool
    install: Install
    etc: Path
    ledger: Path
    builder_pid: int

    def in_mounts(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """argv in the pool's mount namespace (its /run)."""
        return subprocess.run(
            ["nsenter", "-t", str(self.builder_pid), "-m", "--", *argv],
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip

    def leftovers(self) -> list[str]:
        found = [f"netns {n}" for n in self.in_mounts("ip", "netns", "list").stdout.split()
                 if n.startswith("larkps-")]  # fmt: skip
        links = json.loads(subprocess.run(["ip", "-j", "link", "show"], capture_output=True,
                                          text=True, check=True).stdout)  # fmt: skip
        found += [f"link {k['ifname']}" for k in links if k["ifname"].startswith("lk")
                  and k["ifname"] != BRIDGE]  # fmt: skip
        tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True,
                                check=True).stdout.splitlines()  # fmt: skip
        found += [t for t in tables if "larkps_" in t]
        helpers = subprocess.run(["pgrep", "-f", "-a", "larkps-jobnet-helper"],
                                 capture_output=True, text=True).stdout  # fmt: skip
        return found + [f"helper {h}" for h in helpers.splitlines() if h.strip()]


def node_config(ledger: Path) -> str:
    return f"""[jobnet]
mode = "privileged"
policies = ["bridge"]
default_policy = "bridge"
max_rate = "1Gbit"
bridge = "{BRIDGE}"
pool4 = "{POOL4}"
ledger = "{ledger}"
"""


@pytest.fixture(scope="module")
def bridge() -> Iterator[None]:
    """The node's bridge, with an iperf3 server on its own address."""
    _require_tools()
    subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)
    for argv in (["link", "add", BRIDGE, "type", "bridge"],
                 ["addr", "add", f"{BRIDGE4}/24", "dev", BRIDGE],
                 ["link", "set", BRIDGE, "up"]):  # fmt: skip
        subprocess.run(["ip", *argv], check=True, capture_output=True)
    server = subprocess.Popen(
        ["iperf3", "-s", "-B", BRIDGE4, "-p", str(IPERF_PORT)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield
    finally:
        server.terminate()
        server.wait()
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)


def builder_argv(install: Install, config: Path) -> list[str]:
    """The shipped unit's ExecStart, with this install and config."""
    paths = {"/opt/larkps/venv": str(install.venv), "/etc/larkps/jobnet.toml": str(config)}
    (exec_start,) = service_settings(shipped(BUILDER_UNIT, paths))["ExecStart"]
    return shlex.split(exec_start)


def launcher(sudoers: Path, pidfile: Path, log: Path, builder: list[str]) -> list[str]:
    """Private mounts (a tmpfs /run, the sudoers file), the builder started in them, then
    the pool's start command."""
    start_builder = (
        f"setsid sh -c 'echo $$ > {shlex.quote(str(pidfile))}; exec \"$@\"' builder"
        f" {shlex.join(builder)} >> {shlex.quote(str(log))} 2>&1 < /dev/null &"
    )
    script = "\n".join([
        "set -e",
        "mount -t tmpfs -o mode=755 larkps-test-run /run",
        f"mount --bind {shlex.quote(str(sudoers))} /etc/sudoers",
        "mkdir -m 0700 /run/larkps-jobnet-builder",
        start_builder,
        'exec "$@"',
    ])  # fmt: skip
    return ["unshare", "-m", "--propagation", "private", "--", "sh", "-c", script, "sh"]


@pytest.fixture(scope="module")
def node(larkps_install: Install, bridge: None) -> Iterator[Node]:
    wrapper = larkps_install.venv / "bin" / "larkps-job-wrap-privileged"
    helper = larkps_install.venv / "bin" / "larkps-jobnet-helper"
    if not wrapper.exists():
        pytest.skip("larkps-job-wrap-privileged is not installed by this checkout")
    etc = world_dir("larkps-etc-")
    config, ledger = etc / "jobnet.toml", etc / "ledger" / "ledger.sqlite"
    config.write_text(node_config(ledger))
    config.chmod(0o644)
    rule = shipped(SUDOERS, {"/opt/larkps/venv/bin/larkps-jobnet-helper": str(helper),
                             "%larkps-jobs": "minipool"})  # fmt: skip
    sudoers = etc / "sudoers"
    sudoers.write_text("Defaults env_reset\nroot ALL=(ALL:ALL) ALL\n" + rule)
    sudoers.chmod(0o440)
    pidfile, log = etc / "builder.pid", etc / "builder.log"
    snippet = shipped(SNIPPET, {"/opt/larkps/venv": str(larkps_install.venv)})
    assert PRIVILEGED_LINE.replace("/opt/larkps/venv", str(larkps_install.venv)) in snippet
    snippet = snippet.replace("#USER_JOB_WRAPPER", "USER_JOB_WRAPPER")  # as the admin does
    chirp = chirp_tool(larkps_install)
    extra = snippet + f'\nSTARTER_JOB_ENVIRONMENT = "LARKPS_CONDOR_CHIRP={chirp}"\n'
    start = launcher(sudoers, pidfile, log, builder_argv(larkps_install, config))
    builder_pid = 0
    try:
        with minipool(extra_config=extra, launcher=start) as pool:
            wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 30, "builder")
            builder_pid = int(pidfile.read_text())
            found = Node(pool, larkps_install, etc, ledger, builder_pid)
            wait_until(lambda: _listening(found), 60, "the builder's socket")
            yield found
    finally:
        if builder_pid:
            with_pid = Path(f"/proc/{builder_pid}")
            if with_pid.exists():
                os.kill(builder_pid, signal.SIGTERM)
                wait_until(lambda: not with_pid.exists(), 30, "the builder's end")
        print((etc / "builder.log").read_text()[-3000:] if log.exists() else "no builder log")
        shutil.rmtree(etc, ignore_errors=True)


def _listening(node: Node) -> bool:
    done = subprocess.run(
        ["nsenter", "-t", str(node.builder_pid), "-m", "--", "test", "-S",
         "/run/larkps-jobnet-builder/builder.sock"], capture_output=True,
    )  # fmt: skip
    return done.returncode == 0


@dataclass(frozen=True)
class Finished:
    ad: classad2.ClassAd
    out: str
    said: list[str]


def run_job(node: Node, name: str, script: str, *attributes: str) -> Finished:
    directory = node.pool.job_dir(f"priv-{name}")
    quoted = script.replace('"', '""').replace("'", "''")
    text = "\n".join(["universe = vanilla", "executable = /bin/sh",
                      f"arguments = \"-c '{quoted}'\"", "output = out", "error = err",
                      "log = log", *[f"+{line}" for line in attributes], "queue"])  # fmt: skip
    node.pool.job_file(directory, "job.sub", text + "\n")
    done = node.pool.as_job_user("condor_submit", "-terse", "job.sub", cwd=directory)
    cluster = int(done.stdout.split(".")[0])
    ad = wait_until(lambda: _history(node.pool, cluster), 240, f"job {cluster} {name}")
    assert isinstance(ad, classad2.ClassAd)
    err = (directory / "err").read_text().splitlines()
    said = [line[len(PREFIX) :] for line in err if line.startswith(PREFIX)]
    return Finished(ad, (directory / "out").read_text(), said)


def _history(pool: Pool, cluster: int) -> classad2.ClassAd | None:
    out = pool.run("condor_history", "-long", str(cluster), check=False).stdout
    ads = list(classad2.parseAds(out, classad2.ParserType.Old)) if out.strip() else []
    return ads[0] if ads else None


def test_the_starter_runs_the_privileged_wrapper(node: Node):
    wrapper = str(node.install.venv / "bin" / "larkps-job-wrap-privileged")
    assert node.pool.run("condor_config_val", "USER_JOB_WRAPPER").stdout.strip() == wrapper


def test_a_job_runs_on_the_bridge_with_its_rate_and_its_bytes_reach_its_ad(node: Node):
    script = (
        "echo @@addr; ip -j -4 addr show dev eth0; echo @@qdisc; tc -j qdisc show dev eth0;"
        f" echo @@iperf3; iperf3 -c {BRIDGE4} -p {IPERF_PORT} -t 3 -J; exit 3"
    )
    done = run_job(node, "iperf", script, f"LarkNetworkRateLimit = {RATE_MBPS}")
    assert done.ad.get("ExitCode") == 3, done.said
    assert not any("itself" in line for line in done.said), done.said  # the builder built it
    parts = dict(part.split("\n", 1) for part in done.out.split("@@")[1:])
    addr, qdisc, report = (json.loads(parts[key]) for key in ("addr", "qdisc", "iperf3"))
    local = addr[0]["addr_info"][0]["local"]
    assert local.startswith("198.18.251.") and int(local.rsplit(".", 1)[1]) > 128, local
    assert qdisc[0]["kind"] == "tbf" and qdisc[0]["options"]["rate"] == RATE_MBPS * 10**6 // 8
    rate = report["end"]["sum_received"]["bits_per_second"]
    assert abs(rate / (RATE_MBPS * 1e6) - 1) <= 0.10, rate
    # What the server got (iperf3's sender also counts what was still queued when the
    # test stopped), counted on the veth with every header below it (TCP, IP, Ethernet).
    received = report["end"]["sum_received"]["bytes"]
    counted = int(done.ad["LarkNetworkBytesSent"])
    assert received <= counted <= 1.06 * received, (received, counted)
    assert done.ad["LarkNetworkPolicy"] == "bridge"
    assert float(done.ad["LarkNetworkRateLimitMbps"]) == RATE_MBPS
    job_id = f"{done.ad['ClusterId']}.{done.ad['ProcId']}"
    runs = [r for f in ledger_files(node.ledger) for r in read_runs(f) if r.job_id == job_id]
    assert len(runs) == 1 and runs[0].exit_status == 3 and runs[0].policy == "bridge", runs
    out = sum(c.bytes for c in runs[0].counters if c.direction == "out")
    assert out == counted  # the builder's ledger row (root's) and the job ad agree
    wait_until(lambda: node.leftovers() == [], 30, f"nothing left: {node.leftovers()}")


def test_a_job_removed_while_it_runs_leaves_nothing(node: Node):
    directory = node.pool.job_dir("priv-rm")
    node.pool.job_file(directory, "job.sub", "universe = vanilla\nexecutable = /bin/sleep\n"
                       "arguments = 300\nlog = log\nqueue\n")  # fmt: skip
    cluster = int(node.pool.as_job_user("condor_submit", "-terse", "job.sub",
                                        cwd=directory).stdout.split(".")[0])  # fmt: skip
    wait_until(lambda: any(x.startswith("netns") for x in node.leftovers()), 240, "the job's netns")
    time.sleep(1)
    node.pool.as_job_user("condor_rm", str(cluster), cwd=directory)
    wait_until(lambda: node.leftovers() == [], 60, f"nothing left: {node.leftovers()}")
