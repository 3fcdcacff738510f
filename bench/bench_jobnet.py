"""What a job pays for its own network namespace: start time and throughput, against baselines.

Start time (goal: under 100 ms added per job): ``--starts`` runs of a job that
prints the clock (``date +%s%N``) started directly, then through each mechanism,
interleaved so that all see the same load: a bare user and network namespace
(``unshare -Urn``), the same with pasta or slirp4netns attached and configured
before the job runs, and the job wrapper (``--wrap``, rootless with pasta and
slirp4netns, and privileged when ``--helper`` is given), each planning the job
itself and asking a planner (``larkps jobnet planner`` of the same install, run
as ``--user`` with the same config). For each: the median and
90th percentile of the time until the job runs (launch to the job's own clock
reading) and of the whole run (until every process has exited: the wrapper's
accounting and teardown included), each less the direct job's.

Throughput: iperf3 TCP for ``--seconds`` in both directions (the job sends, the job
receives with ``-R``) from a client in each mode to a server on this host: over
the host's own loopback (the baseline of the same run); from a network namespace
joined to the host by a veth pair (what the privileged mode builds) to the host's
end of it; from pasta's and slirp4netns's namespaces (the rootless modes'
user-mode networking, whose host sockets connect to that same address); and the
same through the wrapper. Gbit/s and the ratio to loopback.

Run as root: the veth case needs it, the rootless cases run as ``--user`` (an
ordinary account, ``nobody`` unless told) in a private mount namespace of this
process that holds a 0666 tun node; the machine's /dev/net/tun is not changed.
The wrapper must be installed where that user can run it, as an admin would:

    /usr/bin/python3 -m venv /tmp/lk && /tmp/lk/bin/pip install -q .
    .venv/bin/python bench/bench_jobnet.py [--starts 30] [--seconds 5] [--rounds 3] [--user nobody]
        [--wrap /tmp/lk/bin/larkps-job-wrap] [--helper /tmp/lk/bin/larkps-jobnet-helper]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import itertools
import json
import os
import pwd
import shlex
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

CLONE_NEWNS = 0x00020000
SERVER_PORT = 5290
VETH_NS, VETH_HOST, VETH_JOB = "lkbench-veth", "lkbench-h", "lkbench-j"
VETH_HOST_ADDR, VETH_JOB_ADDR = "198.18.250.1", "198.18.250.2"
Argv = list[str]
#: A start case: runs the clock job once, returns what it printed.
StartCase = Callable[[], str]
#: Cluster ids of the wrapper's jobs, each with its own scratch directory.
JOB_IDS = itertools.count(1000)
#: The job of the start cases: it prints the time it started, in ns since the epoch.
CLOCK_JOB = ("date", "+%s%N")
#: A job-ad line that makes a rootless node refuse the job before any namespace.
REFUSED = 'LarkNetworkPolicy = "bridge"\n'


@dataclass(frozen=True)
class User:
    """The ordinary account the rootless cases run as."""

    name: str
    uid: int
    gid: int

    def argv(self, *command: str) -> Argv:
        """``command`` run as this user (setpriv execs: the pid stays the command's)."""
        return [
            "setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups",
            "--reset-env", "--", *command,
        ]  # fmt: skip


def find_user(name: str) -> User:
    entry = pwd.getpwnam(name)
    return User(name, entry.pw_uid, entry.pw_gid)


def run(argv: Sequence[str], **kw: object) -> subprocess.CompletedProcess[str]:
    """Run argv (never through a shell), with text output captured; its stderr if it fails."""
    done: subprocess.CompletedProcess[str]
    done = subprocess.run(list(argv), capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)}: exit status {done.returncode}\n{done.stderr}")
    return done


