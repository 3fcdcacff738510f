"""Rootless mode: the job's user gives the job its own user and network namespaces.

Processes (all the job's uid, as the kernel sees it)::

    wrapper (supervisor: subreaper, not dumpable, holds the namespaces' fds)
    ├── pasta -f / slirp4netns      user-mode network: the tap's other end, host sockets
    └── setup child                 unshare(user+net) as namespace root: tc, nft ...
        └── init (PID 1 of the job's PID namespace, nested user namespace, no capability
            └── job                 over the network namespace): forwards signals, reaps

The setup child applies the limit (tbf on the tap's egress; the tap's ingress
redirected to an ifb device and shaped there) and the nft rules, then enters a
nested user namespace that maps the job's uid to the namespace root's, and a PID
namespace, forks the init and exits. The init and the job hold no capability over
the network namespace (``tc qdisc del`` and ``nft flush ruleset`` fail). When the
wrapper dies, the kernel kills the init (parent-death signal) and with it the whole
PID namespace, and the user-mode network stack goes too (parent-death signal,
slirp4netns's exit fd); when the job ends, the init kills what it left and the
wrapper reads the counters, stops the network stack and ends as the job did.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn

from larkps.apply.tc import CommandFailed, Device, Shaping, tc_commands
from larkps.config.jobnet import Network, Policy, UserNet
from larkps.errors import LarkpsError
from larkps.jobnet import kernel
from larkps.jobnet.request import JobPlan
from larkps.jobnet.rules import Counters, counters_from_json, ruleset
from larkps.jobnet.supervise import FORWARDED, Recorder, Signals, reap, say, wait_readable

TAP = "tap0"
IFB = "ifb0"
MTU = 65520  # the largest a tap takes; user-mode stacks are fastest with it
READY_TIMEOUT = 10.0  # seconds for the user-mode network stack to come up
STEP_TIMEOUT = 10.0  # seconds per setup command


class JobNetError(LarkpsError):
    """The job's namespace could not be made; the job was not started."""


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


def batches(commands: list[list[str]]) -> list[tuple[list[str], str]]:
    """The commands as one ``ip -batch -`` / ``tc -batch -`` run per program, in order
    (argv, stdin text). Every word is this module's own or a checked number."""
    runs: list[tuple[list[str], str]] = []
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


def pasta_argv(plan: JobPlan, pid: int, pidfile: str) -> list[str]:
    """pasta in the foreground, attached to the namespaces of ``pid``.

    Inbound forwarding only for the plan's ports, none from the namespace to the
    host's loopback (``-T``/``-U none``) and no gateway-to-host mapping: the job
    reaches the host's own services only as any other host would.
    """
    ports = ",".join(str(p) for p in plan.ports) if plan.policy is Policy.PORTS else ""
    inbound = ports or "none"
    return [
        "pasta", "-f", "-q", "--config-net", "-I", TAP, "--no-map-gw",
        "-t", inbound, "-u", inbound, "-T", "none", "-U", "none",
        "-P", pidfile, str(pid),
    ]  # fmt: skip


