"""`larkps run` as a real child process: cycles, SIGHUP reloads, SIGTERM, status, metrics."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import classad2
import pytest
from processes import free_port, wait_for

from larkps.daemon.service import Daemon
from larkps.errors import ArchiveUnavailable
from larkps.store import runs as runlog
from larkps.store.db import Store

pytestmark = pytest.mark.e2e


def config_text(state: Path, interval: str, metrics_port: int = 0) -> str:
    return (
        f'[larkps]\nstate_dir = "{state}"\ninterval = "{interval}"\n\n'
        '[[archives]]\nname = "mesh"\nkind = "embedded"\n'
        "[archives.embedded]\nsites = 3\nseed = 2\n\n"
        f'[windows]\nlist = ["1h"]\ndefault = "1h"\n\n[publish.file]\npath = "{state}/larkps.ads"\n'
        f'[daemon]\nmetrics_port = {metrics_port}\nshutdown_timeout = "20s"\n'
    )


def cycles(state: Path) -> list[dict]:
    database = state / "larkps.sqlite"
    if not database.exists():
        return []
    with Store(database) as store:
        return runlog.latest(store, 100)


def test_daemon_cycles_reloads_and_stops_cleanly(tmp_path: Path):
    state, config = tmp_path / "state", tmp_path / "larkps.toml"
    port = free_port()
    config.write_text(config_text(state, "2s", port))
    log = tmp_path / "stderr.log"
    with log.open("w") as err:  # the daemon keeps its own descriptor
        daemon = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "larkps",
                "--log-format",
                "json",
                "run",
                "--config",
                str(config),
            ],
            stderr=err,
            text=True,
        )
    try:
        wait_for(lambda: len(cycles(state)) >= 2, 60, "two cycles")
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        assert b'larkps_cycles_total{outcome="ok"}' in metrics
        assert b'larkps_stage_duration_seconds{stage="fetch"}' in metrics
        assert b'larkps_archive_up{archive="mesh"} 1.0' in metrics
        assert b"_created" not in metrics
        config.write_text("this is [not toml")
        daemon.send_signal(signal.SIGHUP)
        seen = len(cycles(state))
        wait_for(lambda: len(cycles(state)) >= seen + 1, 30, "a cycle after a bad reload")
        assert daemon.poll() is None, "an invalid config must not stop the daemon"
        config.write_text(config_text(state, "1h", port))
        daemon.send_signal(signal.SIGHUP)
        wait_for(lambda: "configuration reloaded" in log.read_text(), 60, "the good reload")
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert daemon.returncode == 0
    # without -v: INFO records of larkps, every line a JSON object, none of APScheduler
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert not [r for r in records if r["logger"].startswith("apscheduler")]
    messages = [r["message"] for r in records]
    assert any(m.startswith("reload refused, keeping the running configuration") for m in messages)
    assert any(m.startswith("configuration reloaded") for m in messages)
    # one record per cycle, the run report's figures as fields of the record
    cycle_lines = [r for r in records if r.get("event") == "cycle"]
    recorded = cycles(state)
    assert len(cycle_lines) == len(recorded) >= 2
    assert sorted(c["started"] for c in cycle_lines) == sorted(d["started"] for d in recorded)
    assert all(c["level"] == "info" and c["message"].startswith("cycle ok: ") for c in cycle_lines)
    assert cycle_lines and all(c["ok"] for c in cycle_lines)
    assert all(
        [s for s, _ in c["stages"]] == ["fetch", "aggregate", "publish"] for c in cycle_lines
    )
    # one ad per path plus one per site with data in the window (3 sites, one may be down)
    assert all(0 < c["paths"] < c["ads_written"] <= c["paths"] + 3 for c in cycle_lines)
    ads = list(classad2.parseAds((state / "larkps.ads").read_text(), classad2.ParserType.Old))
    path_ads = [ad for ad in ads if ad["MyType"] == "LarkPSPath"]
    ends = {ad[k] for ad in path_ads for k in ("LarkPS_SourceSite", "LarkPS_DestinationSite")}
    assert sorted(ad["LarkPS_Site"] for ad in ads if ad["MyType"] == "LarkPSSite") == sorted(ends)
    assert len(ads) == cycle_lines[-1]["ads_written"]
    status = subprocess.run(
        [sys.executable, "-m", "larkps", "status", "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert status.returncode == 0, status.stdout + status.stderr
    assert "recent cycles:" in status.stdout and "no failing archives" in status.stdout


def test_a_failing_cycle_is_recorded_and_the_daemon_carries_on(tmp_path: Path):
    state, config = tmp_path / "state", tmp_path / "larkps.toml"
    config.write_text(config_text(state, "1h"))

    def broken_cycle(settings, now, **_):
        raise ArchiveUnavailable("mesh", "cannot connect to http://127.0.0.1:9/")

    def buggy_cycle(settings, now, **_):
        raise ZeroDivisionError("a bug")

    for cycle, error in (
        (broken_cycle, "archive mesh: cannot connect"),
        (buggy_cycle, "internal error: ZeroDivisionError"),
    ):
        document = Daemon(config, cycle=cycle, clock=lambda: 1_700_000_000).run_one_cycle()
        assert not document["ok"] and document["error"].startswith(error)
    recorded = cycles(state)
    assert [d["ok"] for d in recorded] == [False, False]
