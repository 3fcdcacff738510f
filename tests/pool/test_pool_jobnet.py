"""Jobs of the real mini pool run through the shipped job wrapper, each in its own namespace.

The pool's starter runs ``config/condor/50-larkps-jobnet.conf`` as shipped, with
only the installed wrapper's path put in; jobs are submitted as usual by an
ordinary user, and run as that user. The node is in rootless mode: the wrapper
makes the job's user and network namespaces and attaches user-mode networking,
which needs ``/dev/net/tun`` usable by the job's user (mode 0666, the
distributions' default). This machine's node is 0600, so the whole pool runs in a
private mount namespace whose /dev/net holds a 0666 node; the machine's own is
never changed.

The peer the jobs talk to is a network namespace of the test, joined to the host
by a veth pair, running iperf3 servers. The accounting reaches the job ad through
the starter's Chirp proxy, which the snippet enables on the node alone (no
``want_io_proxy`` in the submit files here). The stripped HTCondor build has no
condor_chirp, so the test installs the pure-Python one (htchirp's
``condor_htchirp``, same command line) next to larkps and names it to the wrapper,
as it names the config: through STARTER_JOB_ENVIRONMENT, which a real node does
not need (/etc/larkps/larkps.toml, condor's libexec/condor_chirp).

Jobs are planned by the jobnet planner, started from the shipped systemd unit's
ExecStart line (as ``nobody``, standing in for its DynamicUser) with its socket in a
directory standing in for its RuntimeDirectory; STARTER_JOB_ENVIRONMENT names that
socket (a real node's wrapper finds /run/larkps-jobnet/planner.sock by itself).
Every job checks that the wrapper did not have to plan it itself, but one, which
runs with the planner stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
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

from larkps.units import parse_duration

SNIPPET = "config/condor/50-larkps-jobnet.conf"
PLANNER_UNIT = "config/systemd/larkps-jobnet-planner.service"
FALLBACK = "the wrapper plans the job itself"
INSTALLED = "/opt/larkps/venv/bin/larkps-job-wrap"
RATE_MBPS = 40
PEER_NS = "lkpool-peer"
HOST_LINK, PEER_LINK = "lkpool-h", "lkpool-p"
HOST4, PEER4 = "198.18.252.1", "198.18.252.2"
HOST6, PEER6 = "2001:db8:252::1", "2001:db8:252::2"
IPERF_PORT = 5201
PREFIX = "larkps-jobnet: "
#: Loopback, the tap, and the ifb device its inbound traffic is shaped on (every job
#: here has a rate: the node's max_rate at least), sorted: the ifb device and the
#: tap are made concurrently, so their order varies.
JOB_LINKS = sorted(["lo", "tap0", "ifb0"])
#: Makes /dev/net a private tmpfs with a 0666 tun node, then runs the rest of argv.
TUN_SCRIPT = (
    "mount -t tmpfs -o mode=755,size=16k larkps-test-tun /dev/net"
    ' && mknod -m 666 /dev/net/tun c 10 200 && exec "$@"'
)
TUN_LAUNCHER = ("unshare", "-m", "--propagation", "private", "--", "sh", "-c", TUN_SCRIPT, "sh")

pytestmark = pytest.mark.root


def _require_tools() -> None:
    require_root_and(
        ("pasta", "iperf3", "unshare", "ip", "nft", "tc"),
        "the pool runs jobs as another user, the peer needs a netns",
    )


@dataclass(frozen=True)
class Node:
    """The running pool, its node config and where the job user's files go."""

    pool: Pool
    install: Install
    config: Path
    ledger: Path
    jobs: Path
    planner: Planner

    def write_config(self, user_net: str = "pasta") -> None:
        """The node's larkps.toml; the wrapper reads it afresh for every job."""
        self.config.write_text(node_config(self.config.parent, self.ledger, user_net))
        self.config.chmod(0o644)


def node_config(etc: Path, ledger: Path, user_net: str) -> str:
    return f"""[larkps]
state_dir = "{etc / "state"}"

[[archives]]
name = "mesh"
kind = "embedded"

[jobnet]
mode = "rootless"
policies = ["nat", "ports"]
default_policy = "nat"
user_net = "{user_net}"
max_rate = "1Gbit"
ledger = "{ledger}"

[jobnet.classes]
same-site = ["198.18.252.0/30", "2001:db8:252::/64"]
"""