def private_mounts() -> None:
    """Give this process a private mount namespace: /dev/net/tun mode 0666, its own /run.

    /run holds the named network namespaces, sudo's state and the helper's leases.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    run(["mount", "--make-rprivate", "/"])
    run(["mount", "-t", "tmpfs", "-o", "mode=755,size=16k", "larkps-bench-tun", "/dev/net"])
    run(["mknod", "-m", "666", "/dev/net/tun", "c", "10", "200"])
    run(["mount", "-t", "tmpfs", "-o", "mode=755", "larkps-bench-run", "/run"])


@contextlib.contextmanager
def veth_namespace() -> Iterator[None]:
    """A network namespace joined to the host by a veth pair (198.18.250.0/30)."""
    run(["ip", "netns", "add", VETH_NS])
    try:
        run(["ip", "link", "add", VETH_HOST, "type", "veth", "peer", "name", VETH_JOB])
        run(["ip", "link", "set", VETH_JOB, "netns", VETH_NS])
        run(["ip", "addr", "add", f"{VETH_HOST_ADDR}/30", "dev", VETH_HOST])
        run(["ip", "link", "set", VETH_HOST, "up"])
        inside = ["ip", "netns", "exec", VETH_NS]
        run([*inside, "ip", "addr", "add", f"{VETH_JOB_ADDR}/30", "dev", VETH_JOB])
        run([*inside, "ip", "link", "set", VETH_JOB, "up"])
        run([*inside, "ip", "link", "set", "lo", "up"])
        yield
    finally:
        subprocess.run(["ip", "netns", "del", VETH_NS], capture_output=True)


@contextlib.contextmanager
def iperf3_server(address: str, port: int) -> Iterator[None]:
    """An iperf3 server on address:port for the whole run (one test at a time)."""
    server = subprocess.Popen(
        ["iperf3", "-s", "-B", address, "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not listening(port):
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"iperf3 server on {address}:{port} did not start")
            time.sleep(0.05)
        yield
    finally:
        server.terminate()
        server.wait()


def listening(port: int) -> bool:
    out = run(["ss", "-Hltn", f"sport = :{port}"]).stdout
    return bool(out.strip())


def client(address: str, port: int, seconds: float, reverse: bool) -> Argv:
    argv = ["iperf3", "-c", address, "-p", str(port), "-t", str(seconds), "-J"]
    return [*argv, "-R"] if reverse else argv


def gbits(report: str) -> float:
    """The receiver's rate in an iperf3 JSON report, in Gbit/s.

    Lines around the report are skipped: slirp4netns writes a warning to the stdout it
    inherits, the job's.
    """
    data, _ = json.JSONDecoder().raw_decode(report[report.find("{") :])
    if "error" in data:
        raise RuntimeError(f"iperf3: {data['error']}")
    return float(data["end"]["sum_received"]["bits_per_second"]) / 1e9


# -- rootless: a user and network namespace, then user-mode networking attached to it


@dataclass
class Namespaced:
    """A process of ``user`` in new user and network namespaces, held until released."""

    process: subprocess.Popen[str]

    @property
    def pid(self) -> int:
        return self.process.pid

    def release(self) -> None:
        """Let the held process exec its command."""
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()


def hold_namespaced(user: User, command: Sequence[str]) -> Namespaced:
    """Start ``command`` as ``user`` in new namespaces, held until ``release``."""
    script = 'read go; exec "$@"'
    argv = user.argv("unshare", "-Urn", "--", "sh", "-c", script, "sh", *command)
    process = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    return Namespaced(process)


def attach(user: User, net: str, pid: int) -> subprocess.Popen[bytes]:
    """pasta or slirp4netns, as ``user``, giving the namespace of ``pid`` its tap.

    With the wrapper's options: no port forwarding either way, no gateway mapped to
    the host's loopback (pasta scanning for ports to forward costs ~60 ms a start).
    """
    wait_unshared(pid)
    if net == "pasta":
        closed = ["-t", "none", "-u", "none", "-T", "none", "-U", "none", "--no-map-gw"]
        argv = ["pasta", "-q", "-f", "--config-net", *closed, str(pid)]
    else:
        userns = f"--userns-path=/proc/{pid}/ns/user"
        options = ["--configure", "--mtu=65520", "--disable-host-loopback", "--enable-ipv6"]
        argv = ["slirp4netns", *options, userns, str(pid), "tap0"]
    return subprocess.Popen(user.argv(*argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_unshared(pid: int, timeout: float = 10) -> None:
    """Until ``pid`` is in a network namespace other than this process's."""
    ours = os.readlink("/proc/self/ns/net")
    deadline = time.monotonic() + timeout
    while os.readlink(f"/proc/{pid}/ns/net") == ours:
        if time.monotonic() > deadline:
            raise RuntimeError(f"pid {pid} did not unshare its network namespace")
        time.sleep(0.001)


