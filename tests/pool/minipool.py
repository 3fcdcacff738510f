"""A real one-host HTCondor pool for tests, and larkps installed as an admin would.

The pool comes from ``../shared/tools/htcondor/minipool.sh`` (a real HTCondor build);
tests using it skip with the reason where that tree is absent. Everything the pool
runs on our behalf (a STARTD_CRON hook, a job, a job wrapper) runs as another user,
so larkps is installed for it with ``/usr/bin/python3 -m venv`` in a world-readable
directory, never from the test's own interpreter.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import classad2
import pytest

REPO = Path(__file__).resolve().parents[2]
HTCONDOR = Path(os.environ.get("LARKPS_HTCONDOR", REPO.parent / "shared" / "tools" / "htcondor"))
MINIPOOL = HTCONDOR / "minipool.sh"
SYSTEM_PYTHON = Path("/usr/bin/python3")
#: The central manager's snippet: larkps's token may advertise generic ads.
COLLECTOR_SNIPPET = "config/condor/50-larkps-collector.conf"


def require_htcondor() -> None:
    """Skip the calling test where the real HTCondor build is not present."""
    if not MINIPOOL.is_file():
        pytest.skip(f"no HTCondor build at {HTCONDOR} (../shared/tools/htcondor is absent)")


def world_dir(prefix: str) -> Path:
    """A new directory under /tmp that every user can enter and read."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


def shipped(relative: str, paths: Mapping[str, str]) -> str:
    """The text of a file shipped in the repository with only its paths replaced.

    Each key of ``paths`` must occur in the file: a test that means to put a path
    in fails loudly when the shipped file no longer says it.
    """
    text = (REPO / relative).read_text()
    for old, new in paths.items():
        assert old in text, f"{relative} no longer mentions {old}"
        text = text.replace(old, new)
    return text


def service_settings(unit: str) -> dict[str, list[str]]:
    """The [Service] section: each key with its values in order (keys may repeat)."""
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in unit.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            name, _, value = line.partition("=")
            settings.setdefault(name.strip(), []).append(value.strip())
    return settings


@dataclass
class Pool:
    """A running mini pool: its directory, environment and collector address."""

    dir: Path
    env: dict[str, str]
    collector: str
    job_user: str
    logs: Path = field(init=False)

    def __post_init__(self) -> None:
        self.logs = self.dir / "log"

    def run(
        self, *argv: str | os.PathLike[str], check: bool = True, timeout: float = 120, **kw: object
    ) -> subprocess.CompletedProcess[str]:
        """Run a command with the pool's environment (HTCondor tools on PATH)."""
        return subprocess.run(
            [os.fspath(a) for a in argv],
            env=self.env,
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
            **kw,  # type: ignore[arg-type]
        )

    def as_job_user(
        self, *argv: str | os.PathLike[str], cwd: Path, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run a command as the pool's job owner (HTCondor refuses root's jobs)."""
        if os.geteuid() != 0:
            return self.run(*argv, cwd=cwd, check=check, timeout=timeout)
        keep = ["CONDOR_CONFIG", "PATH", "LD_LIBRARY_PATH"]
        env = [f"{k}={self.env[k]}" for k in keep]
        return self.run(
            "runuser", "-u", self.job_user, "--", "env", *env, *argv,
            cwd=cwd, check=check, timeout=timeout,
        )  # fmt: skip

    def job_dir(self, name: str) -> Path:
        """A directory the job owner can write, for submit files, logs and outputs."""
        path = self.dir.parent / name
        path.mkdir(mode=0o755, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(path, self.job_user, self.job_user)
        return path

    def status(self, *args: str) -> str:
        """``condor_status`` output for these arguments."""
        return self.run("condor_status", "-pool", self.collector, *args).stdout

    def token(self, identity: str = "larkps@minipool", authz: str = "DAEMON") -> str:
        """An IDTOKEN signed by the pool's key, from the real ``condor_token_create``."""
        out = self.run("condor_token_create", "-identity", identity, "-authz", authz)
        return out.stdout.strip()

    def reconfig(self) -> None:
        """``condor_reconfig`` of the whole pool."""
        self.run("condor_reconfig", "-all", check=False)

    def job_file(self, directory: Path, name: str, text: str, mode: int = 0o644) -> Path:
        """A file in ``directory`` owned by the job user (e.g. a config or a token)."""
        path = directory / name
        path.write_text(text)
        path.chmod(mode)
        if os.geteuid() == 0:
            shutil.chown(path, self.job_user, self.job_user)
        return path

    def add_config(self, text: str) -> None:
        """Append ``text`` to the pool's configuration, then ``condor_reconfig``."""
        with open(self.env["CONDOR_CONFIG"], "a") as config:
            config.write("\n" + text + "\n")
        self.reconfig()

    def ads(self, *args: str) -> list[classad2.ClassAd]:
        """The ads ``condor_status -long`` prints for these arguments, parsed by classad2."""
        text = self.status("-long", *args)
        return list(classad2.parseAds(text, classad2.ParserType.Old))


