"""The rootless runner: a job in user and network namespaces of its own, from a Recipe.

Processes (all the job's uid, as the kernel sees it)::

    wrapper (supervisor: subreaper, not dumpable, holds the namespaces' fds)
    ├── pasta -f / slirp4netns      user-mode network: the tap's other end, host sockets
    └── setup child                 unshare(user+net) as namespace root: tc, nft ...
        └── init (PID 1 of the job's PID namespace, nested user namespace, no capability
            └── job                 over the network namespace): forwards signals, reaps

The setup child runs the recipe's commands (the limit on the tap and its ifb, the nft
rules), then enters a nested user namespace that maps the job's uid to the namespace
root's, and a PID namespace, forks the init and exits. The init and the job hold no
capability over the network namespace (``tc qdisc del`` and ``nft flush ruleset``
fail). When the wrapper dies, the kernel kills the init (parent-death signal) and with
it the whole PID namespace, and the user-mode network stack goes too (parent-death
signal, slirp4netns's exit fd); when the job ends, the init kills what it left and the
wrapper reads the counters, stops the network stack and ends as the job did.

This module is on every job's start, so it loads little: the recipe (what to run,
made by :mod:`larkps.jobnet.rootless` in the wrapper or in the planner) comes in as
plain values, and what is done with the counters is the caller's, after the job ran.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence

from larkps import TYPE_CHECKING
from larkps.errors import LarkpsError
from larkps.jobnet import kernel
from larkps.jobnet.supervise import FORWARDED, Signals, held, reap, say, wait_readable

if TYPE_CHECKING:
    from typing import NoReturn

TAP = "tap0"
IFB = "ifb0"
MTU = 65520  # the largest a tap takes; user-mode stacks are fastest with it
READY_TIMEOUT = 10.0  # seconds for the user-mode network stack to come up
STEP_TIMEOUT = 10.0  # seconds per setup command
PASTA, SLIRP4NETNS = "pasta", "slirp4netns"
#: The programs a recipe's commands may run, and the sysctls it may set (under /proc/sys/net).
PROGRAMS = ("ip", "tc")
SYSCTLS = ("ipv4/tcp_rmem", "ipv4/tcp_limit_output_bytes")
COUNTERS = ["nft", "-j", "list", "counters", "table", "inet", "larkps_job"]
FALLBACK_PATH = "/usr/sbin:/sbin:/usr/bin:/bin"
STARTED = b"S\n"  # the init's word that the job has exec'd; its exit status follows
#: One command run with its standard input: (argv, text).
Batch = tuple[list[str], str]


class JobNetError(LarkpsError):
    """The job's namespace could not be made; the job was not started."""


class Recipe:
    """What the setup child runs, and how the namespace is connected: plain values only.

    ``early``: commands before the tap exists; ``sysctls``: per-namespace values;
    ``rules``: the nft ruleset; ``on_tap``: commands once it exists; ``ports``: inbound
    ports forwarded by the user-mode stack (none: nothing inbound).
    """

    __slots__ = ("early", "on_tap", "ports", "rules", "sysctls", "user_net")

    def __init__(
        self,
        user_net: str,
        early: Sequence[Batch],
        sysctls: Mapping[str, str],
        rules: str,
        on_tap: Sequence[Batch],
        ports: Sequence[int] = (),
    ) -> None:
        self.user_net, self.rules = user_net, rules
        self.early, self.on_tap = list(early), list(on_tap)
        self.sysctls, self.ports = dict(sysctls), tuple(ports)

    def doc(self) -> dict[str, object]:
        return {
            "user_net": self.user_net,
            "early": [[argv, text] for argv, text in self.early],
            "sysctls": self.sysctls,
            "rules": self.rules,
            "on_tap": [[argv, text] for argv, text in self.on_tap],
            "ports": list(self.ports),
        }

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Recipe) and self.doc() == other.doc()

    __hash__ = None  # type: ignore[assignment]


def recipe_from_doc(doc: object) -> Recipe:
    """A recipe sent as JSON, checked: only the known programs and sysctls, ports as
    numbers (ValueError naming what is wrong)."""
    if not isinstance(doc, dict):
        raise ValueError("recipe is not an object")
    user_net, rules = doc.get("user_net"), doc.get("rules")
    if user_net not in (PASTA, SLIRP4NETNS) or not isinstance(rules, str):
        raise ValueError("recipe: user_net or rules is wrong")
    sysctls = doc.get("sysctls")
    if not isinstance(sysctls, dict) or not all(
        k in SYSCTLS and isinstance(v, str) and v.replace(" ", "").isdigit()
        for k, v in sysctls.items()
    ):
        raise ValueError("recipe: sysctls are wrong")
    ports = doc.get("ports")
    if not isinstance(ports, list) or not all(type(p) is int and 1 <= p <= 65535 for p in ports):
        raise ValueError("recipe: ports are wrong")
    return Recipe(user_net, _batches(doc, "early"), sysctls, rules, _batches(doc, "on_tap"), ports)


