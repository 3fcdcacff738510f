"""`larkps stats` JSON/CSV: every window and every figure the ads carry, and nothing else."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import classad2
import pytest

from larkps.cli.app import main
from larkps.cli.commands.core import demo_settings
from larkps.embedded import Mesh, MeshConfig
from larkps.pipeline import run_cycle
from larkps.report.document import (
    BOOKKEEPING,
    IDENTITY,
    PATH_WIDE,
    parse_path,
    render_document,
    stats_document,
)

pytestmark = pytest.mark.slow
MESH = {"sites": 3, "seed": 5}


def located(document: dict[str, Any], attribute: str) -> object:
    """Where the document keeps one ad attribute (the mapping docs/statistics.md states)."""
    if attribute in IDENTITY:
        return document[IDENTITY[attribute]]
    if attribute in PATH_WIDE:
        return document[PATH_WIDE[attribute]]
    if attribute.startswith("LarkPS_Expected"):
        return document["expected"][attribute.removeprefix("LarkPS_Expected")]
    group, label, field = attribute.removeprefix("LarkPS_").split("_")
    return document["windows"][label][group][field]


def leaf_count(document: dict[str, Any]) -> int:
    windows = sum(len(f) for groups in document["windows"].values() for f in groups.values())
    wide = sum(1 for key in PATH_WIDE.values() if key in document)
    identity = sum(1 for key in IDENTITY.values() if key in document)
    return windows + len(document["expected"]) + wide + identity


def test_the_document_holds_exactly_the_published_ads_figures(tmp_path: Path):
    out = tmp_path / "cycle"
    result = run_cycle(demo_settings(out), int(time.time()))
    published = classad2.parseAds((out / "larkps.ads").read_text(), classad2.ParserType.Old)
    ads = [dict(ad) for ad in published]
    document = stats_document([dict(ad) for ad in result.ads], result.forecasts)
    by_path = {d["path"]: d for d in document["paths"]}
    paths = [ad for ad in ads if ad["MyType"] == "LarkPSPath"]
    assert len(by_path) == len(paths) == len(result.stats)
    for ad in paths:
        doc = by_path[f"{ad['LarkPS_SourceSite']}->{ad['LarkPS_DestinationSite']}/"
                      f"{ad['LarkPS_AddressFamily']}"]  # fmt: skip
        figures = {k: v for k, v in ad.items() if k not in BOOKKEEPING}
        for attribute, value in figures.items():
            got = located(doc, attribute)  # the file's text rounds a float's last digit
            want = pytest.approx(value, rel=1e-12) if isinstance(value, float) else value
            assert got == want, (doc["path"], attribute)
        assert leaf_count(doc) == len(figures), doc["path"]  # nothing the ad lacks
        assert list(doc["windows"]) == ["1h", "24h", "7d"]  # every window, shortest first
        assert {f["metric"] for f in doc["forecasts"]} >= {"throughput"}
        assert doc["expected"]["Provenance"] in ("forecast", "measured", "modelled")
    sites = {d["site"] for d in document["sites"]}
    assert sites == {ad["LarkPS_Site"] for ad in ads if ad["MyType"] == "LarkPSSite"}


def write_config(path: Path) -> None:
    path.write_text(
        '[[archives]]\nname = "mesh"\nkind = "embedded"\n'
        f"[archives.embedded]\nsites = {MESH['sites']}\nseed = {MESH['seed']}\n"
        '[windows]\nlist = ["1h", "24h"]\ndefault = "24h"\n'
    )


def test_stats_with_a_config_and_a_path_against_the_mesh_truth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    config = tmp_path / "larkps.toml"
    write_config(config)
    mesh = Mesh(MeshConfig(**MESH))
    source, destination = mesh.sites[0].name, mesh.sites[1].name
    args = ["stats", "--config", str(config), "--path", f"{source}->{destination}"]
    assert main([*args, "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["sites"] == []  # a path was asked for
    both_v6 = mesh.sites[0].ipv6_net and mesh.sites[1].ipv6_net
    assert {d["family"] for d in document["paths"]} == ({"ipv4", "ipv6"} if both_v6 else {"ipv4"})
    compared = 0
    for doc in document["paths"]:
        assert (doc["source_site"], doc["destination_site"]) == (source, destination)
        end = doc["update_time"]
        for label, seconds in (("1h", 3600), ("24h", 86400)):
            for metric, group, scale in (
                ("throughput", "ThroughputMbps", 1e-6),
                ("rtt", "RttMs", 1.0),
            ):
                truth = mesh.truth(source, destination, doc["family"], metric, end - seconds, end)
                figures = doc["windows"][label][group]
                assert figures["Count"] == truth.count, (label, metric)
                if truth.count:
                    assert figures["Median"] == pytest.approx(truth.median * scale, rel=0.01)
                    compared += 1
    assert compared >= 3
    assert main([*args, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert sorted((r["family"], r["window"]) for r in rows) == sorted(
        (d["family"], label) for d in document["paths"] for label in ("1h", "24h")
    )
    for row in rows:
        assert row["ExpectedProvenance"] in ("forecast", "measured", "modelled")
        assert row["ExpectedLowerMbps"] and row["Health"]


def test_stats_refuses_a_path_it_did_not_measure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    config = tmp_path / "larkps.toml"
    write_config(config)
    assert main(["stats", "--config", str(config), "--path", "NOWHERE->ELSEWHERE"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "no measured path NOWHERE->ELSEWHERE" in line
    assert Mesh(MeshConfig(**MESH)).sites[0].name in line


@pytest.mark.parametrize("text", ["A", "A->", "->B", "A->B/ipv5"])
def test_a_malformed_path_is_refused(text: str):
    with pytest.raises(ValueError):
        parse_path(text)


def test_csv_cells_are_the_documents_values():
    ad = {
        "MyType": "LarkPSPath",
        "LarkPS_SourceSite": "A",
        "LarkPS_DestinationSite": "B",
        "LarkPS_AddressFamily": "ipv4",
        "LarkPS_Window": 86400,
        "LarkPS_ThroughputMbps_24h_Median": 940.5,
        "LarkPS_ThroughputMbps_1h_Median": 901.0,
        "LarkPS_OneWayDelayMs_24h_ClockError": True,
        "LarkPS_ExpectedLowerMbps": 800.0,
        "LarkPS_Alarms": ["loss", "high_delay"],
        "LarkPS_Health": 0.25,
    }
    text = render_document(stats_document([ad], []), "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["window"], r["ThroughputMbps_Median"]) for r in rows] == [
        ("1h", "901.0"),
        ("24h", "940.5"),
    ]
    assert (
        rows[1]["OneWayDelayMs_ClockError"] == "True" and rows[0]["OneWayDelayMs_ClockError"] == ""
    )
    assert {r["Alarms"] for r in rows} == {"loss high_delay"} and rows[0]["Health"] == "0.25"
