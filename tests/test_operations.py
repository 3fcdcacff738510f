"""What an operator sees: the daemon's journal, `larkps status`, /metrics, one-line errors.

The daemon runs as a real child process against the embedded archive (and a dead
archive on a closed 127.0.0.1 port); /metrics is scraped over real HTTP; archives
that misbehave are real servers on 127.0.0.1 (tests/archive_fake.py, pytest-httpserver).
"""

from __future__ import annotations

import logging
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from archive_fake import ARCHIVE_PATH, FakeArchive, path_name, sleeper, throughput_metadata
from processes import free_port, wait_for
from prometheus_client.parser import text_string_to_metric_families
from pytest_httpserver import HTTPServer

from larkps import __version__
from larkps.cli.app import main
from larkps.daemon.logs import configure
from larkps.daemon.service import Daemon
from larkps.errors import ArchiveUnavailable
from larkps.sources import HttpOptions, JsonClient
from larkps.store import runs as runlog
from larkps.store.db import Store

pytestmark = pytest.mark.e2e
LARKPS = [sys.executable, "-m", "larkps"]


def cycles(state: Path) -> list[dict]:
    if not (state / "larkps.sqlite").exists():
        return []
    with Store.in_directory(state) as store:
        return runlog.latest(store, 100)


def stored_points(state: Path) -> int:
    with Store.in_directory(state) as store:
        return int(store.connection.execute("SELECT count(*) FROM points").fetchone()[0])


