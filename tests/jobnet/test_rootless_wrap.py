"""The wrapper in rootless mode, as an ordinary user: the job's namespace, its exit, its limits.

Root only (a test user, a private tun node); see netns.py for the set-up.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import netns
import pytest

from larkps.jobnet.planner_service import Planner, listen

pytestmark = [pytest.mark.root]

if (_reason := netns.missing()) is not None:
    pytest.skip(_reason, allow_module_level=True)

PROBE = (
    "import json, os, subprocess;"
    "run = lambda *a: subprocess.run(a, capture_output=True, text=True);"
    "tc = run('/usr/sbin/tc', 'qdisc', 'del', 'dev', 'tap0', 'root');"
    "nft = run('/usr/sbin/nft', 'flush', 'ruleset');"
    "link = run('/usr/sbin/ip', 'link', 'set', 'tap0', 'down');"
    "caps = [l for l in open('/proc/self/status') if l.startswith('CapEff')][0].split()[1];"
    "print(json.dumps({'uid': os.getuid(), 'gid': os.getgid(), 'pid': os.getpid(),"
    " 'net': os.readlink('/proc/self/ns/net'), 'caps': caps,"
    " 'procs': sorted(int(p) for p in os.listdir('/proc') if p.isdigit()),"
    " 'tc': tc.returncode, 'nft': nft.returncode, 'link': link.returncode,"
    " 'qdisc': run('/usr/sbin/tc', 'qdisc', 'show', 'dev', 'tap0').stdout}))"
)


@pytest.fixture(scope="module")
def user() -> netns.User:
    return netns.ensure_user()


@pytest.fixture
def jobs(user: netns.User) -> Iterator[netns.Jobs]:
    with netns.jobs(user) as made:
        yield made


def test_job_runs_as_its_user_without_capabilities_and_cannot_lift_its_limit(
    jobs: netns.Jobs, user: netns.User
) -> None:
    run = jobs.run(["python3", "-c", PROBE], ad={"LarkNetworkRateLimit": 40})
    assert run.exit_code == 0, run.stderr
    seen = json.loads(run.stdout)
    assert (seen["uid"], seen["gid"]) == (user.uid, user.gid)
    assert seen["pid"] == 2  # the job's own PID namespace, under its init
    assert seen["procs"][:2] == [1, 2] and len(seen["procs"]) <= 6  # and its own /proc
    assert seen["net"] != os.readlink("/proc/self/ns/net")
    assert int(seen["caps"], 16) == 0
    assert seen["tc"] != 0 and seen["nft"] != 0 and seen["link"] != 0
    assert "tbf" in seen["qdisc"] and "rate 40Mbit" in seen["qdisc"]
    assert "larkps-jobnet: rate 40Mbit/s from LarkNetworkRateLimit" in run.stderr
    assert run.left == []
    assert seen["net"] not in netns.net_namespaces()


@pytest.mark.parametrize("code", [0, 3, 255])
def test_exit_code_passes_through(jobs: netns.Jobs, code: int) -> None:
    run = jobs.run(["sh", "-c", f"echo out; echo err >&2; exit {code}"])
    assert run.exit_code == code
    assert run.stdout == "out\n"
    assert "err\n" in run.stderr
    assert run.left == []


def test_killed_job_kills_the_wrapper_with_the_same_signal(jobs: netns.Jobs) -> None:
    run = jobs.run(["sh", "-c", "kill -USR1 $$"])
    assert run.exit_code == -signal.SIGUSR1
    assert run.left == []


def test_sigterm_is_forwarded_to_the_job(jobs: netns.Jobs) -> None:
    script = "trap 'echo got-term; exit 7' TERM; touch ready; while :; do sleep 0.1; done"
    run = jobs.start(["sh", "-c", script])
    pid = run.wrapper_pid()
    deadline = time.monotonic() + 20
    while not (run.workdir / "ready").exists():
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.02)
    os.kill(pid, signal.SIGTERM)
    run.wait()
    assert run.exit_code == 7
    assert "got-term" in run.stdout
    assert run.left == []


def test_orphans_are_reaped_and_killed_at_the_end(jobs: netns.Jobs, user: netns.User) -> None:
    run = jobs.run(["sh", "-c", "(sleep 60 &) ; (sh -c 'sleep 61' &); exit 0"])
    assert run.exit_code == 0
    assert run.left == []
    assert not [p for p in netns.user_processes(user) if "sleep 6" in p]


def test_refusal_goes_to_the_error_file_and_the_job_does_not_run(jobs: netns.Jobs) -> None:
    run = jobs.run(
        ["sh", "-c", "touch ran"],
        ad={"LarkNetworkPolicy": "ports", "LarkNetworkPorts": "70000"},
    )
    assert run.exit_code == 1
    assert not (run.workdir / "ran").exists()
    error = (run.workdir / "wrapper.error").read_text()
    assert error == "larkps-jobnet: LarkNetworkPorts: 70000 is not a port (1-65535)\n"
    assert error in run.stderr


@pytest.fixture
def planner(jobs: netns.Jobs) -> Iterator[str]:
    """A planner (in this process, as root) whose node caps every job at 20 Mbit/s; its
    socket, in the jobs' directory (every user may reach it)."""
    config = Path(jobs.base) / "planner.toml"
    config.write_text('[jobnet]\nmax_rate = "20Mbit/s"\n')
    path = str(Path(jobs.base) / "planner.sock")
    server = listen(Planner(str(config)), path)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield path
    finally:
        server.shutdown()
        server.server_close()


def test_a_job_planned_by_the_planner_gets_the_planners_rate(
    jobs: netns.Jobs, user: netns.User, planner: str
) -> None:
    """The wrapper's own config caps nothing; the planner's caps at 20 Mbit/s: the
    limit the job sees is the planner's, and the run is still counted."""
    run = jobs.run(["python3", "-c", PROBE], ad={"LarkNetworkRateLimit": 40}, planner=planner)
    assert run.exit_code == 0, run.stderr
    seen = json.loads(run.stdout)
    assert "tbf" in seen["qdisc"] and "rate 20Mbit" in seen["qdisc"]
    assert int(seen["caps"], 16) == 0 and seen["tc"] != 0 and seen["nft"] != 0
    assert "capped at the node's max_rate 20Mbit/s" in run.stderr
    assert "plans the job itself" not in run.stderr
    assert run.counted("out") >= 0 and run.left == []


def test_with_its_planner_gone_the_wrapper_plans_the_job_itself(
    jobs: netns.Jobs, planner: str
) -> None:
    gone = planner + ".gone"
    run = jobs.run(["python3", "-c", PROBE], ad={"LarkNetworkRateLimit": 40}, planner=gone)
    assert run.exit_code == 0, run.stderr
    assert "rate 40Mbit" in json.loads(run.stdout)["qdisc"]
    assert "the wrapper plans the job itself" in run.stderr
    assert run.left == []
