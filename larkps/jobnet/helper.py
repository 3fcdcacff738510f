"""``larkps-jobnet-helper``: the root-owned helper of privileged mode, reached through sudo.

The job wrapper, running as the job's user, runs
``/usr/bin/sudo -n /opt/larkps/venv/bin/larkps-jobnet-helper [--] JOB ARGV...``
(config/condor/larkps-jobnet.sudoers allows exactly that). The trust boundary:

- who: the job's uid and gid are the caller's (``SUDO_UID``/``SUDO_GID``, set by sudo,
  checked against the parent process's real ids), its groups those of the group
  database; the job never runs as root.
- what: the node's rules come only from root's own config (``/etc/larkps/jobnet.toml``,
  :mod:`larkps.jobnet.helperconf`). The job ad is the caller's own file (read with
  the caller's rights, in the caller's scratch directory) and is treated as a
  request: :func:`larkps.jobnet.request.plan_job` validates every value and refuses
  what the node does not allow.
- the job's environment (which sudo resets) is the caller's, read from the parent
  process; it reaches only the job, never a command run as root.

Where the node runs the builder (``larkps jobnet builder``, a root service on a
socket only root can use), the helper hands it the caller and the ads' texts; the
builder plans, makes the job's network (streaming each object to the helper as it
exists) and removes it again when the helper says the job ended, or when the
helper's connection ends however it ends. This module then loads nothing beyond
os, signal, socket, json and ctypes, so that the job starts soon. Without a
builder, :mod:`larkps.jobnet.helper_local` plans and builds in this process.
Either way the helper runs the job inside the network as the caller, forwards
signals, reaps orphans, and exits with the job's status. The command itself is
:func:`larkps.jobnet.helper_main.main`.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import stat
import sys
import time
from collections.abc import Iterator, Mapping, Sequence

from larkps import TYPE_CHECKING
from larkps.errors import LarkpsError
from larkps.jobnet import kernel
from larkps.jobnet.helperconf import HelperRefused
from larkps.jobnet.jobad import (
    ERROR_FILE_VARIABLE,
    JOB_AD_VARIABLE,
    MACHINE_AD_VARIABLE,
    MAX_AD_BYTES,
    AdText,
)
from larkps.jobnet.supervise import FORWARDED, PREFIX, exit_like, held, reap
from larkps.jobnet.wire import Channel, WireError, peer_credentials

if TYPE_CHECKING:
    from typing import Protocol

    class GuardProcess(Protocol):
        """A child whose end the supervisor notes (helper_local's guard)."""

        pid: int
        exit_status: int | None


SCRATCH_VARIABLE = "_CONDOR_SCRATCH_DIR"
BUILDER_VARIABLE = "LARKPS_JOBNET_BUILDER"
BUILDER_SOCKET = "/run/larkps-jobnet-builder/builder.sock"
MAX_ENVIRON = 4 << 20
MAX_BUILDER_LINE = 1 << 20  # the largest line the builder sends
BUILD_TIMEOUT = 60.0  # seconds the builder has to make a network, or to remove it
CONNECT_TIMEOUT = 5.0


class Stopped(LarkpsError):
    """A signal came before the job started: the helper ends as if the job had got it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by signal {signum} before the job started")


class BuilderUnavailable(LarkpsError):
    """No builder answered as it should: the helper builds the network itself."""


class Caller:
    """The user sudo ran the helper for: the job's identity (its groups from the group
    database, as the starter's initgroups gives them)."""

    __slots__ = ("gid", "groups", "name", "pid", "uid")

    def __init__(self, uid: int, gid: int, groups: tuple[int, ...], name: str, pid: int) -> None:
        self.uid, self.gid, self.groups, self.name = uid, gid, groups, name
        self.pid = pid  # the process that ran sudo's command (sudo, or the caller itself)

    def doc(self) -> dict[str, object]:
        return {"uid": self.uid, "gid": self.gid, "groups": list(self.groups), "name": self.name}


def _status_uid(pid: int) -> int | None:
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as handle:
        for line in handle:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    return None


def caller_from_sudo(environ: Mapping[str, str]) -> Caller:
    """The caller as sudo names it, checked against the parent process's real ids."""
    uid_text, gid_text = environ.get("SUDO_UID", ""), environ.get("SUDO_GID", "")
    if not all(t.isascii() and t.isdigit() for t in (uid_text, gid_text)):
        raise HelperRefused("run through sudo (SUDO_UID and SUDO_GID are not set)")
    uid, gid = int(uid_text), int(gid_text)
    if uid == 0 or gid == 0:
        raise HelperRefused("jobs never run as root")
    parent = os.getppid()
    if _status_uid(parent) != uid:
        raise HelperRefused("the parent process is not the caller sudo names")
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        raise HelperRefused(f"uid {uid} has no passwd entry") from None
    groups = tuple(g for g in os.getgrouplist(name, gid) if g != 0)
    return Caller(uid, gid, groups, name, parent)


def caller_environment(caller: Caller) -> dict[str, str]:
    """The environment the caller ran sudo with (the job's environment)."""
    with open(f"/proc/{caller.pid}/environ", "rb") as handle:
        data = handle.read(MAX_ENVIRON)
    env: dict[str, str] = {}
    for item in data.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep and key:
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


# --- the job's ads, read with the caller's rights --------------------------------------


@contextlib.contextmanager
def as_caller(caller: Caller) -> Iterator[None]:
    """Effective ids of the caller for the block (file access checks are the caller's)."""
    groups = os.getgroups()
    os.setgroups(list(caller.groups))
    os.setegid(caller.gid)
    os.seteuid(caller.uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)
        os.setgroups(groups)


def read_caller_file(path: str, caller: Caller, variable: str) -> str:
    """A file the caller may read, not a link, at most MAX_AD_BYTES."""
    if not path.startswith("/"):
        raise HelperRefused(f"{variable} must be an absolute path")
    with as_caller(caller):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise HelperRefused(f"{variable}: cannot read {path} ({exc.strerror})") from None
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise HelperRefused(f"{variable}: {path} is not a regular file")
            data = handle.read(MAX_AD_BYTES + 1)
    if len(data) > MAX_AD_BYTES:
        raise HelperRefused(f"{variable}: {path} is larger than {MAX_AD_BYTES} bytes")
    return data.decode("utf-8", errors="replace")


def check_scratch(ad_path: str, env: Mapping[str, str], caller: Caller) -> None:
    """The job ad must sit in the caller's own scratch directory (the starter's dir_N)."""
    scratch = env.get(SCRATCH_VARIABLE, "")
    if not scratch.startswith("/"):
        raise HelperRefused(f"{SCRATCH_VARIABLE} is not set to an absolute path")
    directory = os.path.realpath(scratch)
    if os.path.realpath(os.path.dirname(ad_path)) != directory:
        raise HelperRefused(f"{JOB_AD_VARIABLE} is not in the job's scratch directory")
    if os.stat(directory).st_uid != caller.uid:
        raise HelperRefused(f"the scratch directory {directory} is not the caller's")


def job_ad_texts(env: Mapping[str, str], caller: Caller) -> tuple[AdText, AdText | None]:
    """(path, text) of the job ad and of the machine ad (None when there is none)."""
    ad_path = env.get(JOB_AD_VARIABLE, "")
    if not ad_path:
        raise HelperRefused(f"{JOB_AD_VARIABLE} is not set: not started by an HTCondor starter")
    check_scratch(ad_path, env, caller)
    job = (ad_path, read_caller_file(ad_path, caller, JOB_AD_VARIABLE))
    machine_path = env.get(MACHINE_AD_VARIABLE, "")
    if not machine_path:
        return job, None
    return job, (machine_path, read_caller_file(machine_path, caller, MACHINE_AD_VARIABLE))


# --- the job ------------------------------------------------------------------------


MS_SLAVE, MNT_DETACH = 0x80000, 2


def own_sysfs() -> None:
    """A mount namespace of the job's own whose /sys shows its network namespace (as
    ``ip netns exec`` gives): tools that list /sys/class/net see eth0 and lo only."""
    kernel.unshare(kernel.CLONE_NEWNS)
    kernel.mount(None, "/", None, kernel.MS_REC | MS_SLAVE)  # nothing done here reaches the host
    kernel.umount("/sys", MNT_DETACH)
    kernel.mount("sysfs", "/sys", "sysfs", 0)


def become_job(netns: str, caller: Caller, parent: int) -> None:
    """In the forked child: enter the namespace and become the caller, for good."""
    fd = os.open(f"/run/netns/{netns}", os.O_RDONLY | os.O_CLOEXEC)
    kernel.setns(fd, kernel.CLONE_NEWNET)
    os.close(fd)
    own_sysfs()
    os.setgroups(list(caller.groups))
    os.setresgid(caller.gid, caller.gid, caller.gid)
    os.setresuid(caller.uid, caller.uid, caller.uid)
    kernel.no_new_privs()
    kernel.die_with_parent(signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(137)  # the helper is gone already
    for sig in FORWARDED:
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def start_job(argv: Sequence[str], env: Mapping[str, str], netns: str, caller: Caller) -> int:
    """Fork the job (with the forwarded signals :func:`held`); its pid."""
    parent = os.getpid()
    pid = os.fork()
    if pid != 0:
        return pid
    try:
        become_job(netns, caller, parent)
        os.execvpe(argv[0], list(argv), dict(env))  # noqa: S606 - the job's argv, as the caller
    except BaseException as exc:  # noqa: BLE001 - the child must never return
        os.write(2, f"{PREFIX}cannot run {argv[0]}: {exc}\n".encode(errors="replace"))
    os._exit(127)


class Supervisor:
    """Forward signals to the job, reap every child, remember the job's status (and the
    guard's, when :mod:`~larkps.jobnet.helper_local` has one)."""

    def __init__(self, guard: GuardProcess | None = None) -> None:
        self.guard = guard
        self.job: int | None = None
        self.ended = False  # the job was reaped: its pid may be another process's now
        kernel.set_subreaper()
        for sig in FORWARDED:
            signal.signal(sig, self._forward)

    def _forward(self, signum: int, _frame: object) -> None:
        if self.ended:
            return
        if self.job is None:
            raise Stopped(signum)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.job, signum)

    def _reaped(self, pid: int, status: int) -> None:
        if self.guard is not None and pid == self.guard.pid:
            self.guard.exit_status = status

    def run(self, argv: Sequence[str], env: Mapping[str, str], netns: str, caller: Caller) -> int:
        """Start the job (signals held until its pid is noted); its wait status."""
        with held():
            self.job = start_job(argv, env, netns, caller)
        return self._wait(self.job)

    def _wait(self, job: int) -> int:
        """Reap until the job ends; its wait status."""
        while True:
            pid, status = os.waitpid(-1, 0)
            if pid == job:
                self.ended = True
                return status
            self._reaped(pid, status)

    def reap_rest(self) -> None:
        for pid, status in reap():
            self._reaped(pid, status)


def quiet_signals() -> None:
    """From here on the helper only finishes: forwarded signals are ignored."""
    for sig in FORWARDED:
        signal.signal(sig, signal.SIG_IGN)


def tell(message: str) -> str:
    """One line to the job's stderr, prefixed; the line."""
    line = f"{PREFIX}{message}"
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
    return line


def refuse_job(message: str, env: Mapping[str, str], caller: Caller | None) -> int:
    """One line to stderr and to the wrapper's error file (written as the caller)."""
    line = tell(message)
    path = env.get(ERROR_FILE_VARIABLE, "")
    if path.startswith("/") and caller is not None:
        with contextlib.suppress(OSError), as_caller(caller):
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "a") as handle:
                handle.write(line + "\n")
    return 1


