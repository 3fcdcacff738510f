"""Incremental polling into the state store, checked against the embedded archive's data."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from archive_fake import (
    ARCHIVE_PATH,
    FakeArchive,
    Handler,
    path_name,
    sleeper,
    throughput_metadata,
)

from larkps.config.sites import SiteMap
from larkps.embedded import EmbeddedArchive, Mesh, MeshConfig
from larkps.histogram import histogram_of, histogram_pairs
from larkps.ingest.runner import ArchivePlan, Ingester, IngestOptions, IngestReport
from larkps.model import Family, Metric, Point
from larkps.sources import EsmondSource, HttpOptions, JsonClient
from larkps.store.db import Store
from larkps.store.points import IngestStore

T = 1_700_000_000
EVENTS = ("throughput", "histogram-owdelay", "packet-count-lost", "failures")


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> float:
        return float(self.now)


def run(
    state: Path, url: str, now: int, since: int, events=EVENTS, **opts: object
) -> tuple[IngestReport, list]:
    http = {k: v for k, v in opts.items() if k in HttpOptions.__dataclass_fields__}
    ingest = {k: v for k, v in opts.items() if k in IngestOptions.__dataclass_fields__}
    client = JsonClient("mesh", HttpOptions(**http))  # type: ignore[arg-type]
    source = EsmondSource("mesh", url, client, SiteMap(), event_types=events)
    plan = ArchivePlan(source, events)
    with Store.in_directory(state) as store:
        ingester = Ingester(IngestStore(store), IngestOptions(**ingest))  # type: ignore[arg-type]
        report = ingester.cycle([plan], now, since)
        data = ingester.load_window([plan], since - 1, now)
    client.close()
    return report, data


def archive_ts(mesh: Mesh, key: str, event: str, start: int, end: int) -> list[int]:
    return [int(p["ts"]) for p in mesh.points(key, event, start, end)]  # type: ignore[call-overload]


def assert_matches_archive(mesh: Mesh, data: list, start: int, end: int) -> int:
    """Every stored series holds exactly the archive's points in [start, end]."""
    total = 0
    for series, points in data:
        key, event = series.key.metadata_key, series.key.event_type
        want = mesh.points(key, event, start, end)
        assert [p.ts for p in points] == [w["ts"] for w in want], (key, event)
        for point, raw in zip(points, want, strict=True):
            if series.metric is Metric.OWDELAY:
                assert point.histogram is not None
                counts = (c for _, c in histogram_pairs(point.histogram))
                assert sum(counts) == sum(raw["val"].values())  # type: ignore[union-attr]
            elif series.metric is not Metric.FAILURE:
                assert point.value == pytest.approx(float(raw["val"]))  # type: ignore[arg-type]
        total += len(points)
    return total


def test_restart_resumes_without_refetching_and_then_fetches_only_new_points(tmp_path: Path):
    mesh = Mesh(MeshConfig(sites=3, seed=7))
    clock = Clock(T)
    with EmbeddedArchive(mesh, clock=clock) as archive:
        first, data = run(tmp_path, archive.url, T, T - 6 * 3600)
        stored = assert_matches_archive(mesh, data, T - 6 * 3600, T)
        assert first.problems == () and first.points == stored > 0
        served = archive.requests_served
        again, data = run(tmp_path, archive.url, T, T - 6 * 3600)  # a restarted process
        assert archive.requests_served - served == again.series == first.series  # one probe each
        assert again.points == 0 and again.new_points == {}
        assert assert_matches_archive(mesh, data, T - 6 * 3600, T) == stored
        clock.now = T + 600
        later, data = run(tmp_path, archive.url, T + 600, T + 600 - 6 * 3600)
    fresh = {(s.key.metadata_key, s.key.event_type): pts for s, pts in later.new_points.items()}
    for series, _ in data:
        key = (series.key.metadata_key, series.key.event_type)
        want = archive_ts(mesh, *key, T + 1, T + 600)
        assert [p.ts for p in fresh.get(key, [])] == want, key
    assert later.points == sum(len(v) for v in fresh.values()) > 0
    assert later.requests == later.series


