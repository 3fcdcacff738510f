"""The recorder the wrapper uses: the ledger, then the job ad; neither stops a job."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import classad2
import pytest

from larkps.config.jobnet import Mode, Policy
from larkps.jobnet.accounting import Counter
from larkps.jobnet.chirp import CHIRP_ENV
from larkps.jobnet.ledger import Ledger
from larkps.jobnet.recorder import NodeRecorder
from larkps.jobnet.request import JobPlan

FAKE = """#!/usr/bin/python3
import json, sys
with open({log!r}, "a") as out:
    out.write(json.dumps(sys.argv[1:]) + "\\n")
"""
PLAN = JobPlan("80.0", "alice", Mode.ROOTLESS, Policy.PORTS, ports=(5000,), rate_bps=20_000_000)
COUNTED = {("out", "other-sites"): (700, 7), ("in", "other-sites"): (300, 3)}


@pytest.fixture
def chirp_env() -> Iterator[tuple[dict[str, str], Path]]:
    top = Path(tempfile.mkdtemp(prefix="larkps-recorder-"))
    log = top / "argv.jsonl"
    program = top / "condor_chirp"
    program.write_text(FAKE.format(log=str(log)))
    program.chmod(0o755)
    yield {CHIRP_ENV: str(program)}, log
    shutil.rmtree(top)


def test_a_run_goes_to_the_ledger_and_the_job_ad(tmp_path: Path, chirp_env, capsys):
    env, log = chirp_env
    recorder = NodeRecorder(tmp_path / "ledger.sqlite", env)
    recorder.start(PLAN, {"pid": str(os.getpid()), "net": "pasta"})
    recorder.end(PLAN, 0, COUNTED)
    assert capsys.readouterr().err == ""
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        (run,) = ledger.runs()
    assert (run.job_id, run.policy, run.exit_status) == ("80.0", "ports", 0)
    assert set(run.counters) == {Counter("out", "other-sites", 700, 7),
                                 Counter("in", "other-sites", 300, 3)}  # fmt: skip
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    values = {argv[1]: classad2.ExprTree(argv[2]).eval() for argv in calls}
    assert values == {"LarkNetworkBytesSent": 700, "LarkNetworkBytesReceived": 300,
                      "LarkNetworkPolicy": "ports", "LarkNetworkRateLimitMbps": 20.0}  # fmt: skip


def test_a_ledger_that_cannot_be_written_costs_one_line_not_the_job(
    tmp_path: Path, chirp_env, capsys
):
    env, log = chirp_env
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / f"ledger.{os.geteuid()}").symlink_to(tmp_path)  # planted where our own dir goes
    shared.chmod(0o1777)
    recorder = NodeRecorder(shared / "ledger.sqlite", env)
    recorder.start(PLAN, [])
    recorder.end(PLAN, 3, COUNTED)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith("larkps-jobnet: the ledger did not record job 80.0: ledger directory ")
    assert len(log.read_text().splitlines()) == 4  # the job ad still gets its figures


def test_the_rules_counters_read_back_from_nft_are_recorded(tmp_path: Path, chirp_env):
    from larkps.jobnet.rules import Count, Counters

    env, log = chirp_env
    accepted = dict(Counters.empty().accepted)
    accepted[("out", "same-site")] = Count(1200, 12)
    accepted[("in", "elsewhere")] = Count(3400, 34)
    counted = Counters(accepted, {"in": Count(99, 1)})
    recorder = NodeRecorder(tmp_path / "ledger.sqlite", env)
    recorder.start(PLAN, {"pid": str(os.getpid())})
    recorder.end(PLAN, 0, counted)
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        (run,) = ledger.runs()
    nonzero = {c for c in run.counters if c.bytes}
    assert nonzero == {Counter("out", "same-site", 1200, 12), Counter("in", "elsewhere", 3400, 34)}
    assert len(run.counters) == 6  # every direction and class, zeros too
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    values = {argv[1]: classad2.ExprTree(argv[2]).eval() for argv in calls}
    assert (values["LarkNetworkBytesSent"], values["LarkNetworkBytesReceived"]) == (1200, 3400)
