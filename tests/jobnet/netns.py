"""Shared fixtures of the jobnet tests: a test user, a peer behind a veth pair, job runs.

A *peer* is a network namespace made by the test, joined to the host by a veth
pair: the host end holds 198.19.N.1/24 and 2001:db8:19N::1/64, the peer end .2 and
::2 (and .3/::3, for a destination a job may not be allowed to reach). A rootless
job reaches the peer through pasta or slirp4netns, which open host sockets; the
peer reaches a job's forwarded ports at the host end's address.

Jobs run through the real wrapper (``python -m larkps.jobnet.wrap``) as an ordinary
user, started by ``starter.py`` (root: its own mount namespace with a 0666 tun node,
a subreaper that reports what the wrapper left behind). Everything a fixture
makes is removed whatever the test does. Other test modules may add helpers at
the end of this file.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STARTER = Path(__file__).with_name("starter.py")
TEST_USER = "larkjob"
TIMEOUT = 30.0  # seconds, for each helper command
TOOLS = {
    "ip": "iproute2",
    "tc": "iproute2",
    "nft": "nftables",
    "pasta": "passt",
    "slirp4netns": "slirp4netns",
    "iperf3": "iperf3",
    "mount": "mount",
    "useradd": "passwd",
}


def missing() -> str | None:
    """Why the real-traffic tests cannot run here, or None."""
    if sys.platform != "linux":
        return "Linux only"
    if os.geteuid() != 0:
        return "needs root (a test user, network namespaces, a private tun node)"
    for tool, package in TOOLS.items():
        if shutil.which(tool) is None:
            return f"{tool} not installed (Debian package {package})"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun (CONFIG_TUN)"
    if job_python() is None:
        return f"no Python {sys.version_info.major}.{sys.version_info.minor} the test user can run"
    return None


def sh(
    *argv: str, check: bool = True, timeout: float = TIMEOUT
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check:
        assert done.returncode == 0, f"{' '.join(argv)}: {done.stderr.strip()}"
    return done


# ---------------------------------------------------------------------------------------------
# The test user and the Python it runs the wrapper with


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int


def ensure_user(name: str = TEST_USER) -> User:
    """An ordinary user without a home or a login shell, made if absent (and kept)."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        sh("useradd", "--system", "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", name)
        entry = pwd.getpwnam(name)
    return User(entry.pw_name, entry.pw_uid, entry.pw_gid)


def _others_can_run(path: str) -> bool:
    real = Path(os.path.realpath(path))
    if not real.stat().st_mode & 0o001:
        return False
    return all(parent.stat().st_mode & 0o001 for parent in real.parents)


def job_python() -> str | None:
    """This interpreter if every user may run it, else the system one of the same version."""
    if _others_can_run(sys.executable):
        return sys.executable
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = shutil.which(version, path="/usr/bin:/usr/local/bin")
    return system if system and _others_can_run(system) else None


def wrapper_command() -> tuple[list[str], dict[str, str]]:
    """argv prefix and environment that run this checkout's wrapper as any user."""
    python = job_python()
    assert python is not None
    paths = [str(ROOT), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    env = {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)), "PYTHONDONTWRITEBYTECODE": "1"}
    return [python, "-m", "larkps.jobnet.wrap"], env


# ---------------------------------------------------------------------------------------------
# A peer behind a veth pair