# --- through the builder ----------------------------------------------------------------


def builder_socket(own_env: Mapping[str, str]) -> str | None:
    """The builder's socket: ``LARKPS_JOBNET_BUILDER`` (empty: none), else BUILDER_SOCKET
    when it exists; None: build here."""
    if BUILDER_VARIABLE in own_env:
        return own_env[BUILDER_VARIABLE] or None
    return BUILDER_SOCKET if os.path.exists(BUILDER_SOCKET) else None


def connect(path: str) -> Channel:
    """A channel to the builder at path, whose process the kernel says is root's."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(CONNECT_TIMEOUT)
        sock.connect(path)
        if peer_credentials(sock)[1] != 0:
            raise BuilderUnavailable(f"the builder at {path} does not run as root")
    except OSError as exc:
        sock.close()
        raise BuilderUnavailable(f"no builder at {path} ({exc.strerror or exc})") from None
    except BuilderUnavailable:
        sock.close()
        raise
    return Channel(sock, MAX_BUILDER_LINE)


class BuiltRun:
    """One job's network as the builder makes it: the objects it reported (so that
    the helper can remove them should the builder be gone), its answers."""

    def __init__(self, channel: Channel, path: str) -> None:
        self.channel = channel
        self.path = path
        self.objects: list[tuple[str, str]] = []

    def request(self, caller: Caller, job: AdText, machine: AdText | None) -> dict[str, object]:
        """Send the job; the builder's ready answer ({"refused": ...} when it will not)."""
        self.channel.send(
            {
                "caller": caller.doc(),
                "job_ad": list(job),
                "machine_ad": None if machine is None else list(machine),
            }
        )
        while True:
            doc = self.channel.receive(time.monotonic() + BUILD_TIMEOUT)
            if doc is None:
                raise WireError("it closed the connection before the network was made")
            item = doc.get("object")
            if isinstance(item, list) and len(item) == 2 and all(isinstance(s, str) for s in item):
                self.objects.append((item[0], item[1]))
            elif isinstance(doc.get("ready"), dict) or isinstance(doc.get("refused"), str):
                return doc
            else:
                raise WireError("an answer that is neither an object, ready nor refused")

    def end(self, exit_status: int) -> dict[str, object]:
        """Tell the builder the job ended; its done answer, once everything is removed."""
        self.channel.send({"ended": exit_status})
        doc = self.channel.receive(time.monotonic() + BUILD_TIMEOUT)
        if doc is None or not isinstance(doc.get("done"), dict):
            raise WireError("no done answer")
        done: dict[str, object] = doc["done"]  # type: ignore[assignment]
        self.objects = []
        return done

    def abandon(self) -> None:
        """End the run early: the builder removes everything once the connection ends;
        wait for it to close, and remove what is left if it does not."""
        with contextlib.suppress(OSError):
            self.channel.sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + BUILD_TIMEOUT
        with contextlib.suppress(WireError):
            while self.channel.receive(deadline) is not None:
                pass
            self.objects = []  # the builder closed: it removed them
        self.remove_left()

    def remove_left(self) -> None:
        """Remove the objects the builder made and did not say it removed."""
        if not self.objects:
            return
        from larkps.jobnet import privileged

        for problem in privileged.remove(self.objects):
            tell(f"could not remove {problem}")
        self.objects = []


