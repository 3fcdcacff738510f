"""``larkps-jobnet-helper``: the root-owned helper of privileged mode, reached through sudo.

The job wrapper, running as the job's user, runs
``/usr/bin/sudo -n /opt/larkps/venv/bin/larkps-jobnet-helper [--] JOB ARGV...``
(config/condor/larkps-jobnet.sudoers allows exactly that). The trust boundary:

- who: the job's uid and gid are the caller's (``SUDO_UID``/``SUDO_GID``, set by sudo),
  its groups those the caller holds; the job never runs as root.
- what: the node's rules come only from the helper's own root-owned config
  (``/etc/larkps/jobnet.toml``; ``LARKPS_JOBNET_CONFIG`` only when that file and its
  directories are root's and not writable by others). The job ad is the caller's own
  file (read with the caller's rights, in the caller's scratch directory) and is
  treated as a request: :func:`larkps.jobnet.request.plan_job` validates every value
  and refuses what the node does not allow.
- the job's environment (which sudo resets) is the caller's, read from the parent
  process; it reaches only the job, never a command the helper runs as root.

The helper then makes the job's network (:mod:`larkps.jobnet.privileged`), runs the
job inside it as the caller, forwards signals, reaps orphans, and exits with the
job's status. A guard process, started before anything is made, removes everything
once the helper is gone, however it ends.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import stat
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from larkps.config.jobnet import Mode, NodeJobNet, load_jobnet
from larkps.errors import LarkpsError
from larkps.jobnet import kernel, privileged
from larkps.jobnet.chirp import JobUser
from larkps.jobnet.jobad import (
    ERROR_FILE_VARIABLE,
    JOB_AD_VARIABLE,
    MACHINE_AD_VARIABLE,
    MAX_AD_BYTES,
    parse_ad,
)
from larkps.jobnet.recorder import NodeRecorder
from larkps.jobnet.request import JobPlan, plan_job
from larkps.jobnet.supervise import FORWARDED, PREFIX, exit_like, reap

CONFIG = "/etc/larkps/jobnet.toml"
HELPER_CONFIG_VARIABLE = "LARKPS_JOBNET_CONFIG"
SCRATCH_VARIABLE = "_CONDOR_SCRATCH_DIR"
MAX_ENVIRON = 4 << 20


class HelperRefused(LarkpsError):
    """The helper will not run this job (the job is not started)."""


class Stopped(LarkpsError):
    """A signal came before the job started: the helper ends as if the job had got it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by signal {signum} before the job started")


@dataclass(frozen=True, slots=True)
class Caller:
    """The user sudo ran the helper for: the job's identity (its groups from the group
    database, as the starter's initgroups gives them)."""

    uid: int
    gid: int
    groups: tuple[int, ...]
    name: str
    pid: int  # the process that ran sudo's command (sudo, or the caller itself)


def _status_ids(pid: int) -> dict[str, list[int]]:
    fields: dict[str, list[int]] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Uid", "Gid"):
            fields[key] = [int(v) for v in value.split()]
    return fields


def caller_from_sudo(environ: Mapping[str, str]) -> Caller:
    """The caller as sudo names it, checked against the parent process's real ids."""
    uid_text, gid_text = environ.get("SUDO_UID", ""), environ.get("SUDO_GID", "")
    if not all(t.isascii() and t.isdigit() for t in (uid_text, gid_text)):
        raise HelperRefused("run through sudo (SUDO_UID and SUDO_GID are not set)")
    uid, gid = int(uid_text), int(gid_text)
    if uid == 0 or gid == 0:
        raise HelperRefused("jobs never run as root")
    parent = os.getppid()
    if _status_ids(parent).get("Uid", [None])[0] != uid:
        raise HelperRefused("the parent process is not the caller sudo names")
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        raise HelperRefused(f"uid {uid} has no passwd entry") from None
    groups = tuple(g for g in os.getgrouplist(name, gid) if g != 0)
    return Caller(uid, gid, groups, name, parent)