@dataclass(frozen=True)
class Peer:
    ns: str
    host_dev: str
    n: int  # the third octet / the v6 subnet

    def address(self, family: int, host: int = 2) -> str:
        """The peer's (host=2, 3) or the host end's (host=1) address."""
        return f"198.19.{self.n}.{host}" if family == 4 else f"2001:db8:19{self.n:02x}::{host}"

    def run(
        self, *argv: str, check: bool = True, timeout: float = TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        return sh("ip", "netns", "exec", self.ns, *argv, check=check, timeout=timeout)

    def popen(self, *argv: str, cwd: Path | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["ip", "netns", "exec", self.ns, *argv],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def _free_subnet() -> int:
    routes = sh("ip", "route", "show").stdout
    for _ in range(50):
        n = secrets.randbelow(200) + 20
        if f"198.19.{n}.0/24" not in routes:
            return n
    raise AssertionError("no free 198.19.N.0/24 for a test peer")


@contextlib.contextmanager
def peer() -> Iterator[Peer]:
    """A peer namespace and its veth pair, removed at the end."""
    tag = secrets.token_hex(3)
    made = Peer(f"lkpeer-{tag}", f"lkh{tag}", _free_subnet())
    sh("ip", "netns", "add", made.ns)
    try:
        sh("ip", "link", "add", made.host_dev, "type", "veth", "peer", "name", "eth1",
           "netns", made.ns)  # fmt: skip
        for family, prefix in ((4, "24"), (6, "64")):
            host = made.address(family, 1)
            sh("ip", "addr", "add", f"{host}/{prefix}", "dev", made.host_dev, *_nodad(family))
            for n in (2, 3):
                address = f"{made.address(family, n)}/{prefix}"
                made.run("ip", "addr", "add", address, "dev", "eth1", *_nodad(family))
        sh("ip", "link", "set", made.host_dev, "up")
        made.run("ip", "link", "set", "eth1", "up")
        made.run("ip", "link", "set", "lo", "up")
        yield made
    finally:
        sh("ip", "link", "del", made.host_dev, check=False)
        sh("ip", "netns", "del", made.ns, check=False)


def _nodad(family: int) -> list[str]:
    return ["nodad"] if family == 6 else []


@contextlib.contextmanager
def iperf3_server(where: Peer, port: int) -> Iterator[None]:
    """iperf3 -s in the peer for the duration of the block."""
    server = where.popen("iperf3", "-s", "-p", str(port))
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            probe = where.run("ss", "-Hltn", f"sport = :{port}", check=False)
            if probe.stdout.strip():
                break
            time.sleep(0.05)
        yield
    finally:
        server.kill()
        server.communicate(timeout=TIMEOUT)


# ---------------------------------------------------------------------------------------------
# Jobs through the wrapper


def ad_text(ad: Mapping[str, object]) -> str:
    lines = []
    for name, value in ad.items():
        shown = (
            json.dumps(value)
            if isinstance(value, str)
            else str(value).lower()
            if isinstance(value, bool)
            else str(value)
        )
        lines.append(f"{name} = {shown}")
    return "\n".join(lines) + "\n"


@dataclass
class JobRun:
    """A job run by the wrapper under the stand-in starter."""

    workdir: Path
    process: subprocess.Popen[str]
    stdout: str = ""
    stderr: str = ""
    report: dict[str, object] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return os.waitstatus_to_exitcode(int(self.report["status"]))  # type: ignore[call-overload]

    @property
    def left(self) -> list[str]:
        return list(self.report["left"])  # type: ignore[call-overload]

    def wrapper_pid(self, timeout: float = 10.0) -> int:
        path = self.workdir / "wrapper.pid"
        deadline = time.monotonic() + timeout
        while not (path.exists() and path.read_text()):
            assert time.monotonic() < deadline, "the starter never started the wrapper"
            time.sleep(0.005)
        return int(path.read_text())

    def wait(self, timeout: float = 60.0) -> JobRun:
        self.stdout, self.stderr = self.process.communicate(timeout=timeout)
        path = self.workdir / "report.json"
        assert path.exists(), f"starter wrote no report: {self.stderr}"
        self.report = json.loads(path.read_text())
        return self

    def counted(self, direction: str) -> int:
        """Bytes the wrapper's summary line gives for ``out`` (sent) or ``in`` (received)."""
        word = "sent" if direction == "out" else "received"
        for line in self.stderr.splitlines():
            if line.startswith("larkps-jobnet: job ") and f" {word} " in line:
                return int(line.split(f" {word} ")[1].split()[0])
        raise AssertionError(f"no summary line in {self.stderr!r}")


class Jobs:
    """Starts jobs as the test user, each in a fresh work directory; removes them all."""

    def __init__(self, user: User, base: Path) -> None:
        self.user, self.base = user, base
        self.runs: list[JobRun] = []
        self.count = 0

    def start(
        self,
        job_argv: Sequence[str],
        ad: Mapping[str, object] | None = None,
        config: str = "[jobnet]\n",
        planner: str | None = None,
    ) -> JobRun:
        self.count += 1
        workdir = Path(tempfile.mkdtemp(prefix=f"job{self.count}-", dir=self.base))
        os.chown(workdir, self.user.uid, self.user.gid)
        workdir.chmod(0o755)
        full_ad = {
            "ClusterId": 100 + self.count,
            "ProcId": 0,
            "Owner": self.user.name,
            **(ad or {}),
        }
        (workdir / "job.ad").write_text(ad_text(full_ad))
        (workdir / "larkps.toml").write_text(config)
        prefix, env = wrapper_command()
        env.update(
            PATH="/usr/local/bin:/usr/bin:/bin",
            _CONDOR_JOB_AD=str(workdir / "job.ad"),
            _CONDOR_WRAPPER_ERROR_FILE=str(workdir / "wrapper.error"),
            LARKPS_CONFIG=str(workdir / "larkps.toml"),
            TMPDIR=str(workdir),
            LANG="C.UTF-8",
        )
        if planner is not None:
            env["LARKPS_PLANNER"] = planner
        ids = [str(self.user.uid), str(self.user.gid)]
        where = [str(workdir), str(self.base / "tun")]
        argv = [sys.executable, str(STARTER), str(workdir / "report.json"), *ids, *where, "--"]
        argv += [*prefix, *job_argv]
        starter_env = {
            **os.environ,
            **env,
            "PYTHONPATH": os.pathsep.join([str(ROOT), env["PYTHONPATH"]]),
        }
        process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=starter_env,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        run = JobRun(workdir, process)
        self.runs.append(run)
        return run

    def run(self, job_argv: Sequence[str], **kwargs: object) -> JobRun:
        return self.start(job_argv, **kwargs).wait()  # type: ignore[arg-type]

    def close(self) -> None:
        for run in self.runs:
            if run.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(run.process.pid, signal.SIGKILL)
                run.process.communicate(timeout=TIMEOUT)


@contextlib.contextmanager
def jobs(user: User) -> Iterator[Jobs]:
    base = Path(tempfile.mkdtemp(prefix="larkps-jobnet-test-"))
    base.chmod(0o755)
    made = Jobs(user, base)
    try:
        yield made
    finally:
        made.close()
        shutil.rmtree(base, ignore_errors=True)


def user_processes(user: User) -> list[str]:
    """Command lines of every live (not zombie) process of the user."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != user.uid:
                continue
            with open(f"/proc/{entry}/stat", "rb") as handle:
                if handle.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                found.append(
                    f"{entry}: " + handle.read().replace(b"\0", b" ").decode(errors="replace")
                )
        except OSError:
            continue
    return found


def net_namespaces() -> set[str]:
    """Every network namespace a process holds (as ``net:[inode]``), by /proc."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                found.add(os.readlink(f"/proc/{entry}/ns/net"))
            with contextlib.suppress(OSError):
                for fd in os.listdir(f"/proc/{entry}/fd"):
                    with contextlib.suppress(OSError):
                        target = os.readlink(f"/proc/{entry}/fd/{fd}")
                        if target.startswith("net:["):
                            found.add(target)
    return found