def test_moving_since_back_backfills_only_the_older_part(tmp_path: Path):
    mesh = Mesh(MeshConfig(sites=3, seed=8))
    with EmbeddedArchive(mesh, clock=Clock(T)) as archive:
        run(tmp_path, archive.url, T, T - 3600)
        report, data = run(tmp_path, archive.url, T, T - 3 * 3600)
    assert_matches_archive(mesh, data, T - 3 * 3600, T)
    assert all(p.ts < T - 3600 for pts in report.new_points.values() for p in pts)
    assert report.points == sum(len(v) for v in report.new_points.values()) > 0


def test_every_record_carries_family_sites_and_units(tmp_path: Path):
    mesh = Mesh(MeshConfig(sites=3, seed=9))
    sites = mesh.site_map()
    with EmbeddedArchive(mesh, clock=Clock(T)) as archive:
        _, data = run(tmp_path, archive.url, T, T - 3600)
    families = {s.family for s, _ in data}
    assert families == {Family.IPV4, Family.IPV6}
    for series, _ in data:
        assert (":" in series.source.ip) == (series.family is Family.IPV6)
        assert series.source.host in {h for e in sites.values() for h in e["hosts"]}
        assert series.unit == {"throughput": "bit/s", "histogram-owdelay": "ms"}.get(
            series.key.event_type, series.unit
        )


def test_histograms_are_packed_compactly_and_exactly():
    buckets = ((12.35, 97), (-1.25, 3), (12.34, 500), (13.0, 0))  # unsorted; an empty bucket
    packed = histogram_of(buckets)
    assert len(packed) == 12 * 3
    assert histogram_pairs(packed) == ((-1.25, 3), (12.34, 500), (12.35, 97))


def throughput_archive(keys: list[str]) -> FakeArchive:
    metadata = [
        throughput_metadata(k, f"192.0.2.{i + 1}", "198.51.100.1") for i, k in enumerate(keys)
    ]
    path = "{}{}/throughput/base"
    points = {
        path.format(ARCHIVE_PATH, k): [{"ts": ts, "val": 1e9} for ts in range(T - 3000, T + 1, 600)]
        for k in keys
    }
    return FakeArchive(metadata, points)


def test_deadline_keeps_partial_results_and_marks_them(tmp_path: Path):
    slow, fast = "c3" * 16, "d4" * 16
    with throughput_archive([slow, fast]) as archive:
        run(tmp_path, archive.url, T - 3600, T - 7200, ("throughput",))  # discover first
        archive.behaviours[slow] = sleeper(60)  # far past the deadline, however busy
        started = time.monotonic()
        report, data = run(
            tmp_path, archive.url, T, T - 7200, ("throughput",), deadline=1.0, read_timeout=30
        )
        elapsed = time.monotonic() - started
    assert elapsed < 30  # the slow archive did not hold the cycle to its 60 s answer
    assert report.partial
    (problem,) = report.problems
    assert problem.kind == "deadline" and problem.what == path_name(slow)
    got = {s.key.metadata_key: len(p) for s, p in data}
    assert got[fast] == 6


def test_per_archive_connection_limit_is_kept(tmp_path: Path):
    keys = [f"{i:02x}" * 16 for i in range(12)]
    with throughput_archive(keys) as archive:
        run(tmp_path, archive.url, T - 3600, T - 7200, ("throughput",))
        for key in keys:
            archive.behaviours[key] = sleeper(0.1)
        run(tmp_path, archive.url, T, T - 7200, ("throughput",), max_connections=3)
    assert 1 < archive.max_sleeping <= 3