def _batches(doc: dict[str, object], key: str) -> list[Batch]:
    value = doc.get(key)
    if not isinstance(value, list):
        raise ValueError(f"recipe: {key} is not a list")
    result: list[Batch] = []
    for item in value:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[1], str)):
            raise ValueError(f"recipe: {key} holds something that is not [argv, text]")
        argv = item[0]
        if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)):
            raise ValueError(f"recipe: {key} holds an argv that is not strings")
        if argv[0] not in PROGRAMS:
            raise ValueError(f"recipe: {key} runs {argv[0][:20]!r}, not one of {PROGRAMS}")
        result.append((argv, item[1]))
    return result


class Hooks:
    """What the runner tells its caller: the run's objects once the job is on its way
    (the job has exec'd), and the job's end with its exit status and the nft counters
    as ``nft -j`` printed them (None when they could not be read)."""

    __slots__ = ("ended", "started")

    def __init__(
        self,
        started: Callable[[dict[str, str]], None],
        ended: Callable[[int, bytes | None], None],
    ) -> None:
        self.started, self.ended = started, ended


def pasta_argv(ports: Sequence[int], pid: int, pidfile: str) -> list[str]:
    """pasta in the foreground, attached to the namespaces of ``pid``.

    Inbound forwarding only for ``ports``, none from the namespace to the host's
    loopback (``-T``/``-U none``) and no gateway-to-host mapping: the job reaches the
    host's own services only as any other host would.
    """
    inbound = ",".join(str(p) for p in ports) or "none"
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


class _Run:
    """One rootless run, from the first fork to the counters."""

    def __init__(
        self, recipe: Recipe, argv: Sequence[str], hooks: Hooks, workdir: str | None
    ) -> None:
        self.recipe, self.argv, self.hooks = recipe, list(argv), hooks
        self.uid, self.gid = os.getuid(), os.getgid()
        self.supervisor = os.getpid()
        self.children: dict[int, str] = {}  # pid -> role
        self.ended: dict[str, int] = {}  # role -> wait status
        self.ns_fds: list[int] = []
        self.net_pid: int | None = None
        self.net_extra: list[int] = []  # fds held for the network stack (exit fd)
        self.tmp = _private_dir(workdir)
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
        if self.recipe.user_net == SLIRP4NETNS:
            self._start_slirp(target)
        else:
            self._start_pasta(target)

    def _start_pasta(self, target: int) -> None:
        pidfile = os.path.join(self.tmp, "pasta.pid")
        process = _spawn(pasta_argv(self.recipe.ports, target, pidfile), pass_fds=())
        self.net_pid = process.pid
        self.children[process.pid] = "net"
        deadline = time.monotonic() + READY_TIMEOUT
        families = ("ipv4", "ipv6") if _default_route("/proc/self/net", "ipv6") else ("ipv4",)
        while not _nonempty(pidfile) and not _routed(f"/proc/{target}/net", families):
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
        for port in self.recipe.ports:
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

    def counters(self) -> bytes | None:
        """The nft counters (``nft -j``), read from inside the namespace through the fds held."""
        user_fd, net_fd = self.ns_fds

        def enter() -> None:  # pragma: no cover - runs in the child before exec
            kernel.setns(user_fd, kernel.CLONE_NEWUSER)
            kernel.setns(net_fd, kernel.CLONE_NEWNET)

        try:
            done = subprocess.run(  # noqa: S603 - fixed argument list
                [_which(COUNTERS[0]), *COUNTERS[1:]],
                capture_output=True,
                timeout=STEP_TIMEOUT,
                check=False,
                preexec_fn=enter,  # single-threaded; setns must precede exec
            )
        except (OSError, subprocess.SubprocessError, JobNetError) as exc:
            say(f"counters not read: {exc}")
            return None
        if done.returncode != 0:
            say(f"counters not read: {done.stderr.decode(errors='replace').strip()[:200]}")
            return None
        return done.stdout

    def cleanup(self) -> None:
        self.stop_user_net()
        for fd in self.ns_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.ns_fds = []
        import shutil  # after the job

        shutil.rmtree(self.tmp, ignore_errors=True)


def run_recipe(
    recipe: Recipe, argv: Sequence[str], hooks: Hooks, workdir: str | None = None
) -> int:
    """Run the job ``argv`` in namespaces made by ``recipe``; its wait status.

    JobNetError (and nothing started any more) when the namespace could not be made.
    ``workdir``: where the run's private directory goes (default: TMPDIR, else /tmp).
    """
    kernel.set_subreaper()
    kernel.set_dumpable(False)
    state = _Run(recipe, argv, hooks, workdir)
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
    """Forward signals to the init until it ends; the job's wait status. The caller
    hears of the start once the init reports the job's exec (nothing of the caller's
    competes with the job's start), or at the end if it never did."""
    job_status: int | None = None
    reported = b""
    open_fds = [state.signals.read_fd, status_fd]
    started = False
    while "init" not in state.ended:
        if not started and reported.startswith(STARTED):
            started = True
            state.hooks.started(_objects(state, init_pid))
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
    if not started:
        state.hooks.started(_objects(state, init_pid))
    with contextlib.suppress(ValueError):
        job_status = int(reported.removeprefix(STARTED).strip() or b"x")
    if job_status is None:  # the init itself was killed
        job_status = state.ended["init"]
    counters = state.counters()
    state.cleanup()
    state.reap_all()
    state.hooks.ended(os.waitstatus_to_exitcode(job_status), counters)
    with contextlib.suppress(OSError):
        os.close(state.lifeline)
    state.signals.close()
    return job_status


