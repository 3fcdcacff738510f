"""The full slice through the CLI: embedded archive -> larkps once -> ads file -> classad2.

Every path's figures are compared with the archive's own ground truth, which the
mesh computes from its generated data with plain numpy.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import classad2
import pytest

from larkps.embedded import EmbeddedArchive, Mesh, MeshConfig

pytestmark = pytest.mark.e2e
DAY = 86400


def write_config(path: Path, url: str, mesh: Mesh, ads: Path) -> None:
    lines = [
        "[[archives]]",
        'name = "e2e"',
        'kind = "esmond"',
        f'url = "{url}"',
        "",
    ]
    for site, entry in sorted(mesh.site_map().items()):
        lines.append(f'[sites."{site}"]')
        lines.append("hosts = [" + ", ".join(f'"{h}"' for h in entry["hosts"]) + "]")
        lines.append("networks = [" + ", ".join(f'"{n}"' for n in entry["networks"]) + "]")
    lines += ["", "[publish.file]", f'path = "{ads}"']
    path.write_text("\n".join(lines) + "\n")


def run_larkps(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "larkps", *args], capture_output=True, text=True, check=False
    )


def read_ads(path: Path, my_type: str = "LarkPSPath") -> list[classad2.ClassAd]:
    ads = classad2.parseAds(path.read_text(), classad2.ParserType.Old)
    return [ad for ad in ads if ad["MyType"] == my_type]


def expected_paths(mesh: Mesh) -> set[tuple[str, str, str]]:
    families = {s.name: ["ipv4", "ipv6"] if s.ipv6_net else ["ipv4"] for s in mesh.sites}
    return {
        (a.name, b.name, fam)
        for a in mesh.sites
        for b in mesh.sites
        if a != b
        for fam in families[a.name]
        if fam in families[b.name]
    }


def check_against_truth(
    ad: classad2.ClassAd, mesh: Mesh, label: str = "24h", seconds: int = DAY
) -> int:
    """Compare every figure of one ad's window with the mesh's truth; return figures compared."""
    src, dst = ad["LarkPS_SourceSite"], ad["LarkPS_DestinationSite"]
    family, end = ad["LarkPS_AddressFamily"], ad["LarkPS_UpdateTime"]
    compared = 0
    for metric, prefix, scale in (
        ("throughput", f"LarkPS_ThroughputMbps_{label}", 1e-6),
        ("owdelay", f"LarkPS_OneWayDelayMs_{label}", 1.0),
        ("rtt", f"LarkPS_RttMs_{label}", 1.0),
    ):
        truth = mesh.truth(src, dst, family, metric, end - seconds, end)
        assert ad[f"{prefix}_Count"] == truth.count, (src, dst, family, metric)
        if truth.count:
            for stat in ("median", "p10", "p90"):
                got = ad[f"{prefix}_{stat.capitalize() if stat == 'median' else stat.upper()}"]
                want = getattr(truth, stat) * scale
                assert got == pytest.approx(want, rel=0.01, abs=1e-6), (src, dst, metric, stat)
            assert ad[f"{prefix}_LatestTime"] == truth.latest_ts
            compared += 1
    loss = mesh.truth(src, dst, family, "loss", end - seconds, end)
    # A window without latency tests (an outage hour) sent no packets: the truth says None.
    assert ad[f"LarkPS_Loss_{label}_PacketsSent"] == (loss.packets_sent or 0)
    if loss.fraction is not None:
        got = ad[f"LarkPS_Loss_{label}_Fraction"]
        assert got == pytest.approx(loss.fraction, rel=0.01, abs=1e-9)
    return compared + 1


@pytest.mark.parametrize("flavour", ["esmond", "elmond"])
def test_once_through_the_cli_matches_ground_truth(tmp_path: Path, flavour: str):
    mesh = Mesh(MeshConfig(sites=3, seed=11, flavour=flavour))
    ads_file = tmp_path / "out" / "larkps.ads"
    config = tmp_path / "larkps.toml"
    with EmbeddedArchive(mesh) as archive:
        write_config(config, archive.url, mesh, ads_file)
        done = run_larkps("once", "--config", str(config))
        assert archive.requests_served > 0
    assert done.returncode == 0, done.stderr
    sites = len(mesh.sites)
    assert f"wrote {len(expected_paths(mesh)) + sites} ads to {ads_file}" in done.stdout
    ads = read_ads(ads_file)
    site_ads = read_ads(ads_file, "LarkPSSite")
    assert sorted(a["LarkPS_Site"] for a in site_ads) == sorted(s.name for s in mesh.sites)
    assert all(0 <= a["LarkPS_Health"] <= 1 for a in site_ads)
    names = {
        (a["LarkPS_SourceSite"], a["LarkPS_DestinationSite"], a["LarkPS_AddressFamily"])
        for a in ads
    }
    assert names == expected_paths(mesh)
    assert len({a["Name"] for a in ads}) == len(ads)
    compared = sum(check_against_truth(ad, mesh) for ad in ads)
    compared += sum(check_against_truth(ad, mesh, "1h", 3600) for ad in ads)
    assert compared >= 5 * len(ads)
    for ad in ads:
        assert ad["MyType"] == "LarkPSPath"
        assert ad["ClassAdLifetime"] == 900
        assert ad["UpdateSequenceNumber"] == 0
        assert ad["DaemonStartTime"] == ad["LarkPS_UpdateTime"]


def test_demo_writes_ads_that_match_ground_truth(tmp_path: Path):
    out = tmp_path / "demo"
    done = run_larkps("demo", "--out", str(out))
    assert done.returncode == 0, done.stderr
    ads_file = out / "larkps.ads"
    assert f"to {ads_file}" in done.stdout
    assert "ALPHA-T2 -> BRAVO-T1" in done.stdout  # the table names site pairs
    mesh = Mesh(MeshConfig(sites=4, seed=1, flavour="esmond"))
    ads = read_ads(ads_file)
    assert len(ads) == len(expected_paths(mesh))
    for ad in ads:
        check_against_truth(ad, mesh)


def test_stats_json_and_ads_formats_against_a_live_archive():
    mesh = Mesh(MeshConfig(sites=3, seed=5))
    with EmbeddedArchive(mesh) as archive:
        stats = run_larkps("stats", "--archive", archive.url, "--window", "1h", "--format", "csv")
        new = run_larkps(
            "ads", "--archive", archive.archive_url, "--window", "1h", "--format", "new"
        )
    assert stats.returncode == 0, stats.stderr
    header, *rows = stats.stdout.splitlines()
    assert header.startswith("source_site,destination_site,family,window_s")
    # Without a site map every host is its own site: latency and bandwidth hosts differ.
    assert all(r.split(",")[0].startswith(("ps-lat.", "ps-bw.")) for r in rows)
    assert new.returncode == 0, new.stderr
    parsed = [classad2.ClassAd(line) for line in new.stdout.splitlines()]
    paths = [ad for ad in parsed if ad["MyType"] == "LarkPSPath"]
    assert len(paths) == len(rows)
    hosts = {r.split(",")[0] for r in rows} | {r.split(",")[1] for r in rows}
    assert {ad["LarkPS_Site"] for ad in parsed if ad["MyType"] == "LarkPSSite"} == hosts
    assert all(ad["LarkPS_Window"] == 3600 for ad in parsed)
