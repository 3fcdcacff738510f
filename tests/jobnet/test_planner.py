"""The jobnet planner: its documents, its answers over a real Unix socket, the command
that runs it, and the wrapper asking it (refusals; the rootless runs are in
test_rootless_wrap.py).

The ground truth of every answer is what the wrapper plans in its own process from
the same files: plan_job over read_ad, and the recipe made from that plan.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from larkps.config.jobnet import NodeJobNet, load_jobnet
from larkps.errors import LarkpsError
from larkps.jobnet import planner as client
from larkps.jobnet import wrap
from larkps.jobnet.jobad import read_ad
from larkps.jobnet.plandoc import node_doc, node_from_doc, plan_doc, plan_from_doc
from larkps.jobnet.planner import PlannerUnavailable, answer_from_bytes, ask, planner_socket
from larkps.jobnet.planner_service import MAX_REQUEST, Planner, listen
from larkps.jobnet.request import JobNetRefused, JobPlan, plan_job
from larkps.jobnet.rootless import recipe
from larkps.jobnet.runner import Recipe, recipe_from_doc

ROOTLESS = """[jobnet]
policies = ["nat", "ports"]
max_rate = "800Mbit/s"
user_net = "slirp4netns"
ledger = "/var/tmp/larkps-test-ledger.sqlite"
[jobnet.classes]
same-site = ["198.18.0.0/16", "2001:db8:1::/48"]
other-sites = ["198.19.0.0/16"]
"""
PRIVILEGED = """[jobnet]
mode = "privileged"
policies = ["nat", "bridge"]
helper = "/opt/test/bin/larkps-jobnet-helper"
pool4 = "198.18.98.0/24"
pool6 = "2001:db8:98::/64"
"""
MACHINE = (
    'LarkPS_Site = "UC"\n'
    "LarkPS_From_BNL_2d_ATLAS_BandwidthLowMbps = 2000.0\n"
    "LarkPS_From_BNL_2d_ATLAS_Trusted = true\n"
)
JOBS = {
    "default": "",
    "rate": "LarkNetworkRateLimit = 40\n",
    "capped": "LarkNetworkRateLimit = 5000\n",
    "ports": 'LarkNetworkPolicy = "ports"\nLarkNetworkPorts = "5000-5002, 7000"\n',
    "allow": 'LarkNetworkAllow = "198.18.7.0/24, 2001:db8:7::/64"\n',
    "larkps": 'LarkNetworkDataSite = "BNL-ATLAS"\nLarkNetworkJobs = 4\n',
}
BAD_PORTS = 'LarkNetworkPolicy = "ports"\nLarkNetworkPorts = "70000"\n'


def job_ad(tmp: Path, extra: str, cluster: int = 42) -> Path:
    path = tmp / f"job-{cluster}.ad"
    path.write_text(f'ClusterId = {cluster}\nProcId = 0\nOwner = "alice"\n{extra}')
    return path


def texts(job: Path, machine: Path | None = None) -> tuple:
    return (str(job), job.read_text()), None if machine is None else (
        str(machine),
        machine.read_text(),
    )


def in_process(job: Path, machine: Path | None, node: NodeJobNet) -> JobPlan:
    return plan_job(read_ad(job), read_ad(machine) if machine else {}, node)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "larkps.toml"
    path.write_text(ROOTLESS)
    return path


class Running:
    def __init__(self, path: str, planner: Planner) -> None:
        self.path, self.planner = path, planner

    def raw(self, data: bytes) -> dict:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(30)
            sock.connect(self.path)
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            got = b""
            while chunk := sock.recv(65536):
                got += chunk
        return json.loads(got)


@pytest.fixture
def running(config: Path, tmp_path: Path) -> Iterator[Running]:
    path = str(tmp_path / "planner.sock")
    planner = Planner(str(config))
    server = listen(planner, path)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Running(path, planner)
    finally:
        server.shutdown()
        server.server_close()


# -- documents ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [ROOTLESS, PRIVILEGED, "[jobnet]\n"])
def test_node_settings_come_back_from_their_document_as_they_were(tmp_path: Path, text: str):
    path = tmp_path / "c.toml"
    path.write_text(text)
    node = load_jobnet(path)
    assert node_from_doc(json.loads(json.dumps(node_doc(node)))) == node


@pytest.mark.parametrize("name", sorted(JOBS))
def test_plans_come_back_from_their_document_as_they_were(tmp_path: Path, name: str):
    machine = tmp_path / "machine.ad"
    machine.write_text(MACHINE)
    node = load_jobnet(_write(tmp_path, ROOTLESS))
    plan = in_process(job_ad(tmp_path, JOBS[name]), machine, node)
    assert plan_from_doc(json.loads(json.dumps(plan_doc(plan)))) == plan


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("job_id", "1.0; rm -rf /"),
        ("job_id", "1"),
        ("job_id", "١.٠"),  # digits, but not ASCII ones
        ("owner", "alice bob"),
        ("ports", [0]),
        ("ports", [True]),
        ("ports", [70000]),
        ("rate_bps", True),
        ("rate_bps", 0),
        ("rate_bps", 1.5),
        ("policy", "vlan"),
        ("allow", ["not-a-network"]),
        ("rationale", [1]),
    ],
)
def test_a_plan_document_with_a_wrong_field_is_refused(tmp_path: Path, field: str, value: object):
    plan = JobPlan("1.0", "alice", *_modes())
    doc = plan_doc(plan) | {field: value}
    with pytest.raises(PlannerUnavailable, match=field.split("_")[0]):
        plan_from_doc(doc)


def _modes() -> tuple:
    from larkps.config.jobnet import Mode, Policy

    return Mode.ROOTLESS, Policy.NAT


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("early", [[["sh", "-c", "id"], ""]]),
        ("on_tap", [[["nft", "flush", "ruleset"], ""]]),
        ("early", [[[], ""]]),
        ("early", [["tc", ""]]),
        ("sysctls", {"ipv4/ip_forward": "1"}),
        ("sysctls", {"ipv4/tcp_rmem": "1; reboot"}),
        ("ports", [True]),
        ("ports", [0]),
        ("user_net", "vde"),
        ("rules", None),
    ],
)
def test_a_recipe_runs_only_ip_and_tc_and_sets_only_its_sysctls(field: str, value: object):
    plan = JobPlan("1.0", "alice", *_modes(), rate_bps=40_000_000)
    from larkps.config.jobnet import UserNet

    made = recipe(plan, UserNet.PASTA, {})
    assert recipe_from_doc(json.loads(json.dumps(made.doc()))) == made
    with pytest.raises(ValueError, match="recipe"):
        recipe_from_doc(made.doc() | {field: value})


def test_an_answer_that_is_not_json_or_too_large_is_not_used():
    with pytest.raises(PlannerUnavailable, match="not JSON"):
        answer_from_bytes(b"{")
    with pytest.raises(PlannerUnavailable, match="larger"):
        answer_from_bytes(None)
    with pytest.raises(PlannerUnavailable, match="no plan"):
        answer_from_bytes(b'{"node": {"mode": "rootless"}}')
    with pytest.raises(PlannerUnavailable, match="helper"):
        answer_from_bytes(b'{"node": {"mode": "privileged", "helper": "sudo"}}')


# -- the service, over its socket ----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(JOBS))
def test_the_answer_is_what_the_wrapper_would_plan_and_run(
    running: Running, config: Path, tmp_path: Path, name: str
):
    machine = tmp_path / "machine.ad"
    machine.write_text(MACHINE)
    job = job_ad(tmp_path, JOBS[name])
    node = load_jobnet(config, alone=False)
    expected = in_process(job, machine, node)
    answer = ask(running.path, *texts(job, machine))
    assert answer.refused is None and answer.mode == "rootless"
    assert plan_from_doc(answer.plan) == expected
    assert node_from_doc(answer.node) == node
    assert answer.recipe == recipe(expected, node.user_net, node.classes)
    assert answer.rationale == list(expected.rationale)


def test_the_answers_differ_where_the_plans_do(running: Running, tmp_path: Path):
    """A check of the check: different jobs get different recipes."""
    rate = ask(running.path, *texts(job_ad(tmp_path, JOBS["rate"], 1)))
    ports = ask(running.path, *texts(job_ad(tmp_path, JOBS["ports"], 2)))
    assert isinstance(rate.recipe, Recipe) and isinstance(ports.recipe, Recipe)
    assert rate.recipe != ports.recipe
    assert ports.recipe.ports == (5000, 5001, 5002, 7000) and rate.recipe.ports == ()
    assert "rate 40000000bit" in "".join(text for _, text in rate.recipe.early)


def test_a_refusal_is_the_wrappers_own(running: Running, config: Path, tmp_path: Path):
    job = job_ad(tmp_path, BAD_PORTS)
    with pytest.raises(JobNetRefused) as refused:
        in_process(job, None, load_jobnet(config, alone=False))
    answer = ask(running.path, *texts(job))
    assert answer.refused == str(refused.value)
    assert answer.recipe is None


def test_garbage_for_an_ad_is_refused_as_the_wrapper_refuses_it(
    running: Running, config: Path, tmp_path: Path
):
    job = tmp_path / "broken.ad"
    job.write_text("ClusterId = [[[\nOwner = = =\n")
    with pytest.raises(LarkpsError) as refused:
        in_process(job, None, load_jobnet(config, alone=False))
    assert ask(running.path, *texts(job)).refused == str(refused.value)


def test_a_changed_config_is_read_and_a_broken_one_refuses_until_mended(
    running: Running, config: Path, tmp_path: Path
):
    job = job_ad(tmp_path, JOBS["capped"])
    assert plan_from_doc(ask(running.path, *texts(job)).plan).rate_bps == 800_000_000
    config.write_text(ROOTLESS.replace("800Mbit/s", "300Mbit/s"))
    assert plan_from_doc(ask(running.path, *texts(job)).plan).rate_bps == 300_000_000
    config.write_text("[jobnet]\nmode = 'sideways'\n")
    broken = ask(running.path, *texts(job))
    assert broken.refused is not None and str(config) in broken.refused and "mode" in broken.refused
    config.write_text(ROOTLESS)
    assert plan_from_doc(ask(running.path, *texts(job)).plan).rate_bps == 800_000_000


def test_reload_rereads_a_file_whose_stamp_did_not_change(running: Running, config: Path, tmp_path):
    job = job_ad(tmp_path, JOBS["capped"])
    assert plan_from_doc(ask(running.path, *texts(job)).plan).rate_bps == 800_000_000
    st = config.stat()
    config.write_text(ROOTLESS.replace("800Mbit/s", "700Mbit/s"))  # same size
    os.utime(config, ns=(st.st_atime_ns, st.st_mtime_ns))
    running.planner.reload()
    assert plan_from_doc(ask(running.path, *texts(job)).plan).rate_bps == 700_000_000


@pytest.mark.parametrize(
    ("request_bytes", "error"),
    [
        (b"not json", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"job_ad": "x"}', "job_ad is not [file, text]"),
        (json.dumps({"job_ad": ["a", "b"], "machine_ad": [1, 2]}).encode(), "machine_ad"),
        (b" " * (MAX_REQUEST + 1), "larger than"),
    ],
)
def test_a_bad_request_gets_an_error_and_the_planner_goes_on(
    running: Running, tmp_path: Path, request_bytes: bytes, error: str
):
    assert error in running.raw(request_bytes)["error"]
    assert ask(running.path, *texts(job_ad(tmp_path, JOBS["rate"]))).refused is None


def test_many_wrappers_at_once_each_get_their_own_plan(running: Running, tmp_path: Path):
    jobs = [job_ad(tmp_path, f"LarkNetworkRateLimit = {10 + n}\n", cluster=n) for n in range(24)]
    answers: dict[int, int | None] = {}

    def one(n: int) -> None:
        answers[n] = plan_from_doc(ask(running.path, *texts(jobs[n])).plan).rate_bps

    threads = [threading.Thread(target=one, args=(n,)) for n in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert answers == {n: (10 + n) * 1_000_000 for n in range(len(jobs))}


def test_clients_that_send_nothing_are_dropped_and_others_answered(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """At most MAX_CLIENTS at once, each for at most SERVER_TIMEOUT: idle clients
    (here more than the planner takes at once) cannot keep it from answering."""
    from larkps.jobnet import planner_service

    monkeypatch.setattr(planner_service, "SERVER_TIMEOUT", 0.5)
    monkeypatch.setattr(planner_service, "MAX_CLIENTS", 2)
    path = str(tmp_path / "busy.sock")
    server = listen(Planner(str(config)), path)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    idle = []
    try:
        for _ in range(3):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(30)
            sock.connect(path)
            idle.append(sock)
        job = job_ad(tmp_path, JOBS["rate"])
        answer = ask(path, *texts(job), timeout=30)
        assert plan_from_doc(answer.plan).rate_bps == 40_000_000
        for sock in idle:
            assert sock.recv(100) == b""  # closed: timed out, or turned away
    finally:
        for sock in idle:
            sock.close()
        server.shutdown()
        server.server_close()


def test_privileged_mode_is_answered_with_the_helper_alone(tmp_path: Path):
    path = _write(tmp_path, PRIVILEGED)
    sock = str(tmp_path / "p.sock")
    server = listen(Planner(str(path)), sock)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        answer = ask(sock, *texts(job_ad(tmp_path, "")))
    finally:
        server.shutdown()
        server.server_close()
    assert (answer.mode, answer.helper) == ("privileged", "/opt/test/bin/larkps-jobnet-helper")
    assert answer.recipe is None and answer.refused is None


def test_the_socket_is_for_every_user(running: Running):
    assert os.stat(running.path).st_mode & 0o777 == 0o666


def test_a_stale_socket_is_replaced_a_live_one_or_a_file_is_not(running: Running, tmp_path: Path):
    with pytest.raises(LarkpsError, match="another planner answers there"):
        listen(Planner("/nonexistent"), running.path)
    stale = str(tmp_path / "stale.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as left:
        left.bind(stale)  # bound, never listening: what a killed planner leaves
    server = listen(Planner("/nonexistent"), stale)
    server.server_close()
    plain = tmp_path / "plain"
    plain.write_text("keep me")
    with pytest.raises(LarkpsError, match="not a socket"):
        listen(Planner("/nonexistent"), str(plain))
    assert plain.read_text() == "keep me"


def test_which_planner_the_wrapper_asks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    default = tmp_path / "default.sock"
    monkeypatch.setattr(client, "DEFAULT_SOCKET", str(default))
    assert planner_socket({}, config_named=False) is None  # no planner on this node
    default.touch()
    assert planner_socket({}, config_named=False) == str(default)
    assert planner_socket({}, config_named=True) is None  # LARKPS_CONFIG: the wrapper's own
    assert planner_socket({"LARKPS_PLANNER": "/x.sock"}, config_named=True) == "/x.sock"
    assert planner_socket({"LARKPS_PLANNER": ""}, config_named=False) is None


# -- the wrapper asking ------------------------------------------------------------------------


def wrapper_env(tmp_path: Path, job: Path, config: Path, planner: str) -> dict[str, str]:
    return {
        "_CONDOR_JOB_AD": str(job),
        "_CONDOR_WRAPPER_ERROR_FILE": str(tmp_path / "wrapper.error"),
        "LARKPS_CONFIG": str(config),
        "LARKPS_PLANNER": planner,
    }


def test_the_wrapper_refuses_as_the_planner_says(
    running: Running, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    job = job_ad(tmp_path, BAD_PORTS)
    mine = tmp_path / "mine.toml"
    mine.write_text("[jobnet]\npolicies = ['nat']\n")  # the wrapper's own would refuse otherwise
    env = wrapper_env(tmp_path, job, mine, running.path)
    assert wrap.main(["/bin/true"], env) == 1
    error = (tmp_path / "wrapper.error").read_text()
    assert error == "larkps-jobnet: LarkNetworkPorts: 70000 is not a port (1-65535)\n"
    assert "plans the job itself" not in capsys.readouterr().err


def test_without_a_planner_the_wrapper_plans_itself_and_says_so(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    job = job_ad(tmp_path, BAD_PORTS)
    env = wrapper_env(tmp_path, job, config, str(tmp_path / "nobody-here.sock"))
    assert wrap.main(["/bin/true"], env) == 1
    error = (tmp_path / "wrapper.error").read_text()
    assert error == "larkps-jobnet: LarkNetworkPorts: 70000 is not a port (1-65535)\n"
    err = capsys.readouterr().err
    assert "nobody-here.sock" in err and "the wrapper plans the job itself" in err


# -- the command -------------------------------------------------------------------------------


def larkps(*args: str, **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "larkps", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,  # type: ignore[call-overload]
    )


def wait_for(path: Path, process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the planner never listened"
        time.sleep(0.05)


def test_the_command_answers_until_sigterm_and_removes_its_socket(config: Path, tmp_path: Path):
    sock = tmp_path / "cmd.sock"
    process = larkps("jobnet", "planner", "--config", str(config), "--socket", str(sock))
    try:
        wait_for(sock, process)
        job = job_ad(tmp_path, JOBS["rate"])
        expected = in_process(job, None, load_jobnet(config, alone=False))
        assert plan_from_doc(ask(str(sock), *texts(job)).plan) == expected
        second = larkps("jobnet", "planner", "--config", str(config), "--socket", str(sock))
        _, err = second.communicate(timeout=60)
        assert second.returncode == 1
        assert err == f"larkps: error: {sock}: another planner answers there\n"
        process.send_signal(signal.SIGHUP)
        assert ask(str(sock), *texts(job)).refused is None
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert not sock.exists()
    assert "answering on" in err and "Traceback" not in err


def test_the_command_refuses_to_start_on_a_bad_config(tmp_path: Path):
    bad = _write(tmp_path, "[jobnet]\nuser_net = 'tun'\n")
    process = larkps("jobnet", "planner", "--config", str(bad), "--socket", str(tmp_path / "s"))
    _, err = process.communicate(timeout=60)
    assert process.returncode == 2
    assert err.startswith("larkps: error: ") and "user_net" in err and str(bad) in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "s").exists()


def _write(tmp: Path, text: str) -> Path:
    path = tmp / "node.toml"
    path.write_text(text)
    return path