def _objects(state: _Run, init_pid: int) -> dict[str, str]:
    """The processes gc may end should this wrapper die (the namespace goes with them)."""
    objects = {"net": state.recipe.user_net, "pid": str(os.getpid()), "init_pid": str(init_pid)}
    if state.net_pid is not None:
        objects["net_pid"] = str(state.net_pid)
    return objects


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
    recipe = state.recipe
    try:
        for argv, text in recipe.early:
            _command(argv, text)
        for name, value in recipe.sysctls.items():
            with open(f"/proc/sys/net/{name}", "w") as handle:
                handle.write(value)
        _command(["nft", "-f", "-"], recipe.rules)
    except (LarkpsError, OSError) as exc:
        fail(str(exc))
    if os.read(go, 1) != b"G":  # the tap is there
        os._exit(1)
    os.close(go)
    try:
        for argv, text in recipe.on_tap:
            _command(argv, text)
        if recipe.user_net == SLIRP4NETNS:
            _wait_ipv6(READY_TIMEOUT)
    except (LarkpsError, OSError) as exc:
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
    exec_r, exec_w = os.pipe()  # close-on-exec: EOF once the job has exec'd (or died)
    with held():  # a signal forwarded before the job's handlers are reset stays pending
        job = os.fork()
        if job == 0:
            signals.close()
            for fd in (status_w, life_r, exec_r):
                os.close(fd)
            _exec_job(state.argv)
    os.close(exec_w)
    with contextlib.suppress(OSError):
        os.read(exec_r, 1)
        os.close(exec_r)
        os.write(status_w, STARTED)
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
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
        os.execvp(argv[0], list(argv))  # noqa: S606 - the job's own argv, as the starter gave it
    except OSError as exc:
        say(f"cannot run {argv[0]}: {exc.strerror}")
        os._exit(127 if exc.errno == 2 else 126)
    os._exit(127)


# ---------------------------------------------------------------------------------------------
# Helpers


def _which(name: str) -> str:
    """The program ``name`` on PATH, else in the system's directories (the starter may
    give the job no PATH)."""
    for path in (os.environ.get("PATH", os.defpath), FALLBACK_PATH):
        for directory in filter(None, path.split(os.pathsep)):
            candidate = os.path.join(directory, name)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
    raise JobNetError(f"{name} not found")


def _private_dir(parent: str | None) -> str:
    """A new directory of this user's alone for the run's pidfile and sockets."""
    base = parent or os.environ.get("TMPDIR") or "/tmp"  # noqa: S108 - made 0700, new
    for attempt in range(100):
        path = os.path.join(base, f"larkps-job-{os.getpid()}-{time.monotonic_ns()}-{attempt}")
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        except OSError as exc:
            raise JobNetError(f"cannot make a directory in {base}: {exc.strerror}") from None
        return path
    raise JobNetError(f"cannot make a directory in {base}")  # pragma: no cover


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
    """Run a command (text, if any, on its stdin: ``nft -f -``); JobNetError if it fails."""
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
        raise JobNetError(f"{' '.join(argv)}: {exc}") from None
    if done.returncode != 0:
        first = (done.stderr.decode(errors="replace").strip().splitlines() or ["failed"])[0]
        raise JobNetError(f"{' '.join(argv)}: {first}")


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


def _routed(net: str, families: Sequence[str]) -> bool:
    """Whether the namespace whose /proc/PID/net is ``net`` has a default route on the
    tap for each family. pasta sets the tap's link, MTU and addresses, then each
    family's routes, and only then (some 30 ms later, once it has set itself up) writes
    its pidfile: frames the job sends meanwhile wait in the tap's queue. pasta uses
    IPv6 when the host has a default route for it."""
    return all(_default_route(net, family, TAP) for family in families)


def _default_route(net: str, family: str, device: str | None = None) -> bool:
    """A default route of ``family`` in /proc/.../net (on ``device``, if given)."""
    if family == "ipv4":  # destination and mask
        name, zero = "route", ("00000000", "00000000")
    else:  # destination and prefix length
        name, zero = "ipv6_route", ("0" * 32, "00")
    try:
        with open(os.path.join(net, name)) as table:
            for line in table:
                fields = line.split()
                if not fields or fields[0] == "Iface":
                    continue
                iface = fields[0] if family == "ipv4" else fields[-1]
                destination = (fields[1], fields[7]) if family == "ipv4" else tuple(fields[:2])
                if destination == zero and (device is None or iface == device):
                    return True
    except OSError:
        return False
    return False


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
    import json
    import socket

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