def test_5xx_is_retried_with_backoff_and_4xx_is_not(tmp_path: Path):
    flaky, missing = "e5" * 16, "f6" * 16
    calls = {"n": 0}

    def twice_503(handler: Handler, params: dict[str, str]) -> None:
        calls["n"] += 1
        if calls["n"] <= 2:
            handler.send_json({"detail": "busy"}, 503)
            return
        archive.behaviours.pop(flaky)
        handler.send_json(archive.data_page(f"{ARCHIVE_PATH}{flaky}/throughput/base", params))

    with throughput_archive([flaky, missing]) as archive:
        run(tmp_path, archive.url, T - 3600, T - 7200, ("throughput",))
        archive.behaviours[flaky] = twice_503
        archive.behaviours[missing] = lambda h, p: h.send_json({"detail": "gone"}, 404)
        report, _ = run(
            tmp_path, archive.url, T, T - 7200, ("throughput",), retries=3, backoff=0.01
        )
        missing_hits = archive.hits[f"{ARCHIVE_PATH}{missing}/throughput/base"]
    assert report.retries == 2
    assert [p.what for p in report.problems] == [path_name(missing)]
    assert "HTTP 404" in report.problems[0].problem
    assert missing_hits == 2  # once in each cycle: never retried
    assert sum(len(v) for s, v in report.new_points.items() if s.key.metadata_key == flaky) == 6


def test_small_pages_are_followed_by_time_start(tmp_path: Path):
    mesh = Mesh(MeshConfig(sites=3, seed=4))
    with EmbeddedArchive(mesh, clock=Clock(T)) as archive:
        client = JsonClient("mesh", HttpOptions())
        source = EsmondSource("mesh", archive.url, client, SiteMap(), data_page=7)
        (series,) = list(source.discover(["histogram-owdelay"], T - 3600))[:1]
        pages = list(source.pages(series, T - 3600, T))
        client.close()
    assert (
        len(pages)
        == len(archive_ts(mesh, series.key.metadata_key, "histogram-owdelay", T - 3600, T)) // 7 + 1
    )
    stamps = [p.ts for page in pages for p in page.points]
    assert stamps == archive_ts(mesh, series.key.metadata_key, "histogram-owdelay", T - 3600, T)


def test_old_points_are_pruned_after_the_retention(tmp_path: Path):
    mesh = Mesh(MeshConfig(sites=3, seed=5))
    clock = Clock(T)
    with EmbeddedArchive(mesh, clock=clock) as archive:
        run(tmp_path, archive.url, T, T - 7200, ("throughput", "histogram-owdelay"))
        clock.now = T + 7200
        run(
            tmp_path,
            archive.url,
            T + 7200,
            T + 3600,
            ("throughput", "histogram-owdelay"),
            retention=3600,
        )
    with Store.in_directory(tmp_path) as store:
        oldest = store.connection.execute("SELECT min(ts) FROM points").fetchone()[0]
    assert oldest >= T + 3600


def test_point_rows_are_unique_per_series_and_timestamp(tmp_path: Path):
    with Store.in_directory(tmp_path) as store:
        ingest = IngestStore(store)
        ingest.db.execute(
            "INSERT INTO series (archive, metadata_key, event_type, source_host, source_ip, "
            "destination_host, destination_ip, family, metric, tool, data_uri, seen_at) "
            "VALUES ('a', 'k', 'throughput', 'h', '192.0.2.1', 'd', '192.0.2.2', 'ipv4', "
            "'throughput', 't', '/u', 0)"
        )
        from larkps.store.points import Commit

        ingest.commit([Commit(1, [Point(10, 1.0)], hwm=10, covered_from=0)])
        fresh = ingest.commit([Commit(1, [Point(10, 2.0), Point(20, 3.0)], check_existing=True)])
        assert fresh == [[Point(20, 3.0)]]
        assert ingest.points(1, 0, 100) == [Point(10, 1.0), Point(20, 3.0)]
        assert json.dumps(ingest.db.execute("SELECT hwm FROM series").fetchone()) == "[10]"
