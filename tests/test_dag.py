"""DAG files: MAXJOBS rewritten in place of its value only; every other byte stays."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import pytest

from larkps.apply.dagfile import DagError, Setting, check_category, load_dag, parse_dag, set_maxjobs
from larkps.cli.app import main
from larkps.embedded import EmbeddedArchive, Mesh, MeshConfig
from larkps.errors import FieldError

DAG = """\
# Transfers first, then analysis.
# MAXJOBS xfer 1   <- a comment, not a command
JOB  fetch1 fetch.sub
JOB  fetch2 fetch.sub
job  fetch3 fetch.sub DIR  sub
JOB  inline {
    executable = /bin/true
    MAXJOBS xfer 99
}
JOB analysis analysis.sub
Category fetch1 xfer
CATEGORY fetch2 xfer
category fetch3   xfer
CATEGORY analysis cpu
VARS fetch1 url="https://example.org/a" \\
     size="2GB"
MaxJobs   xfer   4\t
MAXJOBS cpu \\
  10
SPLICE more more.dag DIR splices
SUBDAG EXTERNAL nested nested.dag
MAXJOBS +wan 3
PARENT fetch1 fetch2 fetch3 CHILD analysis
"""


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    assert len(new) >= len(old)
    pairs = [(a, b) for a, b in zip(old, new, strict=False) if a != b]
    return pairs + [("", extra) for extra in new[len(old) :]]


def test_parser_understands_the_dag():
    dag = parse_dag(DAG, "t.dag")
    assert dag.categories() == {"xfer": ["fetch1", "fetch2", "fetch3"], "cpu": ["analysis"]}
    assert dag.maxjobs() == {"xfer": 4, "cpu": 10, "+wan": 3}
    assert dag.splices() == [("more", "more.dag")]
    assert dag.subdags() == [("nested", "nested.dag")]
    vars_line = next(s for s in dag.statements if s.keyword == "VARS")
    assert vars_line.words[-1] == 'size="2GB"' and vars_line.line == 15


def test_rewrite_touches_only_the_value_of_the_category():
    after = set_maxjobs(parse_dag(DAG), "xfer", 12)
    assert changed_lines(DAG, after) == [("MaxJobs   xfer   4\t\n", "MaxJobs   xfer   12\t\n")]
    assert after.encode().replace(b"xfer   12", b"xfer   4") == DAG.encode()


def test_value_on_a_continuation_line_is_rewritten_in_place():
    after = set_maxjobs(parse_dag(DAG), "cpu", 7)
    assert changed_lines(DAG, after) == [("  10\n", "  7\n")]


def test_missing_category_line_is_appended_once():
    after = set_maxjobs(parse_dag(DAG), "+lan", 5)
    assert changed_lines(DAG, after) == [("", "MAXJOBS +lan 5\n")]
    assert set_maxjobs(parse_dag(after), "+lan", 5) == after


@pytest.mark.parametrize("category", ["xfer", "cpu", "+wan", "+lan"])
def test_rewriting_twice_gives_the_same_file(category: str):
    once = set_maxjobs(parse_dag(DAG), category, 9)
    assert set_maxjobs(parse_dag(once), category, 9) == once


def test_every_maxjobs_line_of_a_category_changes_because_the_last_one_wins():
    text = "JOB a a.sub\nCATEGORY a x\nMAXJOBS x 1\nMAXJOBS x 2\n"
    assert set_maxjobs(parse_dag(text), "x", 5) == text.replace(" 1\n", " 5\n").replace(
        " 2\n", " 5\n"
    )


def test_crlf_and_missing_final_newline_are_kept():
    text = "JOB a a.sub\r\nCATEGORY a x\r\nMAXJOBS x 1"
    assert set_maxjobs(parse_dag(text), "x", 3) == "JOB a a.sub\r\nCATEGORY a x\r\nMAXJOBS x 3"
    assert set_maxjobs(parse_dag(text), "y", 3).endswith("MAXJOBS x 1\r\nMAXJOBS y 3\r\n")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("MAXJOBS x\n", "expected 'MAXJOBS CategoryName Value'"),
        ("MAXJOBS x 1 2\n", "expected 'MAXJOBS CategoryName Value'"),
        ("MAXJOBS x -1\n", "non-negative integer"),
        ("CATEGORY a\n", "expected 'CATEGORY NodeName CategoryName'"),
        ("SUBDAG nested n.dag\n", "SUBDAG EXTERNAL"),
    ],
)
def test_malformed_lines_are_errors_with_file_and_line(text: str, problem: str):
    with pytest.raises(DagError, match=problem) as caught:
        parse_dag("# header\n" + text, "bad.dag")
    assert str(caught.value).startswith("bad.dag:2: ")


@pytest.mark.parametrize("name", ["x y", "x;rm -rf /", "$(id)", "a\nMAXJOBS b 1", "", "+", "-x"])
def test_hostile_category_names_are_refused(name: str):
    with pytest.raises(DagError, match=r"^category: expected an optional '\+'") as caught:
        check_category(name)
    assert isinstance(caught.value, FieldError) and caught.value.field == "category"
    with pytest.raises(DagError):
        set_maxjobs(parse_dag(DAG), name, 3)


def test_maxjobs_zero_is_refused():
    with pytest.raises(DagError, match="never run"):
        set_maxjobs(parse_dag(DAG), "xfer", 0)


# --- the command ------------------------------------------------------------------


def dag_file(tmp_path: Path) -> Path:
    path = tmp_path / "work.dag"
    path.write_bytes(DAG.encode())
    (tmp_path / "splices").mkdir()
    (tmp_path / "splices" / "more.dag").write_text("JOB m m.sub\nCATEGORY m +wan\n")
    return path


def throttle_dag(path: Path, *extra: str) -> int:
    base = ["throttle", "dag", str(path), "--category", "xfer", "--source-site", "CERN"]
    return main([*base, "--per-job-rate", "100Mbit", "--bandwidth", "10Gbit", *extra])


def test_stdout_mode_prints_the_dag_and_leaves_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    path = dag_file(tmp_path)
    assert throttle_dag(path) == 0
    out, err = capsys.readouterr()
    # 0.8 x 0.9 x 10G / 100M = 72, but the previous value 4 allows +2 only
    assert changed_lines(DAG, out) == [("MaxJobs   xfer   4\t\n", "MaxJobs   xfer   6\t\n")]
    assert f"MAXJOBS xfer 6 (was 4 at {path}:17)" in err and "N=6 " in err
    assert path.read_bytes() == DAG.encode()


def test_in_place_writes_a_backup_and_is_idempotent_at_steady_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    path = dag_file(tmp_path)
    assert throttle_dag(path, "--in-place") == 0
    backup = tmp_path / "work.dag.bak"
    assert backup.read_bytes() == DAG.encode()
    first = path.read_text()
    assert changed_lines(DAG, first) == [("MaxJobs   xfer   4\t\n", "MaxJobs   xfer   6\t\n")]
    for _ in range(40):  # +2 per run up to the target 72, then nothing changes
        assert throttle_dag(path, "--in-place") == 0
    settled = path.read_bytes()
    assert b"MaxJobs   xfer   72\t\n" in settled
    assert throttle_dag(path, "--in-place") == 0
    assert path.read_bytes() == settled
    assert "unchanged" in capsys.readouterr().out.splitlines()[-2]
    backups = sorted(p.name for p in tmp_path.iterdir() if ".bak" in p.name)
    # one backup per change (the first run and 33 steps of +2 from 6 to 72), none overwritten
    assert backups == sorted(["work.dag.bak"] + [f"work.dag.bak.{n}" for n in range(1, 34)])
    assert (tmp_path / "work.dag.bak.1").read_bytes() == DAG.encode().replace(
        b"xfer   4\t", b"xfer   6\t"
    )


def test_unknown_local_category_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    path = dag_file(tmp_path)
    base = ["throttle", "dag", str(path), "--category", "nope", "--source-site", "CERN"]
    code = main([*base, "--per-job-rate", "1Gbit", "--bandwidth", "10Gbit"])
    assert code == 2
    assert "--category: " in capsys.readouterr().err
    assert path.read_bytes() == DAG.encode()


def test_hostile_category_option_fails_before_reading(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as caught:
        main(["throttle", "dag", "/nonexistent.dag", "--category", "x;rm", "--source-site", "A"])
    assert caught.value.code == 2
    assert "argument --category: expected an optional '+'" in capsys.readouterr().err


def test_missing_dag_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert throttle_dag(tmp_path / "none.dag") == 2
    assert "file not found" in capsys.readouterr().err


def test_without_bandwidth_or_config_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    base = ["throttle", "dag", str(dag_file(tmp_path)), "--category", "xfer"]
    assert main([*base, "--source-site", "A", "--per-job-rate", "1Gbit"]) == 2
    assert "--bandwidth or --config" in capsys.readouterr().err


def write_config(path: Path, url: str, mesh: Mesh) -> None:
    lines = ["[[archives]]", 'name = "t"', 'kind = "esmond"', f'url = "{url}"', ""]
    for site, entry in sorted(mesh.site_map().items()):
        lines.append(f'[sites."{site}"]')
        lines.append("hosts = [" + ", ".join(f'"{h}"' for h in entry["hosts"]) + "]")
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.e2e
def test_measured_bandwidth_drives_maxjobs(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    mesh = Mesh(MeshConfig(sites=3, seed=5))
    src, dst = mesh.sites[0].name, mesh.sites[1].name
    path = tmp_path / "m.dag"
    path.write_text("JOB a a.sub\nCATEGORY a xfer\n")
    config = tmp_path / "larkps.toml"
    started = int(time.time())
    with EmbeddedArchive(mesh) as archive:
        write_config(config, archive.url, mesh)
        argv = ["throttle", "dag", str(path), "--category", "xfer", "--source-site", src]
        argv += ["--dest-site", dst, "--per-job-rate", "100Mbit", "--config", str(config)]
        assert main([*argv, "--in-place"]) == 0
    out = capsys.readouterr().out
    jobs = parse_dag(path.read_text()).maxjobs()["xfer"]
    assert f"path {src}->{dst}/" in out
    # A path's lower bound never exceeds the best test the archive really holds in
    # (a window a little wider than) the 24 h window, so neither can N x R / (u x s).
    start, end = started - 86400 - 600, int(time.time()) + 600
    best = max(
        mesh.truth(src, dst, family, "throughput", start, end).max or 0.0
        for family in ("ipv4", "ipv6")
    )
    assert best > 0
    assert 1 <= jobs <= max(1, math.floor(0.8 * 0.9 * best / 100e6 * (1 + 1e-9)))


# --- INCLUDE, SPLICE, comments ------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def run_dag(path: Path, category: str, *extra: str) -> int:
    base = ["throttle", "dag", str(path), "--category", category]
    return main([*base, "--per-job-rate", "100Mbit", "--bandwidth", "10Gbit", *extra])


def test_include_is_read_in_place_and_a_later_included_value_is_overridden(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    # DAGMan reads INCLUDE as if the lines stood there: the included MAXJOBS 3,
    # coming after the top file's 10, is the one in force.
    limits = write(tmp_path / "conf" / "limits.dag", "# limits\nMAXJOBS xfer 3\n")
    nodes = write(tmp_path / "nodes.dag", "JOB a a.sub\nJOB b a.sub\nINCLUDE cats.dag\n")
    write(tmp_path / "cats.dag", "CATEGORY ALL_NODES xfer\n")
    top = write(
        tmp_path / "top.dag", "INCLUDE nodes.dag\nMAXJOBS xfer 10\nINCLUDE conf/limits.dag\n"
    )
    assert run_dag(top, "xfer", "--in-place") == 0
    out = capsys.readouterr().out
    assert f"MAXJOBS xfer 5 (was 3 at {limits}:2)" in out  # 3 + step 2
    assert top.read_text() == (
        "INCLUDE nodes.dag\nMAXJOBS xfer 5\nINCLUDE conf/limits.dag\nMAXJOBS xfer 5\n"
    )
    assert limits.read_text() == "# limits\nMAXJOBS xfer 3\n"
    assert nodes.read_text() == "JOB a a.sub\nJOB b a.sub\nINCLUDE cats.dag\n"
    assert run_dag(top, "xfer", "--in-place") == 0  # now the top file's last line rules
    assert f"(was 5 at {top}:4)" in capsys.readouterr().out
    assert top.read_text().count("MAXJOBS xfer 7\n") == 2


def test_include_cycles_and_missing_files_name_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    top = write(tmp_path / "top.dag", "JOB a a.sub\nCATEGORY a x\nINCLUDE b.dag\n")
    write(tmp_path / "b.dag", "\nINCLUDE top.dag\n")
    assert run_dag(top, "x") == 2
    assert f"{tmp_path}/b.dag:2: {top} includes or splices itself" in capsys.readouterr().err
    write(tmp_path / "b.dag", "INCLUDE gone.dag\n")
    assert run_dag(top, "x") == 2
    assert f"b.dag:1: {tmp_path}/gone.dag: file not found" in capsys.readouterr().err


def splice_dag(tmp_path: Path, top_extra: str = "") -> Path:
    """Two splices of +xfer nodes; the second also has a local 'xfer' of its own."""
    write(tmp_path / "a" / "one.dag", "JOB f1 f.sub\nJOB f2 f.sub\nCATEGORY ALL_NODES +xfer\n")
    write(
        tmp_path / "two.dag",
        "JOB g1 f.sub\nCATEGORY g1 +xfer\nMAXJOBS +xfer 4\nJOB h h.sub\nCATEGORY h xfer\n",
    )
    return write(tmp_path / "top.dag", "SPLICE one one.dag DIR a\nSPLICE two two.dag\n" + top_extra)


def test_a_splice_global_maxjobs_is_the_previous_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    top = splice_dag(tmp_path)
    tree = load_dag(top)
    assert tree.maxjobs("+xfer") == Setting(4, f"splice two, {tmp_path}/two.dag:3")
    assert tree.maxjobs("xfer") is None  # the splice's own xfer is scoped to it
    assert run_dag(top, "+xfer", "--in-place") == 0
    assert f"MAXJOBS +xfer 6 (was 4 at splice two, {tmp_path}/two.dag:3)" in (
        capsys.readouterr().out
    )
    # a higher level overrides a splice: the line goes into the top file
    assert top.read_text().endswith("SPLICE two two.dag\nMAXJOBS +xfer 6\n")
    assert load_dag(top).maxjobs("+xfer") == Setting(6, f"{top}:3")
    assert "MAXJOBS +xfer 4" in (tmp_path / "two.dag").read_text()


def test_the_first_splice_that_limits_a_global_category_wins(tmp_path: Path):
    top = splice_dag(tmp_path)
    write(tmp_path / "a" / "one.dag", "JOB f1 f.sub\nCATEGORY f1 +xfer\nMAXJOBS +xfer 2\n")
    assert load_dag(top).maxjobs("+xfer") == Setting(2, f"splice one, {tmp_path}/a/one.dag:3")


def test_a_global_category_nothing_uses_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    top = splice_dag(tmp_path)
    assert run_dag(top, "+lan") == 2
    assert "--category: " in (err := capsys.readouterr().err) and "+xfer" in err


def test_a_missing_splice_names_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    top = write(tmp_path / "top.dag", "JOB a a.sub\nCATEGORY a x\nSPLICE s gone.dag\n")
    assert run_dag(top, "x") == 2
    assert f"{top}:3: SPLICE s: {tmp_path}/gone.dag: file not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    "line",
    ["MAXJOBS xfer 4 # was 2", "CATEGORY a xfer #note", "INCLUDE more.dag # limits"],
)
def test_an_inline_comment_dagman_refuses_is_an_error_naming_the_line(line: str):
    # condor_dagman 25.13: "Failed to parse CATEGORY command: Unexpected token '#'"
    with pytest.raises(DagError, match=r"^t\.dag:2: DAGMan refuses a comment after"):
        parse_dag(f"JOB a a.sub\n{line}\n", "t.dag")


def test_slash_comment_lines_and_hashes_elsewhere_are_not_commands():
    dag = parse_dag(
        "// MAXJOBS xfer 1\n  // CATEGORY a y\nJOB a a.sub\nCATEGORY a xfer\n"
        'VARS a note="#1"\nMAXJOBS xfer 2\n'
    )
    assert dag.maxjobs() == {"xfer": 2} and dag.categories() == {"xfer": ["a"]}


def test_inline_description_closes_only_on_its_token_alone():
    text = "JOB a @=end\n@endless = 1\nMAXJOBS xfer 9\n@end\nCATEGORY a xfer\n"
    assert parse_dag(text).maxjobs() == {}


# --- the step, the backup, the file's owner ---------------------------------------


def test_a_dag_with_no_earlier_value_is_not_stepped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    path = write(tmp_path / "w.dag", "JOB a a.sub\nCATEGORY a xfer\n")
    assert run_dag(path, "xfer") == 0
    out, err = capsys.readouterr()
    # 0.8 x 0.9 x 10 Gbit/s / 100 Mbit/s = 72 at once, no +2 step from nothing
    assert out.endswith("MAXJOBS xfer 72\n")
    assert "MAXJOBS xfer 72 (was unset, so not stepped)" in err


def test_source_site_is_optional_with_bandwidth_and_needed_to_measure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    path = write(tmp_path / "w.dag", "JOB a a.sub\nCATEGORY a xfer\n")
    assert run_dag(path, "xfer") == 0
    capsys.readouterr()
    config = write(
        tmp_path / "l.toml",
        '[[archives]]\nname = "t"\nkind = "esmond"\nurl = "http://127.0.0.1:9/"\n',
    )
    base = ["throttle", "dag", str(path), "--category", "xfer", "--per-job-rate", "1Gbit"]
    assert main([*base, "--config", str(config)]) == 2
    assert "--source-site: needed to measure" in capsys.readouterr().err


def test_an_existing_backup_is_never_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    path = dag_file(tmp_path)
    write(tmp_path / "work.dag.bak", "precious\n")
    write(tmp_path / "work.dag.bak.1", "also precious\n")
    assert throttle_dag(path, "--in-place") == 0
    assert f"backup in {tmp_path}/work.dag.bak.2" in capsys.readouterr().out
    assert (tmp_path / "work.dag.bak").read_text() == "precious\n"
    assert (tmp_path / "work.dag.bak.1").read_text() == "also precious\n"
    assert (tmp_path / "work.dag.bak.2").read_bytes() == DAG.encode()


def test_the_rewritten_file_keeps_its_mode_and_owner(tmp_path: Path):
    path = dag_file(tmp_path)
    path.chmod(0o640)
    owner = (65534, 65534) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    if os.geteuid() == 0:
        os.chown(path, *owner)
    assert throttle_dag(path, "--in-place") == 0
    for written in (path, tmp_path / "work.dag.bak"):
        stat = written.stat()
        assert (stat.st_mode & 0o777, stat.st_uid, stat.st_gid) == (0o640, *owner)
