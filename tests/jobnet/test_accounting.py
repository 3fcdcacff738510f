"""Accounting summaries against totals computed here another way; the CLI's table and JSON."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from larkps.cli.app import main
from larkps.errors import FieldError
from larkps.jobnet.accounting import (
    LEDGER_CLASSES,
    LEDGER_DIRECTIONS,
    Counter,
    RunRecord,
    summarize,
)
from larkps.jobnet.ledger import Ledger, ProcessId

JOBS = ("1.0", "2.0", "10.0", "10.1")
OWNERS = ("alice", "bob", "carol")


@st.composite
def runs(draw: st.DrawFn) -> list[RunRecord]:
    found = []
    for run_id in range(draw(st.integers(0, 12))):
        keys = draw(
            st.sets(st.tuples(st.sampled_from(LEDGER_DIRECTIONS), st.sampled_from(LEDGER_CLASSES)))
        )
        counters = tuple(
            Counter(d, k, draw(st.integers(0, 2**40)), draw(st.integers(0, 2**30)))
            for d, k in sorted(keys)
        )
        ended = draw(st.none() | st.floats(0, 1000))
        found.append(
            RunRecord(
                run_id,
                draw(st.sampled_from(JOBS)),
                draw(st.sampled_from(OWNERS)),
                "rootless",
                "nat",
                None,
                0.0,
                ended,
                0,
                counters,
            )
        )
    return found


def expected(records: list[RunRecord], by: str, since: float | None) -> dict[str, list[int]]:
    """key -> [runs, bytes in, bytes out, packets in, packets out], summed cell by cell."""
    table: dict[str, list[int]] = {}
    for run in records:
        if since is not None and run.ended is not None and run.ended < since:
            continue
        if by == "class":
            keys = sorted({c.klass for c in run.counters})
        else:
            keys = [run.job_id if by == "job" else run.owner]
        for key in keys:
            cells = table.setdefault(key, [0, 0, 0, 0, 0])
            cells[0] += 1
            for c in run.counters:
                if by != "class" or c.klass == key:
                    column = 1 if c.direction == "in" else 2
                    cells[column] += c.bytes
                    cells[column + 2] += c.packets
    return table


@given(runs(), st.sampled_from(("job", "owner", "class")), st.none() | st.floats(0, 1000))
def test_every_row_and_the_total_match_sums_made_cell_by_cell(records, by, since):
    summary = summarize(records, by, since)
    got = {
        r.key: [
            r.totals.runs,
            r.totals.bytes_in,
            r.totals.bytes_out,
            r.totals.packets_in,
            r.totals.packets_out,
        ]
        for r in summary.rows
    }
    assert got == expected(records, by, since)
    chosen = [r for r in records if since is None or r.ended is None or r.ended >= since]
    everything = [c for r in chosen for c in r.counters]
    total = summary.total
    assert total.runs == len(chosen)
    assert total.bytes_in == sum(c.bytes for c in everything if c.direction == "in")
    assert total.bytes_out == sum(c.bytes for c in everything if c.direction == "out")
    assert total.packets_in + total.packets_out == sum(c.packets for c in everything)
    if by != "class":
        assert sum(r.totals.runs for r in summary.rows) == total.runs
        assert sum(r.totals.bytes_in for r in summary.rows) == total.bytes_in


def test_rows_come_in_a_natural_order():
    records = [
        RunRecord(i, job, "o", "m", "p", None, 0.0, None, 0, ())
        for i, job in enumerate(("10.0", "2.0", "10.1", "1.0"))
    ]
    assert [r.key for r in summarize(records, "job").rows] == ["1.0", "2.0", "10.0", "10.1"]


def test_counters_are_checked():
    with pytest.raises(FieldError, match="class"):
        Counter("in", "mars", 1, 1)
    with pytest.raises(FieldError, match="bytes"):
        Counter("out", "elsewhere", -1, 1)


# -- the command ----------------------------------------------------------------------
@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.sqlite"
    me = ProcessId.of(os.getpid())
    now = time.time()
    rows = [  # job, owner, ended (seconds ago), counters
        ("3.0", "alice", 7200, [("in", "same-site", 1000, 10), ("out", "elsewhere", 4000, 40)]),
        ("3.1", "alice", 60, [("in", "other-sites", 500, 5), ("out", "same-site", 250, 3)]),
        ("4.0", "bob", 30, [("out", "elsewhere", 9000, 90)]),
    ]
    with Ledger(path) as book:
        for job, owner, ago, counters in rows:
            run = book.start_run(job, owner, "rootless", "nat", None, me, [], now - ago - 10)
            book.end_run(run, 0, [Counter(*c) for c in counters], now - ago)
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_per_owner(ledger: Path, capsys: pytest.CaptureFixture[str]):
    code, out, _ = run_cli(
        capsys, "jobnet", "accounting", "--ledger", str(ledger), "--by", "owner", "--format", "json"
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["by"] == "owner"
    assert doc["ledgers"] == [str(ledger)]
    assert doc["rows"] == [
        {
            "key": "alice",
            "runs": 2,
            "bytes_in": 1500,
            "bytes_out": 4250,
            "packets_in": 15,
            "packets_out": 43,
        },
        {
            "key": "bob",
            "runs": 1,
            "bytes_in": 0,
            "bytes_out": 9000,
            "packets_in": 0,
            "packets_out": 90,
        },
    ]
    assert doc["total"] == {
        "runs": 3,
        "bytes_in": 1500,
        "bytes_out": 13250,
        "packets_in": 15,
        "packets_out": 133,
    }


def test_table_per_class_since_an_hour(ledger: Path, capsys: pytest.CaptureFixture[str]):
    code, out, _ = run_cli(
        capsys, "jobnet", "accounting", "--ledger", str(ledger), "--by", "class", "--since", "1h"
    )
    assert code == 0
    lines = [line.split() for line in out.splitlines()]
    assert lines == [
        ["class", "runs", "bytes", "in", "bytes", "out", "packets", "in", "packets", "out"],
        ["same-site", "1", "0", "250", "0", "3"],
        ["other-sites", "1", "500", "0", "5", "0"],
        ["elsewhere", "1", "0", "9000", "0", "90"],
        ["total", "2", "500", "9250", "5", "93"],
    ]


def test_the_ledger_of_the_nodes_config(
    ledger: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    config = tmp_path / "jobnet.toml"
    config.write_text(f'[jobnet]\nledger = "{ledger}"\n')
    code, out, _ = run_cli(capsys, "jobnet", "accounting", "--config", str(config))
    assert code == 0
    assert [line.split()[:2] for line in out.splitlines()] == [
        ["job", "runs"],
        ["3.0", "1"],
        ["3.1", "1"],
        ["4.0", "1"],
        ["total", "3"],
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--by", "site"], "invalid choice: 'site'"),
        (["--since", "5"], "has no unit"),
        (["--format", "xml"], "invalid choice: 'xml'"),
        (["--ledger", "/nonexistent/l.sqlite"], "--ledger /nonexistent/l.sqlite: No such file"),
        (["--config", "/nonexistent.toml"], "/nonexistent.toml: file not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys: pytest.CaptureFixture[str]):
    try:
        code = main(["jobnet", "accounting", *argv])
    except SystemExit as exc:  # argparse
        code = int(str(exc.code))
    _, err = capsys.readouterr()
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert len([line for line in err.splitlines() if "error" in line]) == 1


def test_a_newer_ledger_is_a_runtime_error_of_one_line(
    ledger: Path, capsys: pytest.CaptureFixture[str]
):
    db = sqlite3.connect(ledger)
    db.execute("PRAGMA user_version = 9")
    db.close()
    code, out, err = run_cli(capsys, "jobnet", "accounting", "--ledger", str(ledger))
    assert code == 1
    assert out == ""
    assert err == (
        f"larkps: error: ledger {ledger} has schema version 9, newer than this larkps knows "
        "(2): read it with the larkps that wrote it\n"
    )


def test_no_ledger_yet(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    config = tmp_path / "jobnet.toml"
    config.write_text(f'[jobnet]\nledger = "{tmp_path}/none/ledger.sqlite"\n')
    code, out, _ = run_cli(
        capsys, "jobnet", "accounting", "--config", str(config), "--format", "json"
    )
    assert code == 0
    assert json.loads(out)["total"]["runs"] == 0


def test_an_unreadable_ledger_is_named_and_the_rest_summed(
    ledger: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    broken = tmp_path / "ledger.4242"  # another writer's own directory, with a non-ledger
    broken.mkdir()
    (broken / "ledger.sqlite").write_text("garbage")
    config = tmp_path / "jobnet.toml"
    config.write_text(f'[jobnet]\nledger = "{ledger}"\n')
    code, out, err = run_cli(
        capsys, "jobnet", "accounting", "--config", str(config), "--format", "json"
    )
    assert code == 1
    doc = json.loads(out)
    assert doc["total"]["runs"] == 3
    assert doc["ledgers"] == [str(ledger)]
    assert doc["unread"] == [
        f"{broken / 'ledger.sqlite'} is not a ledger (not an SQLite file); it is left alone"
    ]
    assert err == f"larkps: warning: {doc['unread'][0]}\n"
