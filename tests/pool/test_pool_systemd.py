"""The shipped systemd unit's service, run the way systemd runs it, against a real pool.

``config/systemd/larkps.service`` is read as shipped with only its paths put in (the
venv, the config file, the state directory). Its ExecStart line is started with the
unit's User/Group (the pool's job user standing in for ``larkps``), WorkingDirectory,
Environment and UMask, stopped with SIGTERM (systemd's default KillSignal) and must
exit 0 within the unit's TimeoutStopSec. It publishes to the pool's collector with a
token, as docs/operations.md sets it up.
"""

from __future__ import annotations

import json
import os
import pwd
import shlex
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import classad2
import pytest
from minipool import Install, Pool, minipool, service_settings, shipped, wait_until

from larkps.jobnet.helper import BUILDER_SOCKET
from larkps.jobnet.planner import DEFAULT_SOCKET
from larkps.units import parse_duration

UNIT = "config/systemd/larkps.service"
PLANNER_UNIT = "config/systemd/larkps-jobnet-planner.service"
BUILDER_UNIT = "config/systemd/larkps-jobnet-builder.service"
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    with minipool(extra_config=shipped("config/condor/50-larkps-collector.conf", {})) as running:
        yield running


def test_parse_of_the_unit_sees_its_service_lines():
    settings = service_settings(shipped(UNIT, {}))
    assert settings["Type"] == ["simple"]
    assert settings["ExecStart"][0].startswith("/opt/larkps/venv/bin/larkps run ")


@pytest.mark.parametrize("relative", [UNIT, PLANNER_UNIT, BUILDER_UNIT])
def test_systemd_accepts_the_unit(larkps_install: Install, tmp_path: Path, relative: str):
    """Every unit (the planner's run is tested in test_pool_jobnet.py, the builder's in
    tests/jobnet/test_privileged.py)."""
    verify = shutil.which("systemd-analyze")
    if verify is None:
        pytest.skip("no systemd-analyze on this host")
    unit = tmp_path / Path(relative).name
    config = "/etc/larkps/jobnet.toml" if relative == BUILDER_UNIT else "/etc/larkps/larkps.toml"
    paths = {"/opt/larkps/venv": str(larkps_install.venv), config: "/dev/null"}
    unit.write_text(shipped(relative, paths))
    done = subprocess.run(
        [verify, "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_the_planner_unit_runs_the_planner_in_its_runtime_directory():
    settings = service_settings(shipped(PLANNER_UNIT, {}))
    argv = settings["ExecStart"][0].split()
    assert argv[1:3] == ["jobnet", "planner"]
    assert argv[argv.index("--socket") + 1] == DEFAULT_SOCKET  # where the wrapper asks
    assert settings["RuntimeDirectory"] == ["larkps-jobnet"]
    assert settings["RuntimeDirectoryMode"] == ["0755"]


def test_the_builder_unit_runs_as_root_on_the_helpers_socket_in_the_hosts_namespaces():
    settings = service_settings(shipped(BUILDER_UNIT, {}))
    argv = settings["ExecStart"][0].split()
    assert argv[1:3] == ["jobnet", "builder"]
    assert argv[argv.index("--socket") + 1] == BUILDER_SOCKET  # where the helper connects
    assert settings["User"] == ["root"]
    assert settings["RuntimeDirectory"] == ["larkps-jobnet-builder"]
    assert settings["RuntimeDirectoryMode"] == ["0700"]
    # /run/netns must be the host's: no option that gives the service a mount namespace
    private = {"ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "PrivateNetwork",
               "ProtectKernelTunables", "ProtectControlGroups", "ReadOnlyPaths", "BindPaths",
               "TemporaryFileSystem", "ProtectProc", "PrivateMounts", "MountFlags"}  # fmt: skip
    assert not private & set(settings), private & set(settings)


def test_the_units_execstart_runs_cycles_and_stops_on_sigterm(pool: Pool, larkps_install: Install):
    home = pool.job_dir("systemd-unit")
    workdir = pool.job_dir("systemd-unit/var-lib-larkps")  # StateDirectory=larkps
    token = pool.job_file(home, "collector.token", pool.token() + "\n", mode=0o400)
    config = pool.job_file(
        home,
        "larkps.toml",
        "\n".join([
            "[larkps]",
            'state_dir = "state"  # relative: under the unit\'s WorkingDirectory',
            'interval = "10s"',
            "[[archives]]",
            'name = "mesh"',
            'kind = "embedded"',
            "[publish.file]",
            "[publish.collector]",
            f'pool = "{pool.collector}"',
            f'token_file = "{token}"',
        ]) + "\n",
    )  # fmt: skip
    unit = shipped(
        UNIT,
        {
            "/opt/larkps/venv": str(larkps_install.venv),
            "/etc/larkps/larkps.toml": str(config),
            "/var/lib/larkps": str(workdir),
        },
    )
    service = service_settings(unit)
    (exec_start,) = service["ExecStart"]
    assert exec_start[0] == "/", f"ExecStart has a prefix systemd would interpret: {exec_start}"
    argv = shlex.split(exec_start)
    assert argv[0] == str(larkps_install.larkps)
    (cwd,) = service["WorkingDirectory"]
    assert cwd == str(workdir)
    environment = dict(
        word.split("=", 1)
        for value in service.get("Environment", [])
        for word in shlex.split(value)
    )
    account = pwd.getpwnam(
        pool.job_user if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    )
    env = {
        "PATH": SYSTEMD_PATH,
        "HOME": account.pw_dir,
        "USER": account.pw_name,
        "LOGNAME": account.pw_name,
        **environment,
    }
    identity = {"user": account.pw_uid, "group": account.pw_gid} if os.geteuid() == 0 else {}
    daemon = subprocess.Popen(  # the unit's own command line
        argv,
        cwd=cwd,
        env=env,
        umask=int(service["UMask"][0], 8),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **identity,  # type: ignore[arg-type]
    )
    ads = workdir / "state" / "larkps.ads"
    try:

        def second_cycle() -> bool:
            if daemon.poll() is not None:
                _, err = daemon.communicate()
                raise AssertionError(f"larkps run exited {daemon.returncode}: {err[-2000:]}")
            if not ads.exists():
                return False
            parsed = classad2.parseAds(ads.read_text(), classad2.ParserType.Old)
            return any(int(ad.get("UpdateSequenceNumber", 0)) >= 1 for ad in parsed)

        wait_until(second_cycle, timeout=300, what="two cycles of the unit's larkps run")
        sites = pool.status("-any", "-constraint", 'MyType == "LarkPSSite"', "-af", "Name").split()
        assert sites, "the unit's daemon advertised no LarkPSSite ad to the collector"
    finally:
        daemon.send_signal(signal.SIGTERM)
        stop_timeout = parse_duration(service["TimeoutStopSec"][0])
        _, err = daemon.communicate(timeout=stop_timeout)
    assert daemon.returncode == 0, err[-2000:]
    for line in err.splitlines():  # --log-format json: every log line one JSON object
        assert isinstance(json.loads(line), dict), line