def extra_startds(settings: Mapping[str, Mapping[str, str]]) -> str:
    """Config text for more startds beside the pool's own, one per local name.

    ``settings`` maps each local name (``B``) to its own settings (written as
    ``B.KEY = value``); each startd is named after it in lower case
    (``slot1@b@host``) and has its own log (``StartLog.b``) and address file.
    The ``STARTD.B.KEY`` form of the minipool README is not read by 25.13's
    startd; ``B.KEY`` is.
    """
    names = list(settings)
    lines = [f"DAEMON_LIST = $(DAEMON_LIST) {' '.join(f'STARTD_{n}' for n in names)}"]
    for name in names:
        low = name.lower()
        lines += [
            f"STARTD_{name} = $(STARTD)",
            f"STARTD_{name}_ARGS = -local-name {name}",
            f"{name}.STARTD_NAME = {low}",
            f"{name}.STARTD_LOG = $(LOG)/StartLog.{low}",
            f"{name}.STARTD_ADDRESS_FILE = $(LOG)/.startd_{low}_address",
        ]
        lines += [f"{name}.{key} = {value}" for key, value in settings[name].items()]
    return "\n".join(lines) + "\n"


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> object:
    """Poll ``predicate`` every half second until it is truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


@contextmanager
def minipool(
    extra_config: str = "", num_cpus: int = 2, launcher: Sequence[str] = (), **env: str
) -> Iterator[Pool]:
    """Start a pool with ``extra_config`` appended, yield it, stop it.

    ``launcher`` is an argv prefix the start command runs under (the daemons
    inherit what it sets up, e.g. a private mount namespace).
    """
    require_htcondor()
    base = world_dir("larkps-pool-")
    pool_dir = base / "pool"
    environ = dict(os.environ)
    environ.update(env)
    environ["MINIPOOL_EXTRA_CONFIG"] = extra_config
    environ["MINIPOOL_NUM_CPUS"] = str(num_cpus)
    started = subprocess.run(
        [*launcher, "bash", str(MINIPOOL), "start", str(pool_dir)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if started.returncode != 0:
        subprocess.run(["bash", str(MINIPOOL), "stop", str(pool_dir)], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
        raise AssertionError(f"minipool did not start:\n{started.stderr[-3000:]}")
    lines = dict(line.split("=", 1) for line in started.stdout.splitlines() if "=" in line)
    pool_env = dict(os.environ)
    pool_env.update(lines)
    try:
        yield Pool(
            dir=pool_dir,
            env=pool_env,
            collector=lines["MINIPOOL_COLLECTOR"],
            job_user=lines["MINIPOOL_JOB_USER"],
        )
    finally:
        subprocess.run(
            ["bash", str(MINIPOOL), "stop", str(pool_dir)], capture_output=True, timeout=120
        )
        shutil.rmtree(base, ignore_errors=True)


@dataclass(frozen=True)
class Install:
    """larkps installed in a world-readable virtual environment."""

    venv: Path

    @property
    def larkps(self) -> Path:
        return self.venv / "bin" / "larkps"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


def install_larkps() -> Install:
    """``/usr/bin/python3 -m venv`` in /tmp, then ``pip install`` of this checkout.

    This is what docs/operations.md tells an admin to do, with /tmp in place of
    /opt/larkps so that the test needs nothing outside its own directories.
    """
    if not SYSTEM_PYTHON.is_file():
        pytest.skip(f"{SYSTEM_PYTHON} is absent: cannot make a venv other users can run")
    base = world_dir("larkps-install-")
    venv = base / "venv"
    subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", str(venv)], check=True, timeout=300)
    source = base / "src"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(".git", ".venv", ".ci-venv", "*.egg-info", "__pycache__"),
    )
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", str(source)],
        check=True,
        timeout=900,
    )
    shutil.rmtree(source, ignore_errors=True)
    for path in [base, *base.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode | 0o044 | (0o011 if path.is_dir() or mode & 0o100 else 0))
    return Install(venv=venv)


def chirp_tool(install: Install) -> Path:
    """htchirp's condor_chirp-compatible client, in the world-readable venv."""
    tool = install.venv / "bin" / "condor_htchirp"
    if not tool.exists():
        pip = install.venv / "bin" / "pip"
        subprocess.run([str(pip), "install", "-q", "htchirp"], check=True, timeout=600)
        for path in [install.venv, *install.venv.rglob("*")]:
            mode = path.stat().st_mode
            path.chmod(mode | 0o044 | (0o011 if path.is_dir() or mode & 0o100 else 0))
    return tool


def require_root_and(tools: Sequence[str], why: str) -> None:
    """Skip, with the reason, without root or without one of tools."""
    if os.geteuid() != 0:
        pytest.skip(f"needs root: {why}")
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (scripts/debian-test-packages.txt)")
