"""Running DAGs: the real htcondor2.DAGMan.throttle call, and the command around it.

No schedd runs here, so the real call answers with its error string; that is
exactly the failure path larkps must report (exit 1) rather than take for success.
"""

from __future__ import annotations

import math

import classad2
import pytest

from larkps.apply.dagman import current_node_throttle, describe_throttles, set_node_throttle
from larkps.cli.app import main

NO_SCHEDD = "Failed to get contact information"


def test_real_throttle_call_without_a_schedd_is_a_failed_answer():
    answer = set_node_throttle(298, 10)
    assert not answer.ok
    assert answer.text.startswith(NO_SCHEDD)
    assert (answer.cluster_id, answer.max_nodes) == (298, 10)


def test_zero_nodes_is_refused_because_dagman_reads_it_as_unlimited():
    with pytest.raises(ValueError, match="unlimited"):
        set_node_throttle(298, 0)


def test_success_answer_is_described_from_the_classad():
    ad = classad2.ClassAd({"DAGMan_MaxJobs": 8, "DAGMan_MaxIdle": 1000})
    assert describe_throttles(ad) == "DAGMan_MaxJobs = 8, DAGMan_MaxIdle = 1000"


def expected_jobs(bandwidth: float, rate: float, consumers: int) -> int:
    """The default policy (0.8 utilisation, 0.9 safety, [1, 200]) worked independently."""
    return max(1, min(200, math.floor(0.8 * 0.9 * bandwidth / consumers / rate + 1e-9)))


ARGS = ["--source-site", "CERN", "--per-job-rate", "100Mbit", "--bandwidth", "10Gbit"]


def test_dry_run_reports_and_sends_nothing(capsys: pytest.CaptureFixture[str]):
    assert main(["throttle", "running", "1234", "5678", *ARGS]) == 0
    out = capsys.readouterr().out
    jobs = expected_jobs(10e9, 100e6, consumers=2)
    assert f"DAGMan 1234: would set max_nodes = {jobs} (dry run)" in out
    assert f"DAGMan 5678: would set max_nodes = {jobs} (dry run)" in out
    assert out.startswith(f"N={jobs} ")


def test_apply_reports_the_schedd_answer_and_exits_1(capsys: pytest.CaptureFixture[str]):
    assert main(["throttle", "running", "1234", *ARGS, "--apply"]) == 1
    out = capsys.readouterr().out
    jobs = expected_jobs(10e9, 100e6, consumers=1)
    assert f"DAGMan 1234: max_nodes = {jobs} FAILED: {NO_SCHEDD}" in out


def test_previous_value_bounds_the_step(capsys: pytest.CaptureFixture[str]):
    assert main(["throttle", "running", "1234", *ARGS, "--previous", "10"]) == 0
    assert "would set max_nodes = 12 (dry run)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["throttle", "running", "1234", "5678", *ARGS, "--consumers", "1"], "--consumers"),
        (["throttle", "running", "12x", *ARGS], "argument CLUSTER_ID"),
        (["throttle", "running", "0", *ARGS], "argument CLUSTER_ID"),
        (["throttle", "running", "1", *ARGS, "--source-site", "a b"], "argument --source-site"),
    ],
)
def test_bad_arguments_are_usage_errors(
    argv: list[str], problem: str, capsys: pytest.CaptureFixture[str]
):
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    assert code == 2
    assert problem in capsys.readouterr().err


def test_a_dry_run_needs_no_cluster_id(capsys: pytest.CaptureFixture[str]):
    assert main(["throttle", "running", *ARGS]) == 0
    jobs = expected_jobs(10e9, 100e6, consumers=1)
    assert f"max_nodes = {jobs} per DAG (dry run" in capsys.readouterr().out
    assert main(["throttle", "running", *ARGS, "--consumers", "3"]) == 0
    assert f"max_nodes = {expected_jobs(10e9, 100e6, 3)} per DAG" in capsys.readouterr().out


def test_apply_needs_a_cluster_id(capsys: pytest.CaptureFixture[str]):
    assert main(["throttle", "running", *ARGS, "--apply"]) == 2
    assert "--apply: name the DAGMan cluster id" in capsys.readouterr().err


def test_source_site_is_optional_with_bandwidth(capsys: pytest.CaptureFixture[str]):
    argv = ["throttle", "running", "--per-job-rate", "100Mbit", "--bandwidth", "1Gbit"]
    assert main(argv) == 0
    assert f"max_nodes = {expected_jobs(1e9, 100e6, 1)} per DAG" in capsys.readouterr().out


def test_without_previous_the_current_throttle_is_read_and_a_failure_said(
    capsys: pytest.CaptureFixture[str],
):
    current = current_node_throttle(298)
    assert (current.max_nodes, current.problem) == (None, "Unable to locate local daemon.")
    assert main(["throttle", "running", "298", *ARGS]) == 0
    out, err = capsys.readouterr()
    assert "DAGMan 298: cannot read DAGMan_MaxJobs (Unable to locate local daemon.)" in err
    assert "not stepped (give --previous)" in err
    jobs = expected_jobs(10e9, 100e6, consumers=1)  # no previous value, so no step
    assert f"DAGMan 298: would set max_nodes = {jobs} (dry run)" in out
