"""condor_chirp of a finished job's figures, against a fake condor_chirp recording its argv."""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import classad2
import pytest

from larkps.jobnet.accounting import Counter, totals
from larkps.jobnet.chirp import (
    CHIRP_ENV,
    HTCHIRP,
    JobUser,
    attributes,
    chirp,
    find_condor_chirp,
    rendered,
)

FAKE = """#!{python}
import json, os, sys
with open({log!r}, "a") as out:
    out.write(json.dumps({{"argv": sys.argv[1:], "uid": os.getuid(), "gid": os.getgid(),
                          "groups": os.getgroups(),
                          "chirp_config": os.environ.get("_CONDOR_CHIRP_CONFIG")}}) + "\\n")
if {fail!r}:
    sys.stderr.write("cannot connect to the starter\\nsecond line\\n")
    sys.exit(1)
"""


@pytest.fixture
def world() -> Iterator[Path]:
    """A directory every user can read and traverse (the fake runs as the job user)."""
    top = Path(tempfile.mkdtemp(prefix="larkps-chirp-"))
    top.chmod(0o777)
    yield top
    shutil.rmtree(top)


def fake(directory: Path, fail: bool = False) -> tuple[Path, Path]:
    log = directory / "argv.jsonl"
    log.touch()
    log.chmod(0o666)
    program = directory / "condor_chirp"
    program.write_text(FAKE.format(python="/usr/bin/python3", log=str(log), fail=fail))
    program.chmod(0o755)
    return program, log


def calls(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def figures() -> dict[str, object]:
    counted = [
        Counter("out", "elsewhere", 123456789012, 9),
        Counter("out", "same-site", 88, 1),
        Counter("in", "other-sites", 4096, 3),
    ]
    return attributes(totals(counted), "ports", 250_000_000)


def test_each_attribute_is_set_with_a_classad_literal(world: Path, capsys):
    program, log = fake(world)
    env = {CHIRP_ENV: str(program), "_CONDOR_CHIRP_CONFIG": "/scratch/.chirp.config"}
    assert chirp(figures(), env) is None
    assert capsys.readouterr().err == ""
    got = calls(log)
    assert [c["argv"][:2] for c in got] == [
        ["set_job_attr", "LarkNetworkBytesSent"],
        ["set_job_attr", "LarkNetworkBytesReceived"],
        ["set_job_attr", "LarkNetworkPolicy"],
        ["set_job_attr", "LarkNetworkRateLimitMbps"],
    ]
    values = {c["argv"][1]: classad2.ExprTree(c["argv"][2]).eval() for c in got}
    assert values == {
        "LarkNetworkBytesSent": 123456789100,
        "LarkNetworkBytesReceived": 4096,
        "LarkNetworkPolicy": "ports",
        "LarkNetworkRateLimitMbps": 250.0,
    }
    assert all(c["chirp_config"] == "/scratch/.chirp.config" for c in got)


def test_no_rate_no_rate_attribute():
    assert "LarkNetworkRateLimitMbps" not in attributes(totals([]), "nat", None)


@pytest.mark.parametrize(
    "text", ['a"b', 'x" ; LarkNetworkPolicy = "bridge', "back\\slash", "line\nbreak", "[ a = 1 ]"]
)
def test_a_string_value_is_one_literal_whatever_it_holds(text: str):
    ((name, expression),) = rendered({"LarkNetworkPolicy": text})
    assert name == "LarkNetworkPolicy"
    parsed = classad2.ExprTree(expression)
    assert parsed.eval() == text
    ad = classad2.ClassAd(f"[LarkNetworkPolicy = {expression}]")
    assert list(ad.keys()) == ["LarkNetworkPolicy"]


def test_a_failure_is_one_stderr_line_and_not_fatal(world: Path, capsys):
    program, log = fake(world, fail=True)
    problem = chirp(figures(), {CHIRP_ENV: str(program)})
    err = capsys.readouterr().err
    assert problem == (
        "condor_chirp set_job_attr LarkNetworkBytesSent: cannot connect to the starter "
        "(the job ad gets no network figures; is +WantIOProxy = true?)"
    )
    assert err == f"larkps-jobnet: {problem}\n"
    assert len(calls(log)) == 1  # the first failure stops the rest


def test_no_condor_chirp_is_one_line(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    problem = chirp(figures(), {"PATH": str(tmp_path)})
    assert problem == "condor_chirp not found: the job ad gets no network figures"
    assert capsys.readouterr().err == f"larkps-jobnet: {problem}\n"


def test_condor_chirp_is_found_in_the_libexec_directory(world: Path, tmp_path: Path):
    program, _ = fake(world)
    assert find_condor_chirp({"_CONDOR_LIBEXEC": str(world), "PATH": str(tmp_path)}) == [
        str(program)
    ]
    assert find_condor_chirp({"PATH": str(world)}) == [str(program)]
    assert find_condor_chirp({CHIRP_ENV: str(tmp_path / "nothing")}) is None
    not_executable = tmp_path / "condor_chirp"
    not_executable.write_text("")
    not_executable.chmod(stat.S_IRUSR)
    # none to run: the htcondor wheel's own client, condor_chirp's commands
    assert find_condor_chirp({"_CONDOR_LIBEXEC": str(tmp_path), "PATH": ""}) == [
        sys.executable,
        "-c",
        HTCHIRP,
    ]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run condor_chirp as another user")
def test_a_root_caller_runs_condor_chirp_as_the_job_user(world: Path):
    program, log = fake(world)
    assert chirp(figures(), {CHIRP_ENV: str(program)}, user=JobUser(65534, 65534)) is None
    got = calls(log)
    assert {(c["uid"], c["gid"]) for c in got} == {(65534, 65534)}
    assert all(c["groups"] == [] for c in got)


def test_the_wrappers_call_at_the_end_of_a_job(world: Path):
    from larkps.config.jobnet import Mode, Policy
    from larkps.jobnet.chirp import report_to_job_ad
    from larkps.jobnet.request import JobPlan

    program, log = fake(world)
    job = JobPlan("70.0", "alice", Mode.ROOTLESS, Policy.NAT, rate_bps=None)
    counted = {("out", "elsewhere"): (10, 1), ("in", "same-site"): (20, 2)}
    assert report_to_job_ad(job, counted, {CHIRP_ENV: str(program)}) is None
    values = {c["argv"][1]: classad2.ExprTree(c["argv"][2]).eval() for c in calls(log)}
    assert values == {
        "LarkNetworkBytesSent": 10,
        "LarkNetworkBytesReceived": 20,
        "LarkNetworkPolicy": "nat",
    }


def test_without_condor_chirp_the_wheels_client_is_tried(tmp_path: Path, capsys):
    """Outside a job (no .chirp.config) it fails, as one line, and nothing breaks."""
    problem = chirp({"LarkNetworkPolicy": "nat"}, {"PATH": str(tmp_path)})
    assert problem is not None
    assert problem == (
        "condor_chirp set_job_attr LarkNetworkPolicy: .chirp.config must be present or you "
        "must provide a host and port (the job ad gets no network figures; is "
        "+WantIOProxy = true?)"
    )
    assert capsys.readouterr().err.count("\n") == 1