@pytest.fixture(scope="module")
def peer() -> Iterator[None]:
    """A netns joined to the host by a veth pair, with iperf3 servers on v4 and v6.

    Each direction of a job's test has its own server: one server can still be
    closing the first test when the second one asks.
    """
    _require_tools()
    inside = ["ip", "netns", "exec", PEER_NS]
    subprocess.run(["ip", "netns", "del", PEER_NS], capture_output=True)
    _ip("netns", "add", PEER_NS)
    servers: list[subprocess.Popen[bytes]] = []
    try:
        _ip("link", "add", HOST_LINK, "type", "veth", "peer", "name", PEER_LINK)
        _ip("link", "set", PEER_LINK, "netns", PEER_NS)
        _ip("addr", "add", f"{HOST4}/30", "dev", HOST_LINK)
        _ip("-6", "addr", "add", f"{HOST6}/64", "dev", HOST_LINK, "nodad")
        _ip("link", "set", HOST_LINK, "up")
        for argv in (
            ["ip", "addr", "add", f"{PEER4}/30", "dev", PEER_LINK],
            ["ip", "-6", "addr", "add", f"{PEER6}/64", "dev", PEER_LINK, "nodad"],
            ["ip", "link", "set", PEER_LINK, "up"],
            ["ip", "link", "set", "lo", "up"],
        ):
            subprocess.run([*inside, *argv], check=True, capture_output=True)
        ports = (IPERF_PORT, IPERF_PORT + 1)  # one server per direction of a job's test
        for address, port in ((a, p) for a in (PEER4, PEER6) for p in ports):
            servers.append(
                subprocess.Popen(
                    [*inside, "iperf3", "-s", "-B", address, "-p", str(port)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        yield
    finally:
        for server in servers:
            server.terminate()
            server.wait()
        subprocess.run(["ip", "netns", "del", PEER_NS], capture_output=True)
        subprocess.run(["ip", "link", "del", HOST_LINK], capture_output=True)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def node(larkps_install: Install, peer: None) -> Iterator[Node]:
    """The pool with the shipped snippet, in a mount namespace with a usable tun."""
    wrapper = larkps_install.venv / "bin" / "larkps-job-wrap"
    if not wrapper.exists():
        pytest.skip("larkps-job-wrap is not installed by this checkout")
    etc = world_dir("larkps-etc-")
    ledger_dir = world_dir("larkps-ledger-")
    ledger_dir.chmod(0o1777)  # rootless: the job's user writes its own rows
    config = etc / "larkps.toml"
    planner = Planner(larkps_install, config, world_dir("larkps-run-"))
    environment = f"LARKPS_CONFIG={config} LARKPS_CONDOR_CHIRP={chirp_tool(larkps_install)}"
    environment += f" LARKPS_PLANNER={planner.socket}"
    extra = shipped(SNIPPET, {INSTALLED: str(wrapper)})
    extra += f'\nSTARTER_JOB_ENVIRONMENT = "{environment}"\n'
    try:
        with minipool(extra_config=extra, launcher=TUN_LAUNCHER) as pool:
            jobs = pool.job_dir("jobnet-jobs")
            ledger = ledger_dir / "ledger.sqlite"
            found = Node(pool, larkps_install, config, ledger, jobs, planner)
            found.write_config()
            with planner.running():
                yield found
    finally:
        shutil.rmtree(etc, ignore_errors=True)
        shutil.rmtree(ledger_dir, ignore_errors=True)
        shutil.rmtree(planner.run_dir, ignore_errors=True)


class Planner:
    """``larkps jobnet planner`` as the shipped unit starts it: its ExecStart line, its
    UMask, a user of no privilege (its DynamicUser), ``run_dir`` for /run/larkps-jobnet."""

    def __init__(self, install: Install, config: Path, run_dir: Path) -> None:
        self.run_dir, self.socket = run_dir, run_dir / "planner.sock"
        paths = {
            "/opt/larkps/venv": str(install.venv),
            "/etc/larkps/larkps.toml": str(config),
            "/run/larkps-jobnet": str(run_dir),
        }
        self.service = service_settings(shipped(PLANNER_UNIT, paths))
        self.account = pwd.getpwnam("nobody")
        os.chown(run_dir, self.account.pw_uid, self.account.pw_gid)
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        (exec_start,) = self.service["ExecStart"]
        self.process = subprocess.Popen(
            shlex.split(exec_start),
            env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
            umask=int(self.service["UMask"][0], 8),
            user=self.account.pw_uid,
            group=self.account.pw_gid,
            extra_groups=[],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_until(self.socket.exists, 60, "the planner's socket")

    def stop(self) -> str:
        """SIGTERM, as systemd stops it; its stderr. It must end 0 within TimeoutStopSec."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        _, err = self.process.communicate(timeout=parse_duration(self.service["TimeoutStopSec"][0]))
        assert self.process.returncode == 0, err[-2000:]
        return err

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        self.start()
        try:
            yield
        finally:
            if self.process is not None and self.process.returncode is None:
                self.stop()


@dataclass(frozen=True)
class Finished:
    """A finished job: its history ad, stdout, and its own and the wrapper's stderr."""

    ad: classad2.ClassAd
    out: str
    err: list[str]  # the job's own lines
    said: list[str]  # the wrapper's lines, without the prefix


def run_job(
    node: Node,
    name: str,
    script: str,
    *attributes: str,
    timeout: float = 180,
    planned: bool = True,
) -> Finished:
    """Submit ``sh -c script`` as the job user with extra ``+Attr = value`` lines; its end.
    ``planned``: the planner planned it (the wrapper did not have to)."""
    directory = node.jobs / name
    directory.mkdir(mode=0o755)
    shutil.chown(directory, node.pool.job_user, node.pool.job_user)
    quoted = script.replace('"', '""').replace("'", "''")
    text = "\n".join(
        [
            "universe = vanilla",
            "executable = /bin/sh",
            f"arguments = \"-c '{quoted}'\"",
            "output = out",
            "error = err",
            "log = log",
            *[f"+{line}" for line in attributes],
            "queue",
        ]
    )
    node.pool.job_file(directory, "job.sub", text + "\n")
    done = node.pool.as_job_user("condor_submit", "-terse", "job.sub", cwd=directory)
    cluster = int(done.stdout.split(".")[0])
    ad = wait_until(lambda: _history(node.pool, cluster), timeout, f"job {cluster} {name}")
    assert isinstance(ad, classad2.ClassAd)
    err = (directory / "err").read_text().splitlines()
    done = Finished(
        ad=ad,
        out=(directory / "out").read_text(),
        err=[line for line in err if not line.startswith(PREFIX)],
        said=[line[len(PREFIX) :] for line in err if line.startswith(PREFIX)],
    )
    assert planned != any(FALLBACK in line for line in done.said), done.said
    return done


def _history(pool: Pool, cluster: int) -> classad2.ClassAd | None:
    out = pool.run("condor_history", "-long", str(cluster), check=False).stdout
    ads = list(classad2.parseAds(out, classad2.ParserType.Old)) if out.strip() else []
    return ads[0] if ads else None


def test_the_starter_runs_the_shipped_wrapper(node):
    wrapper = str(node.install.venv / "bin" / "larkps-job-wrap")
    assert node.pool.run("condor_config_val", "USER_JOB_WRAPPER").stdout.strip() == wrapper
    names = node.pool.run("condor_config_val", "JOB_EXECUTION_TRANSFORM_NAMES").stdout
    assert "LARKPS_JOBNET" in names.split()
    prefixes = node.pool.run("condor_config_val", "CHIRP_DELAYED_UPDATE_PREFIX").stdout
    assert [p.strip() for p in prefixes.split(",")] == ["Chirp*", "LarkNetwork*"]
    slots = node.pool.ads("-constraint", "MiniPool_Ready =?= true")
    assert [s.get("LarkNetworkNamespaces") for s in slots] == [True, True]


def test_the_planner_runs_as_its_unit_says_and_every_user_may_ask_it(node):
    assert node.planner.process is not None and node.planner.process.poll() is None
    assert os.stat(node.planner.socket).st_mode & 0o777 == 0o666
    status = Path(f"/proc/{node.planner.process.pid}/status").read_text()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert set(uid_line.split()[1:]) == {str(node.planner.account.pw_uid)}


def test_with_the_planner_stopped_a_job_runs_planned_by_the_wrapper(node):
    err = node.planner.stop()
    assert "answering on" in err and "Traceback" not in err
    assert not node.planner.socket.exists()
    try:
        done = run_job(node, "unplanned", "exit 5", planned=False)
    finally:
        node.planner.start()
    assert done.ad["ExitCode"] == 5
    assert any("rate" in line for line in done.said), done.said
    again = run_job(node, "planned-again", "exit 6")
    assert again.ad["ExitCode"] == 6


def test_a_job_sees_only_loopback_and_its_own_interface(node):
    done = run_job(node, "links", "ip -o link; id -u; grep CapEff /proc/self/status")
    assert done.ad["ExitCode"] == 0, done.err + done.said
    lines = done.out.splitlines()
    links = [line.split(": ")[1].split("@")[0] for line in lines if re.match(r"^\d+: ", line)]
    assert sorted(links) == JOB_LINKS, done.out
    uid = int(lines[len(links)])
    assert (
        uid == pwd.getpwnam(node.pool.job_user).pw_uid
    )  # its own uid inside, not the namespace's root
    assert lines[-1].split() == ["CapEff:", "0000000000000000"]


def test_slirp4netns_gives_the_same_view(node):
    node.write_config(user_net="slirp4netns")
    try:
        done = run_job(node, "links-slirp", "ip -o link")
    finally:
        node.write_config()
    assert done.ad["ExitCode"] == 0, done.err + done.said
    lines = done.out.splitlines()
    assert all(re.match(r"^\d+: ", line) for line in lines), f"not the job's output: {lines}"
    assert sorted(line.split(": ")[1] for line in lines) == JOB_LINKS, done.out


def test_exit_code_and_output_are_the_jobs_own(node):
    done = run_job(node, "exit3", "echo to-stdout; echo to-stderr >&2; exit 3")
    assert done.ad["ExitCode"] == 3
    assert done.ad["ExitBySignal"] is False
    assert done.out == "to-stdout\n"
    assert done.err == ["to-stderr"]
    assert done.said, "the wrapper wrote no rationale line"


def test_a_job_killed_by_a_signal_is_reported_so(node):
    done = run_job(node, "killed", "kill -9 $$")
    assert done.ad["ExitBySignal"] is True
    assert done.ad["ExitSignal"] == 9


def test_a_refused_job_does_not_run_and_exits_1_with_one_line(node):
    """25.13's starter ignores _CONDOR_WRAPPER_ERROR_FILE: the refusal is the job's stderr."""
    done = run_job(node, "refused", "echo ran", 'LarkNetworkPolicy = "bridge"')
    assert done.ad["ExitCode"] == 1
    assert done.out == ""
    assert len(done.said) == 1 and "LarkNetworkPolicy" in done.said[0], done.said
    assert "JobStatus" in done.ad and done.ad["JobStatus"] == 4  # completed, not held


def _iperf_script(address: str, seconds: int = 5) -> str:
    up, down = (
        f"/usr/bin/iperf3 -c {address} -p {p} -t {seconds} -J" for p in (IPERF_PORT, IPERF_PORT + 1)
    )
    return f"{up} > up.json && {down} -R > down.json"


@dataclass(frozen=True)
class IperfJob:
    """A job that ran iperf3 both ways at RATE_MBPS: its end and iperf3's two reports."""

    done: Finished
    up: dict[str, dict[str, float]]  # the job sends
    down: dict[str, dict[str, float]]  # the job receives (-R)


@pytest.fixture(scope="module")
def iperf_jobs(node: Node) -> Callable[[int, str], IperfJob]:
    """One iperf3 job per (address family, user-mode network), run when first asked for."""
    cache: dict[tuple[int, str], IperfJob] = {}

    def get(family: int, user_net: str) -> IperfJob:
        if (family, user_net) not in cache:
            cache[family, user_net] = _iperf_job(node, family, user_net)
        return cache[family, user_net]

    return get


def _iperf_job(node: Node, family: int, user_net: str) -> IperfJob:
    name = f"rate{family}-{user_net}"
    node.write_config(user_net=user_net)
    try:
        script = _iperf_script(PEER4 if family == 4 else PEER6)
        done = run_job(node, name, script, f"LarkNetworkRateLimit = {RATE_MBPS}")
    finally:
        node.write_config()
    assert done.ad["ExitCode"] == 0, done.err + done.said
    up, down = (_iperf_end(node.jobs / name / f) for f in ("up.json", "down.json"))
    return IperfJob(done, up, down)


NETS = pytest.mark.parametrize("user_net", ["pasta", "slirp4netns"])
FAMILIES = pytest.mark.parametrize("family", [4, 6])


@pytest.mark.slow
@NETS
@FAMILIES
def test_the_rate_holds_both_ways(iperf_jobs, family, user_net):
    job = iperf_jobs(family, user_net)
    rates = {
        way: report["sum_received"]["bits_per_second"] / 1e6
        for way, report in (("job sends", job.up), ("job receives", job.down))
    }
    assert rates == pytest.approx(dict.fromkeys(rates, RATE_MBPS), rel=0.10)
    assert any(f"rate {RATE_MBPS}Mbit/s from LarkNetworkRateLimit" in s for s in job.done.said)


@pytest.mark.slow
@NETS
@FAMILIES
def test_the_jobs_bytes_reach_its_job_ad_and_the_ledger(node, iperf_jobs, family, user_net):
    job = iperf_jobs(family, user_net)
    ad = job.done.ad
    assert ad.get("LarkNetworkPolicy") == "nat", job.done.said
    assert ad["LarkNetworkRateLimitMbps"] == pytest.approx(RATE_MBPS)
    # What the receivers got (iperf3's senders also count what was still queued when
    # the test stopped); headers and the other test's acknowledgements on top.
    sent, received = job.up["sum_received"]["bytes"], job.down["sum_received"]["bytes"]
    assert sent <= ad["LarkNetworkBytesSent"] <= 1.1 * sent + 0.1 * received
    assert received <= ad["LarkNetworkBytesReceived"] <= 1.1 * received + 0.1 * sent
    row = _ledger_row(node, f"{ad['ClusterId']}.{ad['ProcId']}")
    assert row["bytes_out"] == ad["LarkNetworkBytesSent"]
    assert row["bytes_in"] == ad["LarkNetworkBytesReceived"]


def _iperf_end(path: Path) -> dict[str, dict[str, float]]:
    report = json.loads(path.read_text())
    assert "error" not in report, f"{path.name}: {report['error']}"
    end: dict[str, dict[str, float]] = report["end"]
    return end


def _ledger_row(node: Node, job_id: str) -> dict[str, object]:
    out = node.pool.run(
        node.install.larkps, "jobnet", "accounting", "--config", node.config,
        "--by", "job", "--format", "json",
    ).stdout  # fmt: skip
    rows = [row for row in json.loads(out)["rows"] if row["key"] == job_id]
    assert len(rows) == 1, out
    return rows[0]


def test_condor_rm_of_a_running_job_leaves_nothing_behind(node):
    directory = node.jobs / "removed"
    directory.mkdir(mode=0o755)
    shutil.chown(directory, node.pool.job_user, node.pool.job_user)
    text = "executable = /bin/sleep\narguments = 600\nlog = log\nqueue\n"
    node.pool.job_file(directory, "job.sub", text)
    done = node.pool.as_job_user("condor_submit", "-terse", "job.sub", cwd=directory)
    cluster = done.stdout.split(".")[0]
    try:
        wait_until(lambda: "sleep" in _job_users_processes(node), 120, "the job's sleep")
        # pasta re-executes itself as passt.avx2 where the CPU has AVX2.
        assert any(name.startswith(("pasta", "passt")) for name in _job_users_processes(node))
    finally:
        node.pool.as_job_user("condor_rm", cluster, cwd=directory)
    wait_until(lambda: _history(node.pool, int(cluster)), 120, f"job {cluster} in the history")
    wait_until(lambda: not _job_users_processes(node), 30, "the job user's processes to end")


def test_nothing_of_the_jobs_is_left_running(node):
    run_job(node, "last", "true")
    assert _job_users_processes(node) == []


def _job_users_processes(node: Node) -> list[str]:
    """The names of the processes of the job user (the wrapper, pasta, the job...)."""
    argv = ["ps", "-o", "comm=", "-u", node.pool.job_user]
    out = subprocess.run(argv, capture_output=True, text=True).stdout
    return out.split()
