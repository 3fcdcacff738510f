"""Where startd-cron and advise read the LarkPS ads from, and which site map they use.

``--ads`` or ``--pool`` name the source; otherwise the config's [publish.collector]
pool, else the ads file the config names. ``--config`` always brings its site map
and trust defaults, also together with ``--pool`` (an execute node has no ads file).
The collector cases point at a loopback port that refuses connections: the error
must name the address that was tried, which tells which source was chosen.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import classad2
import pytest

from larkps.cli.app import main

FIGURES = {("HOME-SITE", "FAR"): (800.0, 50.0), ("FAR", "HOME-SITE"): (600.0, 20.0)}


@pytest.fixture
def refused() -> Iterator[str]:
    """HOST:PORT of a loopback port that is bound but never listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def _path_ad(
    source: str, destination: str, mbps: float, error: float, now: int
) -> classad2.ClassAd:
    return classad2.ClassAd(
        {
            "MyType": "LarkPSPath",
            "Name": f"{source}->{destination}",
            "LarkPS_SourceSite": source,
            "LarkPS_DestinationSite": destination,
            "LarkPS_AddressFamily": "ipv4",
            "LarkPS_UpdateTime": now - 60,
            "LarkPS_ExpectedMbps": mbps,
            "LarkPS_ExpectedErrorMbps": error,
            "LarkPS_ExpectedQuality": 0.9,
            "LarkPS_ExpectedStale": False,
        }
    )


@pytest.fixture
def ads_file(tmp_path: Path) -> Path:
    path = tmp_path / "larkps.ads"
    now = int(time.time())  # when the test runs, not when the module was imported
    ads = [_path_ad(s, d, *figures, now) for (s, d), figures in FIGURES.items()]
    path.write_text("\n".join(ad.printOld() for ad in ads))
    return path


def _config(tmp_path: Path, ads_file: Path, collector: str | None = None) -> Path:
    collector_table = f'[publish.collector]\npool = "{collector}"\n' if collector else ""
    path = tmp_path / "larkps.toml"
    path.write_text(
        f"""[larkps]
state_dir = "{tmp_path / "state"}"

[[archives]]
name = "ma"
kind = "esmond"
url = "https://ps.example.org"

[sites.HOME-SITE]
hosts = [{classad2.quote(socket.getfqdn())}]

[publish.file]
path = "{ads_file}"

{collector_table}"""
    )
    return path


def _attributes(out: str) -> classad2.ClassAd:
    body, marker, _ = out.partition("- update:true")
    assert marker
    return classad2.parseOne(body, classad2.ParserType.Old)


def test_config_alone_reads_its_ads_file_and_derives_the_site_from_its_map(
    tmp_path: Path, ads_file: Path, capsys: pytest.CaptureFixture[str]
):
    assert main(["startd-cron", "--config", str(_config(tmp_path, ads_file))]) == 0
    ad = _attributes(capsys.readouterr().out)
    assert ad["LarkPS_Site"] == "HOME-SITE"
    mbps, error = FIGURES[("FAR", "HOME-SITE")]
    assert ad["LarkPS_From_FAR_BandwidthMbps"] == mbps
    assert ad["LarkPS_From_FAR_BandwidthLowMbps"] == mbps - error
    assert ad["LarkPS_To_FAR_BandwidthMbps"] == FIGURES[("HOME-SITE", "FAR")][0]


def test_the_configs_collector_comes_before_its_ads_file(
    tmp_path: Path, ads_file: Path, refused: str, capsys: pytest.CaptureFixture[str]
):
    config = _config(tmp_path, ads_file, collector=refused)
    assert main(["startd-cron", "--config", str(config)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert f"collector {refused}" in captured.err


def test_pool_with_config_reads_that_pool(
    tmp_path: Path, ads_file: Path, refused: str, capsys: pytest.CaptureFixture[str]
):
    config = _config(tmp_path, ads_file, collector="cm.invalid:9618")
    argv = ["advise", "--config", str(config), "--pool", refused]
    assert main([*argv, "--data-site", "FAR", "--input-size", "1GB"]) == 1
    err = capsys.readouterr().err
    assert f"collector {refused}" in err and "cm.invalid" not in err


def test_ads_with_config_reads_the_file_and_keeps_the_site_map(
    tmp_path: Path, ads_file: Path, capsys: pytest.CaptureFixture[str]
):
    config = _config(tmp_path, tmp_path / "absent.ads", collector="cm.invalid:9618")
    assert main(["startd-cron", "--config", str(config), "--ads", str(ads_file)]) == 0
    assert _attributes(capsys.readouterr().out)["LarkPS_Site"] == "HOME-SITE"


def test_no_source_is_a_usage_error(capsys: pytest.CaptureFixture[str]):
    assert main(["startd-cron", "--site", "HOME-SITE"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--config, --ads or --pool" in err


def test_ads_and_pool_together_are_refused(ads_file: Path):
    with pytest.raises(SystemExit) as caught:
        main(["startd-cron", "--ads", str(ads_file), "--pool", "cm:9618", "--site", "X"])
    assert caught.value.code == 2