def mesh_config(state: Path, dead_port: int | None, metrics_port: int = 0) -> str:
    text = (
        f'[larkps]\nstate_dir = "{state}"\ninterval = "1h"\n\n'
        '[[archives]]\nname = "mesh"\nkind = "embedded"\n'
        "[archives.embedded]\nsites = 3\nseed = 5\n\n"
    )
    if dead_port is not None:
        text += (
            f'[[archives]]\nname = "dead"\nkind = "esmond"\nurl = "http://127.0.0.1:{dead_port}"\n'
            "retries = 0\n\n"
        )
    return text + (
        f'[windows]\nlist = ["1h"]\ndefault = "1h"\n\n[publish.file]\npath = "{state}/larkps.ads"\n'
        f'[daemon]\nmetrics_port = {metrics_port}\nshutdown_timeout = "20s"\n'
    )


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert "_created" not in body
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def test_the_journal_status_and_metrics_of_a_daemon_with_a_dead_archive(tmp_path: Path):
    state, config = tmp_path / "state", tmp_path / "larkps.toml"
    dead, port = free_port(), free_port()  # nothing listens on `dead`
    config.write_text(mesh_config(state, dead, port))
    daemon = subprocess.Popen([*LARKPS, "run", "--config", str(config)], stderr=subprocess.PIPE)
    try:
        wait_for(lambda: len(cycles(state)) >= 1, 90, "the first cycle")
        metrics = scrape(port)
        daemon.send_signal(signal.SIGTERM)
        _, raw = daemon.communicate(timeout=60)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert daemon.returncode == 0
    (document,) = cycles(state)
    stderr = raw.decode()
    # text logs at INFO without -v: one line for the cycle, one per problem, nothing else
    # from the scheduler
    assert "apscheduler" not in stderr
    cycle_lines = [line for line in stderr.splitlines() if " larkps.daemon: cycle " in line]
    assert cycle_lines == [cycle_lines[0]] and cycle_lines[0].startswith(
        "INFO larkps.daemon: cycle partial: 1/2 archives answered, "
    )
    refused = f"cannot connect to http://127.0.0.1:{dead}/esmond/perfsonar/archive/"
    assert stderr.count(refused) == 1  # the problem, printed once
    assert f"WARNING larkps.daemon: archive dead: metadata: {refused}: connection refused" in stderr
    assert document["archives_failed"] == {"dead": f"{refused}: connection refused"}
    # metrics: per-archive health, the dead archive's error, only new points, build info
    assert metrics[("larkps_archive_up", (("archive", "mesh"),))] == 1.0
    assert metrics[("larkps_archive_up", (("archive", "dead"),))] == 0.0
    assert metrics[("larkps_source_errors_total", (("archive", "dead"),))] == 1.0
    success = ("larkps_archive_last_success_timestamp_seconds", (("archive", "mesh"),))
    assert metrics[success] == document["started"]
    assert ("larkps_archive_last_success_timestamp_seconds", (("archive", "dead"),)) not in metrics
    python = ".".join(str(n) for n in sys.version_info[:3])
    assert metrics[("larkps_build_info", (("python", python), ("version", __version__)))] == 1.0
    first_points = stored_points(state)
    assert metrics[("larkps_points_ingested_total", ())] == first_points == document["ingested"]

    # a `larkps once` after it: recorded for status; it ingests only what is new
    done = subprocess.run(
        [*LARKPS, "once", "--config", str(config)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(refused) == 1 and done.stderr == ""
    once = cycles(state)[0]
    assert once["mode"] == "once"
    assert once["ingested"] == stored_points(state) - first_points < once["points"]

    status = subprocess.run(
        [*LARKPS, "status", "--config", str(config)], capture_output=True, text=True, check=False
    )
    assert status.returncode == 1, status.stdout  # an archive is failing
    lines = status.stdout.splitlines()
    assert "failing archives: dead" in lines
    (dead_line,) = [line for line in lines if line.startswith("  dead ")]
    assert "FAILING  since " in dead_line and dead_line.endswith("connection refused")
    assert "last success never" in dead_line
    (mesh_line,) = [line for line in lines if line.startswith("  mesh ")]
    assert " ok " in mesh_line
    modes = [line.split()[2] for line in lines if line.startswith("  20")]
    assert modes == ["once", "run"]


def test_a_cycle_whose_only_archive_is_dead_counts_its_error(tmp_path: Path):
    state, config = tmp_path / "state", tmp_path / "larkps.toml"
    dead = free_port()
    config.write_text(
        f'[larkps]\nstate_dir = "{state}"\ninterval = "1h"\n\n'
        f'[[archives]]\nname = "dead"\nkind = "esmond"\nurl = "http://127.0.0.1:{dead}"\n'
        "retries = 0\n"
    )
    daemon = Daemon(config)
    for _ in range(2):
        document = daemon.run_one_cycle()
    assert not document["ok"]
    assert document["archives_failed"] == {
        "dead": f"cannot connect to http://127.0.0.1:{dead}/esmond/perfsonar/archive/:"
        " connection refused"
    }
    sample = daemon.metrics.registry.get_sample_value
    assert sample("larkps_source_errors_total", {"archive": "dead"}) == 2.0
    assert sample("larkps_archive_up", {"archive": "dead"}) == 0.0
    assert sample("larkps_cycles_total", {"outcome": "failed"}) == 2.0
    with Store.in_directory(state) as store:
        health = runlog.archive_health(store)["dead"]
    first = cycles(state)[-1]["started"]
    assert health.failing_since == first and health.last_success is None


def test_a_metrics_port_in_use_is_one_line(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "larkps.toml"
        config.write_text(mesh_config(tmp_path / "state", None, port))
        done = subprocess.run(
            [*LARKPS, "run", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1
    error = [line for line in done.stderr.splitlines() if not line.startswith("INFO ")]
    assert error == [
        f"larkps: error: metrics: cannot listen on 127.0.0.1:{port} (Address already in use)"
    ]


@pytest.mark.parametrize("argv", [["check-config", "CONFIG"], ["--help"], ["status", "--help"]])
def test_a_reader_that_goes_away_is_not_an_error(tmp_path: Path, argv: list[str]):
    config = tmp_path / "larkps.toml"
    config.write_text(mesh_config(tmp_path / "state", None))
    argv = [str(config) if a == "CONFIG" else a for a in argv]
    child = subprocess.Popen([*LARKPS, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()  # before the child has written anything
    stderr = child.stderr.read()
    # argparse itself drops a failed write of the help: 0 is as quiet as 141
    assert child.wait(timeout=60) in ((141,) if argv[0] == "check-config" else (0, 141))
    assert stderr == b""
    piped = subprocess.run(
        f"{sys.executable} -m larkps check-config {config} | head -n 1",
        shell=True,
        capture_output=True,
        text=True,
        check=False,
    )
    assert piped.stdout == "{\n" and piped.stderr == ""


def test_control_characters_in_errors_are_escaped(capsys: pytest.CaptureFixture[str]):
    assert main(["check-config", "no\nsuch\x1b[31m.toml"]) == 2
    err = capsys.readouterr().err
    assert err == "larkps: error: no\\nsuch\\x1b[31m.toml: file not found\n"


def test_connection_errors_say_why():
    options = HttpOptions(connect_timeout=1.0, retries=0)
    with pytest.raises(ArchiveUnavailable, match=r": connection refused$"):
        JsonClient("a", options).get(f"http://127.0.0.1:{free_port()}/x")
    with pytest.raises(ArchiveUnavailable) as caught:
        JsonClient("b", options).get("http://larkps-no-such-host.invalid/x")
    # "not found", or "cannot look up" where this machine has no resolver to ask
    assert re.fullmatch(
        r"archive b: cannot connect to http://larkps-no-such-host\.invalid/x: (host name"
        r" larkps-no-such-host\.invalid not found|cannot look up host name"
        r" larkps-no-such-host\.invalid \(.+\))",
        str(caught.value),
    ), str(caught.value)
    with full_listener() as port, pytest.raises(ArchiveUnavailable, match=r"within 1 s$"):
        JsonClient("c", options).get(f"http://127.0.0.1:{port}/x")


@contextmanager
def full_listener() -> Iterator[int]:
    """A port whose accept queue is full: the handshake of a new connection is never
    answered (the kernel drops its SYNs)."""
    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        address = full.getsockname()
        fillers = []
        for _ in range(3):
            filler = socket.socket()
            filler.settimeout(0.5)
            with suppress(TimeoutError):
                filler.connect(address)
            fillers.append(filler)
        try:
            with socket.socket() as probe:
                probe.settimeout(1.0)
                try:
                    probe.connect(address)
                except TimeoutError:
                    pass
                else:
                    pytest.skip("this kernel answered past a full accept queue")
            yield address[1]
        finally:
            for filler in fillers:
                filler.close()


def test_http_errors_show_a_short_clean_excerpt(
    httpserver: HTTPServer, capsys: pytest.CaptureFixture[str]
):
    page = (
        "<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title>"
        "<style>body { color: red }</style><script>var x = '<b>';</script></head>\n"
        "<body>\r\n<h1>Service\tUnavailable</h1>\n<p>The archive is being upgraded.</p>\n"
        + "<p>padding</p>\n" * 400
        + "</body></html>"
    )
    httpserver.expect_request(ARCHIVE_PATH).respond_with_data(page, 404, content_type="text/html")
    assert main(["stats", "--archive", httpserver.url_for("/")]) == 1
    # (werkzeug, the test server, logs its requests to the same stderr)
    (error,) = [line for line in capsys.readouterr().err.splitlines() if "larkps" in line]
    assert error.startswith("larkps: error: archive cli: HTTP 404 from ")
    client = JsonClient("x", HttpOptions(retries=0))
    with pytest.raises(Exception) as caught:
        client.get(httpserver.url_for(ARCHIVE_PATH))
    message = str(caught.value)
    prefix = f"archive x: HTTP 404 from {httpserver.url_for(ARCHIVE_PATH)}: "
    assert message.startswith(prefix)
    excerpt = message[len(prefix) :]
    assert excerpt.startswith("503 Service Unavailable Service Unavailable The archive is being")
    assert len(excerpt) <= 120 and excerpt.endswith("...")
    assert not any(c in excerpt for c in "<>{}\n\r\t")


def test_an_archive_that_lists_no_series_says_so(
    httpserver: HTTPServer, capsys: pytest.CaptureFixture[str]
):
    httpserver.expect_request(ARCHIVE_PATH).respond_with_json([])
    assert main(["stats", "--archive", httpserver.url_for("/")]) == 1
    (error,) = [line for line in capsys.readouterr().err.splitlines() if "larkps" in line]
    assert error.startswith("larkps: error: archive cli: lists no measurement series of the event")


def test_a_window_without_unit_is_refused(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as caught:
        main(["stats", "--archive", "ps.example.org", "--window", "24"])
    assert caught.value.code == 2
    assert "argument --window: '24' has no unit: write it as 24s, 24m, 24h or 24d" in (
        capsys.readouterr().err
    )


def fake_config(tmp_path: Path, url: str, extra: str = "") -> Path:
    config = tmp_path / "larkps.toml"
    config.write_text(
        f'[larkps]\nstate_dir = "{tmp_path / "state"}"\n\n'
        f'[[archives]]\nname = "fake"\nkind = "esmond"\nurl = "{url}"\n'
        'event_types = ["throughput"]\nretries = 0\nread_timeout = "20s"\n\n'
        f'[windows]\nlist = ["1h"]\ndefault = "1h"\n{extra}'
    )
    return config


def fake_archive(keys: list[str]) -> FakeArchive:
    now = int(time.time())
    metadata = [
        throughput_metadata(k, f"192.0.2.{i + 1}", "198.51.100.1") for i, k in enumerate(keys)
    ]
    points = {
        f"{ARCHIVE_PATH}{k}/throughput/base": [
            {"ts": ts, "val": 1e9} for ts in range(now - 3000, now, 600)
        ]
        for k in keys
    }
    return FakeArchive(metadata, points)


def test_a_failing_series_is_named_by_its_path_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    broken, fine = "ab" * 16, "cd" * 16
    with fake_archive([broken, fine]) as archive:
        archive.behaviours[broken] = lambda handler, params: handler.send_json({"no": 1}, 404)
        assert main(["once", "--config", str(fake_config(tmp_path, archive.url))]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    problems = [line for line in out.splitlines() if line.startswith("warning: ")]
    assert problems == [
        f"warning: archive fake: {path_name(broken)}: HTTP 404 from {archive.url}"
        f'{ARCHIVE_PATH}{broken}/throughput/base: {{"no": 1}}'
    ]
    assert broken not in problems[0].split(": HTTP")[0]  # the path, not the metadata key


def test_a_once_cut_by_the_deadline_says_partial_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    slow, fast = "ef" * 16, "01" * 16
    with fake_archive([slow, fast]) as archive:
        archive.behaviours[slow] = sleeper(8)
        config = fake_config(tmp_path, archive.url, '\n[fetch]\ndeadline = "2s"\n')
        assert main(["once", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert (
        "partial: the cycle deadline cut 1 series short (fetched in part or not at all),"
        f" such as archive fake: {path_name(slow)}"
    ) in out.splitlines()
    assert cycles(tmp_path / "state")[0]["partial"] is True


def test_a_once_whose_collector_refuses_keeps_the_ads_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    state = tmp_path / "state"
    config = tmp_path / "larkps.toml"
    config.write_text(
        mesh_config(state, None)
        + f'[publish.collector]\npool = "127.0.0.1:{free_port()}"\nretries = 1\ntimeout = "20s"\n'
    )
    assert main(["once", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    written = (state / "larkps.ads").read_text().count("\n\n") + 1
    assert f"not delivered: {written} ads wait in the spool for the next cycle" in out
    assert (state / "spool" / "pending.ads").read_text() == (state / "larkps.ads").read_text()
    # a publish failure is reported as one, not as a problem of an archive
    (warning,) = [line for line in out.splitlines() if line.startswith("warning: ")]
    assert warning.startswith("warning: publish to collector 127.0.0.1:")
    (document,) = cycles(state)
    assert document["partial"] is True and document["problems"] == []
    (problem,) = document["publish_problems"]
    assert warning == f"warning: publish to {problem['target']}: {problem['problem']}"
    assert problem["target"].startswith("collector 127.0.0.1:")


def test_stats_prints_each_problem_once_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    broken, fine = "ab" * 16, "cd" * 16
    with fake_archive([broken, fine]) as archive:
        archive.behaviours[broken] = lambda handler, params: handler.send_json({"no": 1}, 404)
        assert main(["stats", "--archive", archive.url, "--window", "1h"]) == 0
    out, err = capsys.readouterr()
    line = f"larkps: warning: archive cli: {path_name(broken)}: HTTP 404 from {archive.url}"
    assert err.count(line) == 1 and line not in out
    assert "ps-bw.cdcd.example.org" in out or "192.0.2.2" in out  # the table has the fine path


def test_scheduler_chatter_stays_below_warning(capsys: pytest.CaptureFixture[str]):
    scheduler = logging.getLogger("apscheduler.scheduler")
    late = "Run time of job was missed by 0:00:03"
    configure(0, "text", logging.INFO)  # larkps run without -v
    scheduler.info("Added job")
    scheduler.warning(late)
    logging.getLogger("larkps.daemon").info("cycle ok: 1/1 archives answered")
    assert capsys.readouterr().err == "INFO larkps.daemon: cycle ok: 1/1 archives answered\n"
    configure(1, "text", logging.INFO)  # -v: shown, as INFO
    scheduler.warning(late)
    scheduler.error("Job raised an exception")  # errors stay errors
    assert capsys.readouterr().err.splitlines() == [
        f"INFO apscheduler.scheduler: {late}",
        "ERROR apscheduler.scheduler: Job raised an exception",
    ]
    configure(0)  # as the other commands leave it


def test_an_archive_that_dies_between_discoveries_is_down(tmp_path: Path):
    """Its series list is still fresh in the state, but every series fails: the archive
    did not answer (up 0, its error counted), though nothing asked its list again."""
    with fake_archive(["12" * 16, "34" * 16]) as archive:
        config = fake_config(tmp_path, archive.url)
        daemon = Daemon(config)
        first = daemon.run_one_cycle()
    assert first["ok"] and list(first["archives"]) == ["fake"]
    second = daemon.run_one_cycle()  # the archive's port is closed now
    refused = f"cannot connect to {archive.url}{ARCHIVE_PATH}"
    assert not second["ok"] and second["error"].startswith(f"archive fake: {refused}")
    assert second["archives_failed"]["fake"].startswith(refused)
    assert second["archives_failed"]["fake"].endswith(": connection refused")
    sample = daemon.metrics.registry.get_sample_value
    assert sample("larkps_archive_up", {"archive": "fake"}) == 0.0
    assert sample("larkps_source_errors_total", {"archive": "fake"}) == 1.0
    assert (
        sample("larkps_archive_last_success_timestamp_seconds", {"archive": "fake"})
        == (first["started"])
    )


def test_control_characters_from_an_archive_are_escaped_in_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    broken, fine = "ee" * 16, "cd" * 16
    with fake_archive([broken, fine]) as archive:
        archive.metadata[0]["input-source"] = "ps\nevil\x1b[31m.example.org"
        archive.behaviours[broken] = lambda handler, params: handler.send_json({}, 404)
        assert main(["once", "--config", str(fake_config(tmp_path, archive.url))]) == 0
    out = capsys.readouterr().out
    (warning,) = [line for line in out.splitlines() if line.startswith("warning: ")]
    assert warning.startswith(
        "warning: archive fake: ps\\nevil\\x1b[31m.example.org -> ps-bw.far.example.org"
    )
    assert "\x1b" not in out
