"""The embedded mesh serves the same data whatever span its cached blocks have."""

from __future__ import annotations

import pytest

from larkps.embedded import Mesh, MeshConfig
from larkps.embedded.catalog import event_types
from larkps.embedded.generate import CHUNK, make_block

NOW = 1_700_000_000
DAY = 86400
RANGES = ((NOW - 2 * DAY - 77, NOW), (NOW - 3600, NOW + 13), (NOW - 59, NOW - 1))


@pytest.mark.parametrize("flavour", ["esmond", "elmond"])
def test_points_do_not_depend_on_the_block_span(flavour: str) -> None:
    day = Mesh(MeshConfig(sites=3, seed=5, flavour=flavour))
    hour = Mesh(MeshConfig(sites=3, seed=5, flavour=flavour, block_seconds=3600))
    six = Mesh(MeshConfig(sites=3, seed=5, flavour=flavour, block_seconds=6 * 3600, cache_blocks=2))
    compared = 0
    for series in day.series:
        for event, _ in event_types(series.kind, flavour):
            for lo, hi in RANGES:
                points = day.points(series.key, event, lo, hi)
                assert hour.points(series.key, event, lo, hi) == points
                assert six.points(series.key, event, lo, hi, limit=40, offset=3) == points[3:43]
                compared += len(points)
    assert compared > 100_000


def test_truth_does_not_depend_on_the_block_span() -> None:
    day = Mesh(MeshConfig(sites=3, seed=5))
    hour = Mesh(MeshConfig(sites=3, seed=5, block_seconds=3600, cache_blocks=4))
    src, dst = day.sites[0].name, day.sites[1].name
    for metric in ("throughput", "owdelay", "rtt", "loss", "retransmits"):
        for start, end in ((NOW - 3 * DAY, NOW), (NOW - 5400, NOW - 1800)):
            want = day.truth(src, dst, "ipv4", metric, start, end)
            assert want.count > 0 or end - start < DAY
            assert hour.truth(src, dst, "ipv4", metric, start, end) == want


def test_a_block_is_its_hours_one_after_the_other() -> None:
    mesh = Mesh(MeshConfig(sites=3, seed=5))
    latency = next(s for s in mesh.series if s.kind == "latencybg")
    start = NOW // DAY * DAY
    whole = make_block(mesh.gen, mesh.world, latency, start, start + 3 * CHUNK)
    hours = [(start + h * CHUNK, start + (h + 1) * CHUNK) for h in range(3)]
    parts = [make_block(mesh.gen, mesh.world, latency, lo, hi) for lo, hi in hours]
    assert whole.ts.tolist() == [t for p in parts for t in p.ts.tolist()]
    assert whole.hist is not None and all(p.hist is not None for p in parts)
    assert whole.hist.values.tolist() == [v for p in parts for v in p.hist.values.tolist()]  # type: ignore[union-attr]
    ts = whole.ts.tolist()
    assert ts == sorted(ts) and start <= ts[0] and ts[-1] < start + 3 * CHUNK


@pytest.mark.parametrize("span", [0, 1800, 5 * 3600, 2 * DAY])
def test_block_span_must_be_whole_hours_dividing_a_day(span: int) -> None:
    with pytest.raises(ValueError, match="block_seconds"):
        MeshConfig(block_seconds=span)