def caller_environment(caller: Caller) -> dict[str, str]:
    """The environment the caller ran sudo with (the job's environment)."""
    data = Path(f"/proc/{caller.pid}/environ").read_bytes()[:MAX_ENVIRON]
    env: dict[str, str] = {}
    for item in data.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep and key:
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


# --- the config ---------------------------------------------------------------------


def _root_only(path: Path) -> str | None:
    """Why path (or a directory above it) could be changed by someone but root; None: safe."""
    for part in [path, *path.parents]:
        try:
            info = part.lstat() if part == path else part.stat()
        except OSError as exc:
            return f"{part}: {exc.strerror}"
        if part == path and not stat.S_ISREG(info.st_mode):
            return f"{part} is not a regular file"
        if info.st_uid != 0:
            return f"{part} is not owned by root"
        writable = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        if writable and not (part != path and info.st_mode & stat.S_ISVTX):
            return f"{part} is writable by group or others"
    return None


def config_path(environ: Mapping[str, str]) -> Path:
    """The helper's config: CONFIG, or LARKPS_JOBNET_CONFIG if only root can change it."""
    path = Path(environ.get(HELPER_CONFIG_VARIABLE) or CONFIG)
    if not path.is_absolute():
        raise HelperRefused(f"{HELPER_CONFIG_VARIABLE} must be an absolute path")
    problem = _root_only(path)
    if problem is not None:
        raise HelperRefused(f"config refused: {problem}")
    return path


def load_node(environ: Mapping[str, str]) -> NodeJobNet:
    node = load_jobnet(config_path(environ))
    if node.mode is not Mode.PRIVILEGED:
        raise HelperRefused('the helper\'s config has mode = "rootless": privileged mode is off')
    return node


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
    directory = Path(os.path.realpath(scratch))
    if Path(os.path.realpath(os.path.dirname(ad_path))) != directory:
        raise HelperRefused(f"{JOB_AD_VARIABLE} is not in the job's scratch directory")
    info = directory.stat()
    if info.st_uid != caller.uid:
        raise HelperRefused(f"the scratch directory {directory} is not the caller's")


def job_ads(env: Mapping[str, str], caller: Caller) -> tuple[dict[str, object], dict[str, object]]:
    ad_path = env.get(JOB_AD_VARIABLE, "")
    if not ad_path:
        raise HelperRefused(f"{JOB_AD_VARIABLE} is not set: not started by an HTCondor starter")
    check_scratch(ad_path, env, caller)
    job = parse_ad(read_caller_file(ad_path, caller, JOB_AD_VARIABLE), ad_path)
    machine_path = env.get(MACHINE_AD_VARIABLE, "")
    machine: dict[str, object] = {}
    if machine_path:
        text = read_caller_file(machine_path, caller, MACHINE_AD_VARIABLE)
        machine = parse_ad(text, machine_path)
    return job, machine


# --- the guard: removes what was made once the helper is gone --------------------------


class Guard:
    """A process of its own session that removes the recorded objects when told or orphaned.

    The helper writes one ``kind name`` line per object as soon as it exists; at
    end of file (the helper finished, or died) the guard removes them all, newest
    first, and exits. Should the guard itself be killed, the helper removes them.
    """

    def __init__(self) -> None:
        self.objects: list[tuple[str, str]] = []
        read_end, self._write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the guard
            os.close(self._write)
            _guard_main(read_end)
        os.close(read_end)
        self.pid = pid
        self.tag = privileged.owner_tag(pid)
        self.exit_status: int | None = None

    def record(self, kind: str, name: str) -> None:
        """Note one object here and with the guard (no signal handler runs in between)."""
        old = signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
        try:
            self.objects.append((kind, name))
            os.write(self._write, f"{kind} {name}\n".encode())
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def finish(self) -> list[str]:
        """Let the guard remove everything; wait for it; the problems left."""
        with contextlib.suppress(OSError):
            os.close(self._write)
        if self.exit_status is None:
            _, status = os.waitpid(self.pid, 0)
            self.exit_status = status
        if os.WIFEXITED(self.exit_status) and os.WEXITSTATUS(self.exit_status) == 0:
            return []
        return privileged.remove(self.objects)  # the guard died: do it here