def wait_configured(pid: int, helper: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """Until the namespace of ``pid`` has an IPv4 default route (read from its /proc)."""
    deadline = time.monotonic() + timeout
    while not has_default_route(pid):
        if helper.poll() is not None or time.monotonic() > deadline:
            err = helper.stderr.read().decode() if helper.stderr else ""
            raise RuntimeError(f"user-mode network not configured in pid {pid}: {err[-500:]}")
        time.sleep(0.001)


def has_default_route(pid: int) -> bool:
    """Whether /proc/PID/net/route (that process's namespace) has destination 0.0.0.0."""
    lines = Path(f"/proc/{pid}/net/route").read_text().splitlines()[1:]
    return any(line.split()[1] == "00000000" for line in lines)


def rootless(user: User, net: str, command: Argv) -> str:
    """Run ``command`` in a namespace with ``net`` attached; its stdout."""
    job = hold_namespaced(user, command)
    helper = attach(user, net, job.pid)
    try:
        wait_configured(job.pid, helper)
        job.release()
        out, err = job.process.communicate(timeout=600)
        if job.process.returncode != 0:
            raise RuntimeError(f"{net} job exited {job.process.returncode}: {err[-500:]}")
        return out
    finally:
        helper.kill()
        helper.wait()


def rootless_start(user: User, net: str | None) -> StartCase:
    """One start of the clock job in new namespaces, with ``net`` attached first if given."""

    def case() -> str:
        job = hold_namespaced(user, CLOCK_JOB)
        helper = attach(user, net, job.pid) if net else None
        try:
            if helper:
                wait_configured(job.pid, helper)
            job.release()
            return job.process.communicate(timeout=60)[0]
        finally:
            if helper:
                helper.kill()
                helper.wait()

    return case


# -- privileged mode: the shipped sudoers rule and a "node" network namespace


NODE_ADDR = "198.18.99.1"
JOB_POOL4 = "198.18.98.0/24"
SUDOERS = Path(__file__).resolve().parents[1] / "config" / "condor" / "larkps-jobnet.sudoers"


@dataclass(frozen=True)
class PrivilegedNode:
    """A network namespace standing for the node (pid), where the helper builds."""

    pid: int

    def argv(self, *command: str) -> Argv:
        return ["nsenter", "-t", str(self.pid), "-n", "--", *command]


@contextlib.contextmanager
def builder(node: PrivilegedNode, larkps: Path, config: Path, home: Path) -> Iterator[Path]:
    """``larkps jobnet builder`` (root, in the node's namespace) for config; its socket."""
    socket_path = home / "builder.sock"
    argv = [str(larkps), "jobnet", "builder", "--config", str(config)]
    with service(node.argv(*argv, "--socket", str(socket_path)), socket_path, "builder"):
        yield socket_path


@contextlib.contextmanager
def service(argv: Argv, socket_path: Path, name: str) -> Iterator[None]:
    """A service run for the block, once its socket exists."""
    process = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not socket_path.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the {name} did not start ({process.returncode})")
            time.sleep(0.05)
        yield
    finally:
        process.terminate()
        process.wait()


@contextlib.contextmanager
def privileged_node(helper: Path, user: User, home: Path) -> Iterator[PrivilegedNode]:
    """The shipped sudoers rule over /etc/sudoers (this mount namespace only) for
    ``helper`` and ``user``, and a node namespace with NODE_ADDR and an iperf3 server."""
    rule = SUDOERS.read_text().replace("/opt/larkps/venv/bin/larkps-jobnet-helper", str(helper))
    rule = rule.replace("%larkps-jobs", user.name)
    kept = "LARKPS_JOBNET_CONFIG LARKPS_JOBNET_BUILDER"
    keep = f'Defaults!LARKPS_JOBNET_HELPER env_keep += "{kept}"\n'
    sudoers = home / "sudoers"
    sudoers.write_text("Defaults env_reset\nroot ALL=(ALL:ALL) ALL\n" + rule + keep)
    sudoers.chmod(0o440)
    run(["mount", "--bind", str(sudoers), "/etc/sudoers"])
    holder = subprocess.Popen(["unshare", "-n", "--", "sleep", "infinity"])
    try:
        wait_unshared(holder.pid)
        node = PrivilegedNode(holder.pid)
        run(node.argv("ip", "link", "set", "lo", "up"))
        run(node.argv("ip", "addr", "add", f"{NODE_ADDR}/32", "dev", "lo"))
        forward = ["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]
        run(node.argv("sysctl", "-q", "-w", *forward))  # the node namespace's own
        server = subprocess.Popen(
            node.argv("iperf3", "-s", "-B", NODE_ADDR, "-p", str(SERVER_PORT + 2)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield node
        finally:
            server.terminate()
            server.wait()
    finally:
        holder.kill()
        holder.wait()
        subprocess.run(["umount", "/etc/sudoers"], capture_output=True)


# -- the wrapper


@dataclass(frozen=True)
class Wrapper:
    """larkps-job-wrap with a job ad, a machine ad and a node config in ``home``."""

    path: Path
    home: Path
    user: User
    node: PrivilegedNode | None = None

    def config(self, mode: str, net: str, helper: Path | None) -> Path:
        path = self.home / f"{mode}-{net}.toml"
        lines = [
            "[jobnet]",
            f'mode = "{mode}"',
            f'user_net = "{net}"',
            f'ledger = "{self.home}/ledger-{mode}-{net}.sqlite"',
        ]
        if helper:
            lines += [f'helper = "{helper}"', f'pool4 = "{JOB_POOL4}"']
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o644)
        return path

    def env(
        self,
        config: Path,
        job: int,
        extra: str = "",
        planner: Path | None = None,
        built_by: Path | None = None,
    ) -> dict[str, str]:
        """A starter-like scratch directory of the user's own, with the job's ads."""
        scratch = self.home / f"dir_{job}"
        scratch.mkdir(mode=0o700)
        ad, machine = scratch / ".job.ad", scratch / ".machine.ad"
        ad.write_text(
            f'ClusterId = {job}\nProcId = 0\nOwner = "{self.user.name}"\n'
            f'Cmd = "/bin/true"\nJobUniverse = 5\n{extra}'
        )
        machine.write_text('Name = "slot1@bench"\nMachine = "bench"\n')
        for path in (scratch, ad, machine):
            os.chown(path, self.user.uid, self.user.gid)
        return {
            "_CONDOR_JOB_AD": str(ad),
            "_CONDOR_MACHINE_AD": str(machine),
            "_CONDOR_SCRATCH_DIR": str(scratch),
            "LARKPS_CONFIG": str(config),
            "LARKPS_JOBNET_CONFIG": str(config),
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "LARKPS_JOBNET_BUILDER": str(built_by or ""),  # empty: the helper builds
        } | ({"LARKPS_PLANNER": str(planner)} if planner else {})

    def argv(
        self,
        config: Path,
        job: int,
        *command: str,
        extra: str = "",
        planner: Path | None = None,
        built_by: Path | None = None,
        program: Path | None = None,
    ) -> Argv:
        """The wrapper (or ``program``) as the starter runs it; privileged configs in
        the node namespace."""
        env = [f"{k}={v}" for k, v in self.env(config, job, extra, planner, built_by).items()]
        argv = self.user.argv("env", *env, str(program or self.path), *command)
        privileged = "privileged" in config.name
        return self.node.argv(*argv) if privileged and self.node else argv


def wrapped_start(
    wrapper: Wrapper,
    config: Path,
    planner: Path | None = None,
    built_by: Path | None = None,
    program: Path | None = None,
) -> StartCase:
    def case() -> str:
        job = next(JOB_IDS)
        argv = wrapper.argv(
            config, job, *CLOCK_JOB, planner=planner, built_by=built_by, program=program
        )
        return run(argv, timeout=60).stdout

    return case


def refused_start(wrapper: Wrapper, config: Path, planner: Path | None = None) -> StartCase:
    """The wrapper refusing a job (a policy the node lacks): start-up, ads, config, plan.
    The job never runs: its start is the refusal's end."""

    def case() -> str:
        argv = wrapper.argv(config, next(JOB_IDS), *CLOCK_JOB, extra=REFUSED, planner=planner)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if done.returncode != 1 or "LarkNetworkPolicy" not in done.stderr:
            raise RuntimeError(f"not refused as expected: {done.stderr[-500:]}")
        return str(time.time_ns())

    return case


def direct_start(user: User) -> StartCase:
    def case() -> str:
        return run(user.argv(*CLOCK_JOB), timeout=60).stdout

    return case


# -- measuring


@dataclass
class Starts:
    """One case's seconds from launch until the job ran, and until all had exited."""

    job: list[float]
    whole: list[float]


def interleaved(cases: dict[str, StartCase], repeat: int) -> dict[str, Starts]:
    """Each case run in turn ``repeat`` times (all see the same load)."""
    times = {name: Starts([], []) for name in cases}
    for _ in range(repeat):
        for name, case in cases.items():
            launched, start = time.time_ns(), time.perf_counter()
            printed = case()
            times[name].whole.append(time.perf_counter() - start)
            times[name].job.append((int(printed.split()[-1]) - launched) / 1e9)
    return times


def p90(values: Sequence[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


@contextlib.contextmanager
def planner(wrapper: Wrapper, config: Path) -> Iterator[Path]:
    """``larkps jobnet planner`` for ``config``, run as the user; its socket."""
    where = wrapper.home / "planners"
    where.mkdir(mode=0o755, exist_ok=True)
    os.chown(where, wrapper.user.uid, wrapper.user.gid)
    socket_path = where / f"{config.stem}.sock"
    larkps = wrapper.path.parent / "larkps"
    argv = wrapper.user.argv(str(larkps), "jobnet", "planner", "--config", str(config))
    with service([*argv, "--socket", str(socket_path)], socket_path, "planner"):
        yield socket_path


def start_cases(
    user: User, wrapper: Wrapper | None, helper: Path | None, stack: contextlib.ExitStack
) -> dict[str, StartCase]:
    cases = {
        "the job, direct (baseline)": direct_start(user),
        "unshare -Urn (namespaces only)": rootless_start(user, None),
        "namespaces + pasta attached": rootless_start(user, "pasta"),
        "namespaces + slirp4netns attached": rootless_start(user, "slirp4netns"),
    }
    if wrapper:
        config = wrapper.config("rootless", "pasta", None)
        cases["larkps-job-wrap refusing the job (no namespace)"] = refused_start(wrapper, config)
        socket_path = stack.enter_context(planner(wrapper, config))
        cases["larkps-job-wrap refusing, by the planner"] = refused_start(
            wrapper, config, socket_path
        )
        for net in ("pasta", "slirp4netns"):
            config = wrapper.config("rootless", net, None)
            cases[f"larkps-job-wrap, rootless {net}"] = wrapped_start(wrapper, config)
            socket_path = stack.enter_context(planner(wrapper, config))
            cases[f"larkps-job-wrap, rootless {net}, planner"] = wrapped_start(
                wrapper, config, socket_path
            )
        if helper:
            config = wrapper.config("privileged", "pasta", helper)
            cases["larkps-job-wrap, privileged veth"] = wrapped_start(wrapper, config)
            socket_path = stack.enter_context(planner(wrapper, config))
            cases["larkps-job-wrap, privileged veth, planner"] = wrapped_start(
                wrapper, config, socket_path
            )
            assert wrapper.node is not None
            larkps = wrapper.path.parent / "larkps"
            built_by = stack.enter_context(builder(wrapper.node, larkps, config, wrapper.home))
            cases["larkps-job-wrap, privileged veth, builder"] = wrapped_start(
                wrapper, config, socket_path, built_by
            )
            direct = wrapper.path.parent / "larkps-job-wrap-privileged"
            cases["larkps-job-wrap-privileged, builder"] = wrapped_start(
                wrapper, config, built_by=built_by, program=direct
            )
    return cases


def print_starts(times: dict[str, Starts]) -> None:
    """Milliseconds added to the direct job's: median and p90, until the job ran and in all."""
    base = next(iter(times.values()))
    job0, whole0 = statistics.median(base.job), statistics.median(base.whole)
    print(f"`{' '.join(CLOCK_JOB)}` as the job, {len(base.job)} runs each, interleaved;")
    direct = f"{job0 * 1e3:.1f} ms to run, {whole0 * 1e3:.1f} ms in all"
    print(f"ms added to the direct job's ({direct}):")
    print(f"  {'':48} {'until the job runs':>20} {'until all exited':>20}")
    print(f"  {'':48} {'median':>9} {'p90':>10} {'median':>9} {'p90':>10}")
    for name, starts in times.items():
        cells = [
            f"{(statistics.median(values) - zero) * 1e3:9.1f} {(p90(values) - zero) * 1e3:10.1f}"
            for values, zero in ((starts.job, job0), (starts.whole, whole0))
        ]
        print(f"  {name:48} {cells[0]} {cells[1]}")


def throughput_cases(
    user: User, seconds: float, wrapper: Wrapper | None, helper: Path | None
) -> dict[str, Callable[[bool], float]]:
    port = SERVER_PORT

    def loopback(reverse: bool) -> float:
        return gbits(run(client("127.0.0.1", port, seconds, reverse), timeout=600).stdout)

    def veth(reverse: bool) -> float:
        argv = ["ip", "netns", "exec", VETH_NS, *client(VETH_HOST_ADDR, port + 1, seconds, reverse)]
        return gbits(run(argv, timeout=600).stdout)

    def user_net(net: str) -> Callable[[bool], float]:
        def case(reverse: bool) -> float:
            argv = client(VETH_HOST_ADDR, port + 1, seconds, reverse)
            return gbits(rootless(user, net, argv))

        return case

    cases: dict[str, Callable[[bool], float]] = {
        "host loopback (baseline)": loopback,
        "veth between netns and host": veth,
        "pasta (rootless)": user_net("pasta"),
        "slirp4netns (rootless)": user_net("slirp4netns"),
    }
    if wrapper:
        cases.update(wrapped_throughput(wrapper, helper, seconds))
    return cases


def wrapped_throughput(
    wrapper: Wrapper, helper: Path | None, seconds: float
) -> dict[str, Callable[[bool], float]]:
    """iperf3 run as a job through the wrapper, to the host's address on eth0 or the veth."""

    def through(mode: str, net: str, address: str, port: int) -> Callable[[bool], float]:
        config = wrapper.config(mode, net, helper)

        def case(reverse: bool) -> float:
            argv = wrapper.argv(config, next(JOB_IDS), *client(address, port, seconds, reverse))
            return gbits(run(argv, timeout=600).stdout)

        return case

    host = VETH_HOST_ADDR
    cases = {
        f"larkps-job-wrap, rootless {net}": through("rootless", net, host, SERVER_PORT + 1)
        for net in ("pasta", "slirp4netns")
    }
    if helper:
        cases["larkps-job-wrap, privileged veth"] = through(
            "privileged", "pasta", NODE_ADDR, SERVER_PORT + 2
        )
    return cases


Rates = dict[str, tuple[list[float], list[float]]]  # case -> (sends, receives) per round


def print_throughput(results: Rates, seconds: float) -> None:
    """Median Gbit/s of the rounds (min-max), and the ratio of the medians to loopback."""
    base = [statistics.median(way) for way in results["host loopback (baseline)"]]
    rounds = len(results["host loopback (baseline)"][0])
    print(f"iperf3 TCP, {seconds:g} s each way, {rounds} rounds interleaved (median, min-max):")
    print(f"  {'':38} {'job sends, Gbit/s':>24} {'ratio':>6} {'job receives':>19} {'ratio':>6}")
    for name, ways in results.items():
        cells = []
        for way, base_rate in zip(ways, base, strict=True):
            median = statistics.median(way)
            spread = f"{min(way):.2f}-{max(way):.2f}"
            cells.append(f"{median:6.2f} ({spread:>11}) {median / base_rate:5.2f}x")
        print(f"  {name:38} {cells[0]:>30} {cells[1]:>26}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=30, help="starts of `true` per case")
    parser.add_argument("--seconds", type=float, default=5, help="iperf3 seconds per direction")
    parser.add_argument("--rounds", type=int, default=3, help="iperf3 rounds of every case")
    parser.add_argument("--user", default="nobody", help="ordinary account for rootless cases")
    parser.add_argument("--wrap", type=Path, help="an installed larkps-job-wrap")
    parser.add_argument("--helper", type=Path, help="an installed larkps-jobnet-helper")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("run as root (veth, netns and the private tun node need it)")
    for tool in ("iperf3", "pasta", "slirp4netns", "setpriv", "nsenter", "unshare", "ss"):
        if not shutil.which(tool):
            parser.error(f"{tool} is not installed")
    private_mounts()
    user = find_user(args.user)
    with (
        tempfile.TemporaryDirectory(prefix="larkps-bench-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        home = Path(tmp)
        home.chmod(0o755)
        node = None
        if args.helper:
            node = stack.enter_context(privileged_node(args.helper, user, home))
        wrapper = Wrapper(args.wrap, home, user, node) if args.wrap else None
        cases = start_cases(user, wrapper, args.helper, stack)
        print_starts(interleaved(cases, args.starts))
        if not args.skip_throughput:
            measure_throughput(user, args.seconds, args.rounds, wrapper, args.helper)


def measure_throughput(
    user: User, seconds: float, rounds: int, wrapper: Wrapper | None, helper: Path | None
) -> None:
    with (
        veth_namespace(),
        iperf3_server("127.0.0.1", SERVER_PORT),
        iperf3_server(VETH_HOST_ADDR, SERVER_PORT + 1),
    ):
        cases = throughput_cases(user, seconds, wrapper, helper)
        results: Rates = {name: ([], []) for name in cases}
        for _ in range(rounds):
            for name, case in cases.items():
                results[name][0].append(case(False))
                results[name][1].append(case(True))
    print_throughput(results, seconds)


if __name__ == "__main__":
    main()