def run_built(path: str, caller: Caller, argv: Sequence[str], env: Mapping[str, str]) -> int:
    """Run the job in the network the builder makes; returns only to refuse it
    (BuilderUnavailable: nothing is left, build here instead)."""
    ads = job_ad_texts(env, caller)
    run = BuiltRun(connect(path), path)
    supervisor = Supervisor()
    try:
        answer = run.request(caller, *ads)
    except WireError as exc:
        quiet_signals()
        run.abandon()
        raise BuilderUnavailable(f"the builder at {path}: {exc}") from None
    except Stopped as stop:
        quiet_signals()
        run.abandon()
        exit_like(stop.signum)  # a wait status of "killed by signum"
    if "refused" in answer:
        quiet_signals()
        return refuse_job(str(answer["refused"]), env, caller)
    status = _run_job(run, supervisor, answer["ready"], argv, env, caller)  # type: ignore[arg-type]
    done = _finish(run, status)
    supervisor.reap_rest()
    _report(done, env, caller)
    exit_like(status)


def _run_job(
    run: BuiltRun,
    supervisor: Supervisor,
    ready: dict[str, object],
    argv: Sequence[str],
    env: Mapping[str, str],
    caller: Caller,
) -> int:
    try:
        for line in _lines(ready.get("say")):
            tell(line)
        netns = ready.get("netns")
        if not isinstance(netns, str) or not netns.startswith("larkps-") or "/" in netns:
            raise WireError(f"a ready answer with no usable netns ({netns!r})")
        return supervisor.run(argv, env, netns, caller)
    except Stopped as stop:
        quiet_signals()
        run.abandon()
        exit_like(stop.signum)
    except (WireError, OSError) as exc:
        quiet_signals()
        run.abandon()
        exit_like(_refused_status(refuse_job(f"the job did not start: {exc}", env, caller)))
    finally:
        quiet_signals()


def _refused_status(code: int) -> int:
    return code << 8  # the wait status of exit(code)


def _finish(run: BuiltRun, status: int) -> dict[str, object]:
    """The builder's done answer; with the builder gone, the helper removes what it made."""
    try:
        return run.end(os.waitstatus_to_exitcode(status))
    except WireError as exc:
        tell(f"the builder at {run.path}: {exc}; the helper removes the job's network")
        run.remove_left()
        return {}


def _report(done: Mapping[str, object], env: Mapping[str, str], caller: Caller) -> None:
    """The builder's lines and problems on the job's stderr, its figures into the job ad."""
    for line in _lines(done.get("say")):
        tell(line)
    for problem in _lines(done.get("problems")):
        tell(f"could not remove {problem}")
    values = done.get("attributes")
    if isinstance(values, dict) and values:
        from larkps.jobnet.chirp import JobUser, chirp  # after the job: not on its start

        chirp(values, env, JobUser(caller.uid, caller.gid, caller.groups))


def _lines(value: object) -> list[str]:
    if not isinstance(value, list):
        return []
    return ["".join(c if c.isprintable() else "?" for c in v) for v in value if isinstance(v, str)]
