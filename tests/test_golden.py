"""Golden figures: 1 h, 24 h and 7 d windows against the embedded archive's own truth.

The points come over HTTP from a live embedded archive; the truth is what the mesh
recomputes with plain numpy from its generated arrays. Every window is computed
directly from the points and through rollups fed cycle by cycle, on the hour and
off it (where the oldest hour comes from raw points).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from larkps.config.sites import SiteMap
from larkps.embedded import EmbeddedArchive, Mesh, MeshConfig
from larkps.model import PathStats, Point, Series
from larkps.pipeline import _mesh_rules
from larkps.sources import DEFAULT_EVENT_TYPES, EsmondSource, HttpOptions, JsonClient
from larkps.stats.aggregate.paths import path_stats_windows
from larkps.stats.rollups.store import update_rollups
from larkps.stats.rollups.views import sites_as_mapped, window_stats
from larkps.store.db import Store

pytestmark = pytest.mark.slow
DAY = 86400
NOW = 1_700_000_000 // 3600 * 3600
OFF = NOW - 1234  # off the hour
WINDOWS = (3600, DAY, 7 * DAY)
Data = list[tuple[Series, list[Point]]]


@pytest.fixture(scope="module")
def mesh() -> Mesh:
    return Mesh(MeshConfig(sites=3, seed=11))


@pytest.fixture(scope="module")
def data(mesh: Mesh) -> Data:
    with EmbeddedArchive(mesh, clock=lambda: float(NOW)) as archive:
        client = JsonClient("golden", HttpOptions())
        try:
            source = EsmondSource(
                "golden", archive.url, client, SiteMap(_mesh_rules(mesh.site_map()))
            )
            series = source.discover(DEFAULT_EVENT_TYPES, NOW - 7 * DAY - 3600)
            return [(s, source.fetch(s, NOW - 7 * DAY - 3600, NOW)) for s in series]
        finally:
            client.close()


def check(stats: PathStats, mesh: Mesh, start: int, end: int) -> int:
    """Compare one path's figures with the truth over (start, end]; count the figures."""
    path = stats.path
    compared = 0
    for metric in ("throughput", "owdelay", "rtt", "retransmits"):
        truth = mesh.truth(
            path.source_site, path.destination_site, path.family.value, metric, start, end
        )
        got = getattr(stats, metric)
        assert got.count == truth.count, (path.name, metric, stats.window)
        if truth.count:
            for stat, mine in (
                ("median", got.median),
                ("p10", got.p10),
                ("p90", got.p90),
                ("mean", got.mean),
                ("min", got.minimum),
                ("max", got.maximum),
            ):
                want = getattr(truth, stat)
                assert mine == pytest.approx(want, rel=1e-9, abs=1e-9), (path.name, metric, stat)
            assert got.latest_ts == truth.latest_ts
            compared += 1
    loss = mesh.truth(
        path.source_site, path.destination_site, path.family.value, "loss", start, end
    )
    assert stats.loss.packets_sent == (loss.packets_sent or 0)
    assert stats.loss.packets_lost == (loss.packets_lost or 0)
    return compared + 1


def test_direct_windows_match_the_truth(mesh: Mesh, data: Data):
    for end in (NOW, OFF):
        by_window = path_stats_windows(data, WINDOWS, end)
        for length, stats in by_window.items():
            assert len(stats) == 8  # 3 sites, the last one IPv4-only
            assert sum(check(s, mesh, end - length, end) for s in stats) >= 3 * len(stats)


def feed_cycles(store: Store, data: Data, end: int) -> None:
    """Six-hour cycles up to ``end``, as a daemon would see them."""
    start = NOW - 7 * DAY - 3600
    for cut in [*range(start + 6 * 3600, end, 6 * 3600), end]:
        batch = [(s, [p for p in points if start < p.ts <= cut]) for s, points in data]
        update_rollups(store, batch, cut, WINDOWS)
        start = cut


@pytest.mark.parametrize("end", [NOW, OFF], ids=["on-the-hour", "off-the-hour"])
def test_rollup_windows_match_the_truth(mesh: Mesh, data: Data, tmp_path: Path, end: int):
    def boundary(start: int, stop: int) -> Data:
        return [(s, [p for p in points if start < p.ts <= stop]) for s, points in data]

    with Store(tmp_path / "state.sqlite") as store:
        feed_cycles(store, data, end)
        sites = sites_as_mapped(s for s, _ in data)
        rolled = window_stats(store, WINDOWS, end, boundary=boundary, sites=sites)
    assert len(rolled) == 3 * 8
    for stats in rolled:
        assert stats.window_start is None
        check(stats, mesh, end - stats.window, end)


def test_quality_flags_the_bad_clock_and_sees_the_outages(data: Data):
    stats = path_stats_windows(data, (DAY,), NOW)[DAY]
    for s in stats:
        involves_bravo = "BRAVO-T1" in (s.path.source_site, s.path.destination_site)
        assert s.owdelay.quality.clock_error == involves_bravo, s.path.name
        assert not s.rtt.quality.clock_error
        assert s.owdelay.quality.cadence == 60 and s.rtt.quality.cadence == 600
        assert 0.5 < s.owdelay.quality.completeness <= 1.0  # daily outages of a few hours
        assert s.throughput.quality.cadence == 7200