def slirp_argv(pid: int, ready_fd: int, exit_fd: int, api_socket: str) -> list[str]:
    return [
        "slirp4netns", "--configure", "--mtu", str(MTU), "--disable-host-loopback",
        "--enable-ipv6", "--ready-fd", str(ready_fd), "--exit-fd", str(exit_fd),
        "--api-socket", api_socket, str(pid), TAP,
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# The supervisor


class _Run:
    """One rootless run, from the first fork to the counters."""

    def __init__(self, plan: JobPlan, launch: Launch, recorder: Recorder) -> None:
        self.plan, self.launch, self.recorder = plan, launch, recorder
        self.uid, self.gid = os.getuid(), os.getgid()
        self.supervisor = os.getpid()
        self.children: dict[int, str] = {}  # pid -> role
        self.ended: dict[str, int] = {}  # role -> wait status
        self.ns_fds: list[int] = []
        self.net_pid: int | None = None
        self.net_extra: list[int] = []  # fds held for the network stack (exit fd)
        self.tmp = tempfile.mkdtemp(prefix="larkps-job-", dir=launch.workdir)
        self.signals = Signals()
        self.early: list[int] = []  # signals before the job started

    # -- the setup child ---------------------------------------------------------------------

    def start_setup(self) -> tuple[int, int, int, int]:
        """Fork the setup child; returns (pid, its report fd, go fd, job status fd)."""
        report_r, report_w = os.pipe()
        go_r, go_w = os.pipe()
        status_r, status_w = os.pipe()
        life_r, life_w = os.pipe()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            try:
                for fd in (report_r, go_w, status_r, life_w):
                    os.close(fd)
                self.signals.close()
                _setup_child(self, parent, report_w, go_r, status_w, life_r)
            finally:
                os._exit(111)
        for fd in (report_w, go_r, status_w, life_r):
            os.close(fd)
        self.lifeline = life_w
        self.children[pid] = "setup"
        return pid, report_r, go_w, status_r

    def read_report(self, fd: int, timeout: float) -> bytes:
        """One report from the setup child: a line, or b"" when it ended."""
        deadline = time.monotonic() + timeout
        data = b""
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise JobNetError("namespace set-up did not answer in time")
            ready = wait_readable([fd, self.signals.read_fd], left)
            self.early += [s for s in self.signals.pending() if s != signal.SIGCHLD]
            if self.early:
                raise JobNetError(f"stopped by signal {self.early[0]} before the job started")
            if fd in ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    return data
                data += chunk
        return data

    # -- the user-mode network ---------------------------------------------------------------

    def start_user_net(self, target: int) -> None:
        if self.launch.user_net is UserNet.SLIRP4NETNS:
            self._start_slirp(target)
        else:
            self._start_pasta(target)

    def _start_pasta(self, target: int) -> None:
        pidfile = os.path.join(self.tmp, "pasta.pid")
        process = _spawn(pasta_argv(self.plan, target, pidfile), pass_fds=())
        self.net_pid = process.pid
        self.children[process.pid] = "net"
        deadline = time.monotonic() + READY_TIMEOUT
        while not _nonempty(pidfile):
            if process.poll() is not None:
                self.children.pop(process.pid, None)
                raise JobNetError(f"pasta failed (exit status {process.returncode}){_tun_hint()}")
            if time.monotonic() > deadline:
                raise JobNetError(f"pasta not ready within {READY_TIMEOUT:g}s")
            time.sleep(0.002)

    def _start_slirp(self, target: int) -> None:
        ready_r, ready_w = os.pipe()
        exit_r, exit_w = os.pipe()
        api = os.path.join(self.tmp, "slirp.sock")
        argv = slirp_argv(target, ready_w, exit_r, api)
        try:
            process = _spawn(argv, pass_fds=(ready_w, exit_r))
        finally:
            os.close(ready_w)
            os.close(exit_r)
        self.net_pid = process.pid
        self.net_extra.append(exit_w)
        self.children[process.pid] = "net"
        try:
            if not wait_readable([ready_r], READY_TIMEOUT) or os.read(ready_r, 1) != b"1":
                raise JobNetError(f"slirp4netns did not come up{_tun_hint()}")
        finally:
            os.close(ready_r)
        if self.plan.policy is Policy.PORTS:
            for port in self.plan.ports:
                for proto in ("tcp", "udp"):
                    _slirp_forward(api, proto, port)

    def stop_user_net(self) -> None:
        for fd in self.net_extra:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.net_extra = []
        if self.net_pid is not None and "net" not in self.ended:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.net_pid, signal.SIGTERM)
            self.wait_role("net", 2.0, kill_after=True)

    # -- children ----------------------------------------------------------------------------

    def reap_all(self) -> None:
        for pid, status in reap():
            role = self.children.pop(pid, None)
            if role is not None:
                self.ended[role] = status

    def wait_role(self, role: str, timeout: float, kill_after: bool = False) -> int | None:
        deadline = time.monotonic() + timeout
        while role not in self.ended:
            self.reap_all()
            if role in self.ended:
                break
            if time.monotonic() > deadline:
                pids = [p for p, r in self.children.items() if r == role]
                if not kill_after or not pids:
                    return None
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                kill_after, deadline = False, time.monotonic() + timeout
            time.sleep(0.005)
        return self.ended[role]

    def counters(self) -> Counters:
        """The nft counters, read from inside the namespace through the fds held."""
        user_fd, net_fd = self.ns_fds

        def enter() -> None:  # pragma: no cover - runs in the child before exec
            kernel.setns(user_fd, kernel.CLONE_NEWUSER)
            kernel.setns(net_fd, kernel.CLONE_NEWNET)

        argv = ["nft", "-j", "list", "counters", "table", "inet", "larkps_job"]
        try:
            done = subprocess.run(  # noqa: S603 - fixed argument list
                [_which(argv[0]), *argv[1:]],
                capture_output=True,
                timeout=STEP_TIMEOUT,
                check=False,
                preexec_fn=enter,  # single-threaded; setns must precede exec
            )
            return counters_from_json(json.loads(done.stdout or b"{}"))
        except (OSError, subprocess.SubprocessError, json.JSONDecodeError, JobNetError) as exc:
            say(f"counters not read: {exc}")
            return Counters.empty()

    def cleanup(self) -> None:
        self.stop_user_net()
        for fd in self.ns_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.ns_fds = []
        shutil.rmtree(self.tmp, ignore_errors=True)