def _guard_main(read_end: int) -> NoReturn:
    """The guard's whole life: collect object lines until EOF, remove them, exit."""
    status = 1
    try:
        os.setsid()
        for sig in FORWARDED:
            signal.signal(sig, signal.SIG_IGN)
        objects = []
        buffer = b""
        while chunk := os.read(read_end, 4096):
            buffer += chunk
        for line in buffer.decode().splitlines():
            kind, _, name = line.partition(" ")
            objects.append((kind, name))
        problems = privileged.remove(objects)
        for problem in problems:
            os.write(2, f"{PREFIX}could not remove {problem}\n".encode())
        status = 0 if not problems else 1
    finally:
        os._exit(status)


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
    """Forward signals to the job, reap every child, remember the job's status."""

    def __init__(self, guard: Guard) -> None:
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

    def wait(self, job: int) -> int:
        """Reap until the job ends; its wait status."""
        self.job = job
        while True:
            pid, status = os.waitpid(-1, 0)
            if pid == self.guard.pid:
                self.guard.exit_status = status
            elif pid == job:
                self.ended = True
                return status

    def reap_rest(self) -> None:
        for pid, status in reap():
            if pid == self.guard.pid:
                self.guard.exit_status = status


def run_job(
    plan: JobPlan,
    node: NodeJobNet,
    caller: Caller,
    argv: Sequence[str],
    env: Mapping[str, str],
    recorder: privileged.HelperRecorder | None = None,
) -> int:
    """Make the network, run the job in it, remove everything; the job's wait status."""
    guard = Guard()
    supervisor = Supervisor(guard)
    status: int | None = None
    try:
        layout = privileged.make(plan, node, guard.tag, guard.record)
        for line in (
            *plan.rationale,
            f"netns {layout.names.netns}, address " + ", ".join(layout.addresses()),
        ):
            tell(line)
        if recorder is not None:
            recorder.start(plan, list(guard.objects))
        status = supervisor.wait(start_job(argv, env, layout.names.netns, caller))
        counters = privileged.counters(layout)
        privileged.kill_netns_processes(layout.names.netns)
        supervisor.reap_rest()
        if recorder is not None:
            recorder.end(plan, os.waitstatus_to_exitcode(status), counters)
    finally:
        for sig in FORWARDED:
            signal.signal(sig, signal.SIG_IGN)
        problems = guard.finish()
        supervisor.reap_rest()
        for problem in problems:
            tell(f"could not remove {problem}")
    assert status is not None
    return status


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


def main(argv: Sequence[str] | None = None) -> int:
    """``larkps-jobnet-helper [--] JOB ARGV...`` under sudo."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--"]:
        args = args[1:]
    own_env = dict(os.environ)
    os.environ.clear()
    os.environ["PATH"] = privileged.PATH
    if os.geteuid() != 0:
        tell("must run as root (through sudo)")
        return 1
    caller: Caller | None = None
    env: dict[str, str] = {}
    try:
        caller = caller_from_sudo(own_env)
        env = caller_environment(caller)
        if not args:
            raise HelperRefused("no job command given")
        node = load_node(own_env)
        job, machine = job_ads(env, caller)
        plan = plan_job(job, machine, node)
    except LarkpsError as exc:
        return refuse_job(str(exc), env, caller)
    try:
        user = JobUser(caller.uid, caller.gid, caller.groups)  # condor_chirp runs as the job's user
        status = run_job(plan, node, caller, args, env, NodeRecorder(node.ledger, env, user))
    except Stopped as stop:  # everything made is removed again by then
        exit_like(stop.signum)  # a wait status of "killed by signum"
    except (LarkpsError, OSError) as exc:
        return refuse_job(str(exc), env, caller)
    exit_like(status)
