"""Hourly path histories against the embedded archive's ground truth."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from larkps.config.settings import settings_from_dict
from larkps.embedded import EmbeddedArchive, Mesh, MeshConfig
from larkps.model import Family, PathKey, Point, Series
from larkps.pipeline import fetch_window, open_sources
from larkps.stats.hourly import PathHistory, path_history

NOW = 1_700_003_333  # deliberately not on an hour boundary
HOURS = 6
WINDOW = HOURS * 3600


def _settings(url: str, mesh: Mesh) -> dict[str, object]:
    sites = {
        site: {"hosts": entry["hosts"], "networks": entry["networks"]}
        for site, entry in mesh.site_map().items()
    }
    return {"archives": [{"name": "h", "kind": "esmond", "url": url}], "sites": sites}


@pytest.fixture(scope="module")
def mesh() -> Mesh:
    return Mesh(MeshConfig(sites=3, seed=4))


@pytest.fixture(scope="module")
def fetched(mesh: Mesh) -> Iterator[list[tuple[Series, list[Point]]]]:
    with EmbeddedArchive(mesh, clock=lambda: NOW) as archive:
        settings = settings_from_dict(_settings(archive.url, mesh))
        with open_sources(settings) as sources:
            yield fetch_window(sources, NOW - WINDOW, NOW).data


@pytest.fixture(scope="module")
def histories(fetched: list[tuple[Series, list[Point]]]) -> dict[PathKey, PathHistory]:
    return path_history(fetched, NOW, WINDOW)


def test_buckets_tile_the_window_and_end_at_now(histories: dict[PathKey, PathHistory]):
    assert histories
    for history in histories.values():
        assert history.step == 3600
        assert history.ends == tuple(NOW - 3600 * k for k in range(HOURS - 1, -1, -1))
        assert len(history.throughput_bps) == len(history.loss) == len(history.owdelay_ms) == HOURS


def test_every_bucket_matches_ground_truth(mesh: Mesh, histories: dict[PathKey, PathHistory]):
    compared = 0
    for key, history in histories.items():
        src, dst, family = key.source_site, key.destination_site, key.family.value
        for i, end in enumerate(history.ends):
            start = end - 3600
            tp = mesh.truth(src, dst, family, "throughput", start, end)
            delay = mesh.truth(src, dst, family, "owdelay", start, end)
            loss = mesh.truth(src, dst, family, "loss", start, end)
            assert (history.throughput_bps[i] is None) == (tp.count == 0), (key, end)
            if tp.count:
                assert history.throughput_bps[i] == pytest.approx(tp.median, rel=1e-9)
                compared += 1
            assert (history.owdelay_ms[i] is None) == (delay.count == 0), (key, end)
            if delay.count:
                assert history.owdelay_ms[i] == pytest.approx(delay.median, rel=0.01, abs=0.01)
                compared += 1
            if loss.fraction is None:
                assert history.loss[i] is None
            else:
                assert history.loss[i] == pytest.approx(loss.fraction, rel=1e-9, abs=1e-12)
                compared += 1
    assert compared > len(histories) * HOURS  # most buckets hold several figures


def test_a_window_that_is_no_multiple_of_the_step_gets_a_short_oldest_bucket(
    mesh: Mesh, fetched: list[tuple[Series, list[Point]]]
):
    window = 2 * 3600 + 600
    histories = path_history(fetched, NOW, window)
    key = PathKey(mesh.sites[0].name, mesh.sites[1].name, Family.IPV4)
    history = histories[key]
    assert history.ends == (NOW - 7200, NOW - 3600, NOW)
    loss = mesh.truth(
        key.source_site, key.destination_site, "ipv4", "loss", NOW - window, NOW - 7200
    )
    assert history.loss[0] == pytest.approx(loss.fraction, rel=1e-9)


def test_nothing_in_the_window_gives_empty_histories(fetched: list[tuple[Series, list[Point]]]):
    histories = path_history(fetched, NOW - 30 * 86400, 3600)
    assert histories and all(h.empty for h in histories.values())


def test_bad_window_is_rejected():
    with pytest.raises(ValueError, match="positive"):
        path_history([], NOW, 0)
