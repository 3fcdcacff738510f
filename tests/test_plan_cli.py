"""`larkps plan` against `larkps throttle` and `larkps advise` on the same embedded archive.

Every command runs as a subprocess on the same configuration and state. The
archive follows the real clock, so a test may land between two runs: each
comparison is bracketed by two runs of the reference command, and it counts only
when those two agree (otherwise it is tried again).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

CONFIG = """\
[larkps]
state_dir = "{state}"

[[archives]]
name = "mesh"
kind = "embedded"

[archives.embedded]
sites = 4
seed = 1
flavour = "esmond"

[windows]
list = ["24h"]
default = "24h"
stale_after = "6h"

[publish.file]
path = "{state}/larkps.ads"
"""
SRC, DST = "ALPHA-T2", "BRAVO-T1"
PLAN = ["--from", SRC, "--bytes", "2TB", "--deadline", "6h", "--bytes-per-job", "2GB"]
pytestmark = pytest.mark.e2e


def larkps(*argv: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "larkps", *argv], capture_output=True, text=True, check=False
    )
    assert done.returncode == code, done.stderr
    return done


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    state = tmp_path_factory.mktemp("plan")
    path = state / "larkps.toml"
    path.write_text(CONFIG.format(state=state))
    return path


def plan(config: Path, to: str, *extra: str) -> dict[str, Any]:
    out = larkps("plan", *PLAN, "--to", to, "--config", str(config), "--format", "json", *extra)
    document: dict[str, Any] = json.loads(out.stdout)
    return document


def throttle_rationale(config: Path, dag: Path) -> str:
    done = larkps(
        "throttle", "dag", str(dag), "--category", "xfer", "--source-site", SRC,
        "--dest-site", DST, "--bytes-per-job", "2GB", "--config", str(config),
    )  # fmt: skip
    return done.stderr.strip().split("; ", 1)[1]


def test_plan_takes_n_and_r_from_the_throttle(config: Path, tmp_path: Path):
    dag = tmp_path / "x.dag"
    dag.write_text("JOB a a.sub\nCATEGORY a xfer\n")  # no MAXJOBS yet: not stepped
    for _ in range(3):
        before = throttle_rationale(config, dag)
        document = plan(config, DST)
        if before == throttle_rationale(config, dag):
            break
    else:
        pytest.fail("the archive changed between every pair of runs")
    decision = document["decision"]
    assert decision["rationale"] == before
    assert before.startswith(f"N={decision['jobs']} ")
    assert f"MAXJOBS xfer {decision['jobs']}" in document["maxjobs"]
    # the completion follows from N and R by the wave arithmetic
    jobs, each, rate = document["jobs_total"], document["bytes_per_job"], decision["per_job_bps"]
    waves = -(-jobs // decision["jobs"])
    assert (jobs, each, document["waves"]) == (1000, 2 * 10**9, waves)
    assert document["completion_s"] == pytest.approx(waves * each * 8 / rate)
    assert document["feasible"] == (document["completion_s"] <= 6 * 3600)


def advise_rows(config: Path) -> dict[str, dict[str, Any]]:
    larkps("once", "--config", str(config))
    out = larkps(
        "advise", "--config", str(config), "--data-site", SRC, "--input-size", "2TB",
        "--deadline", "6h", "--format", "json",
    )  # fmt: skip
    return {r["site"]: r for r in json.loads(out.stdout)["rows"] if r["rank"] != 1}


def test_plan_uses_the_figure_advise_ranks_by(config: Path):
    for _ in range(3):
        before = advise_rows(config)
        document = plan(config, "any")
        after = advise_rows(config)
        same = {s: r["lower_mbps"] for s, r in before.items()}
        if same == {s: r["lower_mbps"] for s, r in after.items()}:
            break
    else:
        pytest.fail("the archive changed between every pair of runs")
    plans = [document, *document["alternatives"]]
    assert {p["destination_site"] for p in plans} == set(before)
    for p in plans:
        row = before[p["destination_site"]]
        path = next(c for c in p["candidates"] if c["capacity"]["name"].startswith("path "))
        assert path["capacity"]["bps"] / 1e6 == pytest.approx(row["lower_mbps"], rel=1e-9)
        # one transfer on the whole path (advise) is never slower than the plan's share of it
        assert row["transfer_s"] <= p["completion_s"] * (1 + 1e-9)
        if p["feasible"]:
            assert row["meets_deadline"]
    ranked = [p["completion_s"] for p in plans if p["trusted"]]
    assert ranked == sorted(ranked)


def test_infeasible_plan_names_largest_volume_and_other_sites(config: Path):
    document = plan(config, DST, "--deadline", "20m")
    assert not document["feasible"]
    assert 0 < document["largest_bytes"] < 2 * 10**12
    assert document["deadline_needed_s"] == pytest.approx(document["completion_s"], abs=1)
    assert {p["destination_site"] for p in document["alternatives"]} == {"CHARLIE-T2", "DELTA-T2"}
    table = larkps("plan", *PLAN, "--to", DST, "--deadline", "20m", "--config", str(config)).stdout
    assert "NOT FEASIBLE" in table.splitlines()[0]
    assert "largest volume" in table and "other destinations, ranked:" in table


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--bytes", "2XB"], "--bytes"),
        (["--deadline", "6"], "--deadline"),
        (["--files", "0"], "--files"),
        (["--to", SRC], "--to"),
        (["--to", "NOWHERE"], "--to"),
        (["--to", "a;b"], "--to"),
    ],
)
def test_bad_input_is_one_line_naming_the_flag(config: Path, argv: list[str], flag: str):
    base = ["plan", *PLAN, "--to", DST, "--config", str(config)]
    done = larkps(*base, *argv, code=2)
    error = done.stderr.strip().splitlines()[-1]
    assert flag in error and "Traceback" not in done.stderr