def run_rootless(plan: JobPlan, launch: Launch, recorder: Recorder) -> int:
    """Run the job of ``plan`` in its namespaces; its wait status.

    JobNetError (and nothing started any more) when the namespace could not be made.
    """
    kernel.set_subreaper()
    kernel.set_dumpable(False)
    state = _Run(plan, launch, recorder)
    try:
        init_pid, status_fd = _bring_up(state)
    except BaseException:
        _abort(state)
        raise
    return _supervise(state, init_pid, status_fd)


def _bring_up(state: _Run) -> tuple[int, int]:
    setup_pid, report, go, status_fd = state.start_setup()
    try:
        answer = state.read_report(report, READY_TIMEOUT)
        if answer != b"R\n":
            raise JobNetError(_setup_failure(state, report, answer))
        state.ns_fds = [
            os.open(f"/proc/{setup_pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC),
            os.open(f"/proc/{setup_pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC),
        ]
        state.start_user_net(setup_pid)
        with contextlib.suppress(BrokenPipeError):  # it failed: its report says why
            os.write(go, b"G")
        answer = state.read_report(report, READY_TIMEOUT + STEP_TIMEOUT * 8)
        if not answer.startswith(b"P"):
            raise JobNetError(_setup_failure(state, report, answer))
        init_pid = int(answer[1:])
    finally:
        os.close(go)
        os.close(report)
    state.children[init_pid] = "init"
    state.wait_role("setup", STEP_TIMEOUT, kill_after=True)
    # processes gc may end should this wrapper die: the namespace goes with them
    objects = {"net": str(state.launch.user_net), "pid": str(os.getpid())}
    objects["init_pid"] = str(init_pid)
    if state.net_pid is not None:
        objects["net_pid"] = str(state.net_pid)
    state.recorder.start(state.plan, objects)
    return init_pid, status_fd


def _setup_failure(state: _Run, report: int, answer: bytes) -> str:
    text = answer.decode("utf-8", "replace").strip()
    if text.startswith("E"):
        return text[1:]
    status = state.wait_role("setup", 1.0)
    return f"namespace set-up failed ({text or 'no answer'}, status {status})"


def _abort(state: _Run) -> None:
    for pid in list(state.children):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.close(state.lifeline)
    state.cleanup()
    for role in ("setup", "init"):
        if role in state.children.values():
            state.wait_role(role, 2.0)
    state.signals.close()


def _supervise(state: _Run, init_pid: int, status_fd: int) -> int:
    """Forward signals to the init until it ends; the job's wait status."""
    job_status: int | None = None
    reported = b""
    open_fds = [state.signals.read_fd, status_fd]
    while "init" not in state.ended:
        ready = wait_readable(open_fds, 1.0)
        for number in state.signals.pending():
            if number == signal.SIGCHLD:
                state.reap_all()
            else:
                _forward(init_pid, number)
        if status_fd in ready:
            chunk = os.read(status_fd, 64)
            reported += chunk
            if not chunk:
                open_fds.remove(status_fd)
        state.reap_all()
    if status_fd in open_fds:  # the init's report may land after its end was seen
        reported += _drain(status_fd)
    os.close(status_fd)
    with contextlib.suppress(ValueError):
        job_status = int(reported.strip() or b"x")
    if job_status is None:  # the init itself was killed
        job_status = state.ended["init"]
    counters = state.counters()
    state.cleanup()
    state.reap_all()
    state.recorder.end(state.plan, os.waitstatus_to_exitcode(job_status), counters)
    with contextlib.suppress(OSError):
        os.close(state.lifeline)
    state.signals.close()
    return job_status


def _drain(fd: int) -> bytes:
    """What a pipe whose writers have all ended still holds."""
    os.set_blocking(fd, False)
    got = b""
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, 64):
            got += chunk
    return got


def _forward(pid: int, number: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, number)


# ---------------------------------------------------------------------------------------------
# Inside: the setup child, the init, the job (each runs after a fork, never returns)


def _setup_child(  # pragma: no cover - runs in the child
    state: _Run, parent: int, report: int, go: int, status_w: int, life_r: int
) -> NoReturn:
    def fail(problem: str) -> NoReturn:
        with contextlib.suppress(OSError):
            os.write(report, b"E" + problem.encode("utf-8", "replace")[:4000] + b"\n")
        os._exit(1)

    kernel.die_with_parent()
    if os.getppid() != parent:
        os._exit(1)
    try:
        kernel.set_dumpable(True)
        kernel.unshare(kernel.CLONE_NEWUSER | kernel.CLONE_NEWNET)
        kernel.map_ids(0, state.uid, 0, state.gid)
        _quick_ipv6()
    except OSError as exc:
        fail(f"cannot make the job's user and network namespaces: {exc}")
    os.write(report, b"R\n")  # the wrapper starts the user-mode network meanwhile
    early, on_tap = shaping_commands(state.plan.rate_bps)
    try:
        for argv, text in batches(early):
            _command(argv, text)
        for name, value in tcp_limits(state.plan.rate_bps).items():
            with open(f"/proc/sys/net/{name}", "w") as handle:
                handle.write(value)
        _command(["nft", "-f", "-"], ruleset(state.plan, state.launch.classes or {}, TAP))
    except (CommandFailed, LarkpsError, OSError) as exc:
        fail(str(exc))
    if os.read(go, 1) != b"G":  # the tap is there
        os._exit(1)
    os.close(go)
    try:
        for argv, text in batches(on_tap):
            _command(argv, text)
        if state.launch.user_net is UserNet.SLIRP4NETNS:
            _wait_ipv6(READY_TIMEOUT)
    except (CommandFailed, LarkpsError, OSError) as exc:
        fail(str(exc))
    try:
        kernel.unshare(kernel.CLONE_NEWUSER)
        kernel.map_ids(state.uid, 0, state.gid, 0)
        kernel.unshare(kernel.CLONE_NEWPID)
    except OSError as exc:
        fail(f"cannot drop the namespace's capabilities: {exc}")
    alive_r, alive_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(alive_w)
        os.close(report)
        _init(state, alive_r, status_w, life_r)
    os.write(report, b"P%d\n" % pid)
    os._exit(0)


def _init(state: _Run, alive_r: int, status_w: int, life_r: int) -> NoReturn:  # pragma: no cover
    """PID 1 of the job's PID namespace: start the job, forward, reap, report, end all."""
    os.read(alive_r, 1)  # EOF: the setup child is exiting
    os.close(alive_r)
    deadline = time.monotonic() + STEP_TIMEOUT
    while _parent_pid() != state.supervisor and time.monotonic() < deadline:
        time.sleep(0.001)  # until the wrapper (a subreaper) is the parent
    kernel.die_with_parent()
    if _parent_pid() != state.supervisor or wait_readable([life_r], 0):
        os._exit(1)  # the wrapper died before the parent-death signal was set
    try:
        kernel.own_proc()
    except OSError as exc:  # a /proc with parts hidden (in a container): the host's stays
        say(f"the job sees the host's /proc: {exc}")
    signals = Signals()
    job = os.fork()
    if job == 0:
        signals.close()
        for fd in (status_w, life_r):
            os.close(fd)
        _exec_job(state.launch.argv)
    status: int | None = None
    while status is None:
        ready = wait_readable([signals.read_fd, life_r])
        if life_r in ready:
            _kill_namespace()
            os._exit(1)
        for number in signals.pending():
            if number != signal.SIGCHLD:
                _forward(job, number)
        for pid, wait_status in reap():
            if pid == job:
                status = wait_status
    with contextlib.suppress(OSError):
        os.write(status_w, b"%d\n" % status)
    _kill_namespace()
    os._exit(0)


def _parent_pid() -> int:  # pragma: no cover - runs as PID 1 of the job's namespace
    """The parent's pid as the host sees it (getppid() is 0 for a namespace's PID 1)."""
    with open("/proc/self/stat", "rb") as handle:
        return int(handle.read().rsplit(b")", 1)[1].split()[1])


def _kill_namespace() -> None:  # pragma: no cover - runs as PID 1 of the job's namespace
    with contextlib.suppress(OSError):
        os.kill(-1, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _exec_job(argv: Sequence[str]) -> NoReturn:  # pragma: no cover - runs in the job
    try:
        kernel.no_new_privs()
        kernel.die_with_parent()
        for number in FORWARDED:
            signal.signal(number, signal.SIG_DFL)
        os.execvp(argv[0], list(argv))  # noqa: S606 - the job's own argv, as the starter gave it
    except OSError as exc:
        say(f"cannot run {argv[0]}: {exc.strerror}")
        os._exit(127 if exc.errno == 2 else 126)
    os._exit(127)


# ---------------------------------------------------------------------------------------------
# Helpers


def _which(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if found is None:
        raise JobNetError(f"{name} not found")
    return found


def _spawn(argv: list[str], pass_fds: tuple[int, ...]) -> subprocess.Popen[bytes]:
    parent = os.getpid()

    def tie() -> None:  # pragma: no cover - runs in the child before exec
        kernel.die_with_parent()
        if os.getppid() != parent:
            os._exit(1)

    try:
        return subprocess.Popen(  # noqa: S603 - argument list of checked numbers and paths
            [_which(argv[0]), *argv[1:]],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # the job's stdout is the job's alone
            preexec_fn=tie,  # single-threaded supervisor
            pass_fds=pass_fds,
        )
    except OSError as exc:
        raise JobNetError(f"cannot start {argv[0]}: {exc.strerror}") from None


def _command(argv: list[str], text: str | None = None) -> None:
    """Run a command (text, if any, on its stdin: ``nft -f -``); CommandFailed if it fails."""
    try:
        done = subprocess.run(  # noqa: S603 - argument list of checked names and numbers
            [_which(argv[0]), *argv[1:]],
            input=None if text is None else text.encode(),
            stdin=subprocess.DEVNULL if text is None else None,
            capture_output=True,
            timeout=STEP_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CommandFailed(f"{' '.join(argv)}: {exc}") from None
    if done.returncode != 0:
        first = (done.stderr.decode(errors="replace").strip().splitlines() or ["failed"])[0]
        raise CommandFailed(f"{' '.join(argv)}: {first}")


def _quick_ipv6() -> None:  # pragma: no cover - runs in the setup child
    """No duplicate address detection or router solicitation delay on interfaces made
    from now on (the tap: the namespace's only link, to a stack that answers at once)."""
    for name, value in (("accept_dad", "0"), ("dad_transmits", "0"),
                        ("router_solicitation_delay", "0")):  # fmt: skip
        with open(f"/proc/sys/net/ipv6/conf/default/{name}", "w") as handle:
            handle.write(value)


def _wait_ipv6(timeout: float) -> None:  # pragma: no cover - runs in the setup child
    """Until router advertisement gave the tap a default route and an address past DAD
    (slirp4netns configures IPv6 that way, after the tap is up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open("/proc/net/ipv6_route") as routes, open("/proc/net/if_inet6") as addresses:
            default = any(
                line.split()[:2] == ["0" * 32, "00"] and line.split()[-1] == TAP for line in routes
            )
            tentative = any(
                line.split()[-1] == TAP and int(line.split()[4], 16) & 0x40 for line in addresses
            )
        if default and not tentative:
            return
        time.sleep(0.01)
    say("IPv6 not configured by slirp4netns in time; the job may have IPv4 only")


def _tun_hint() -> str:
    if os.access("/dev/net/tun", os.R_OK | os.W_OK):
        return ""
    return " (/dev/net/tun is not usable by this user: the node must make it mode 0666)"


def _nonempty(path: str) -> bool:
    try:
        return os.path.getsize(path) > 0
    except OSError:
        return False


def _slirp_forward(api: str, proto: str, port: int) -> None:
    request = {
        "execute": "add_hostfwd",
        "arguments": {
            "proto": proto,
            "host_addr": "0.0.0.0",  # noqa: S104 - the port the plan opens, as pasta does
            "host_port": port,
            "guest_port": port,
        },
    }
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(STEP_TIMEOUT)
            sock.connect(api)
            sock.sendall(json.dumps(request).encode())
            sock.shutdown(socket.SHUT_WR)
            answer = json.loads(sock.recv(65536) or b"{}")
    except (OSError, ValueError) as exc:
        raise JobNetError(f"slirp4netns port {port}/{proto}: {exc}") from None
    if not isinstance(answer, dict) or "error" in answer or "return" not in answer:
        raise JobNetError(f"slirp4netns port {port}/{proto}: {answer}")
