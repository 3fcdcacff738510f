"""Unit tests of the embedded mesh model (no HTTP)."""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest

from larkps.embedded import Mesh, MeshConfig, Truth
from larkps.embedded._rand import hash_u01, hash_u01_array
from larkps.embedded.generate import is_failed
from larkps.embedded.histo import from_samples, merge_groups, stats
from larkps.embedded.query import BadRequest, TimeWindow, time_window

NOW = 1_700_000_000
DAY = 86400


@pytest.fixture(scope="module")
def mesh() -> Mesh:
    return Mesh(MeshConfig(sites=4, seed=7))


def _series(mesh: Mesh, kind: str, src: str, dst: str, family: str = "ipv4"):  # type: ignore[no-untyped-def]
    found = mesh.find_series(src, dst, family, kind)
    assert found is not None
    return found


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sites": 2},
        {"sites": 10_000},
        {"seed": -1},
        {"flavour": "perfsonar"},
        {"latency_interval": 0},
        {"throughput_interval": 2 * DAY},
        {"packets_per_sample": 0},
        {"failure_rate": 1.5},
        {"retention_days": 0},
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        MeshConfig(**kwargs)  # type: ignore[arg-type]


def test_sites_hosts_and_addresses(mesh: Mesh) -> None:
    names = [s.name for s in mesh.sites]
    assert names == ["ALPHA-T2", "BRAVO-T1", "CHARLIE-T2", "DELTA-T2"]
    assert len(mesh.hosts) == 8
    for site in mesh.sites:
        assert site.latency.name == f"ps-lat.{site.name.lower()}.example.org"
        assert site.bandwidth.name == f"ps-bw.{site.name.lower()}.example.org"
        assert re.match(r"(192\.0\.2|198\.51\.100|203\.0\.113)\.", site.latency.ipv4)
    v4_only = [s for s in mesh.sites if s.families == ("ipv4",)]
    assert [s.name for s in v4_only] == ["DELTA-T2"]
    assert all(h.ipv6 and h.ipv6.startswith("2001:db8:") for s in mesh.sites[:3] for h in s.hosts)
    assert mesh.site_of("ps-bw.charlie-t2.example.org") == "CHARLIE-T2"
    assert mesh.site_of(mesh.sites[1].latency.ipv6 or "") == "BRAVO-T1"
    assert mesh.site_of("198.51.100.1") is None
    assert mesh.site_of("unknown.example.org") is None
    site_map = mesh.site_map()
    assert site_map["DELTA-T2"]["networks"] == [mesh.sites[3].ipv4_net]
    assert len(site_map["ALPHA-T2"]["networks"]) == 2


def test_big_mesh_uses_numbered_sites() -> None:
    big = Mesh(MeshConfig(sites=100))
    assert big.sites[0].name == "SITE-0001" and big.sites[-1].name == "SITE-0100"
    assert big.sites[99].latency.ipv4.startswith("198.18.") or big.sites[
        99
    ].latency.ipv4.startswith("198.19.")
    assert len({h.ipv4 for h in big.hosts}) == 200


def test_series_enumeration_and_keys(mesh: Mesh) -> None:
    # 12 ordered pairs; 6 without DELTA are dual-stack -> 6*2 + 6*1 = 18 per kind
    assert len(mesh.series) == 54
    assert all(re.fullmatch(r"[0-9a-f]{32}", s.key) for s in mesh.series)
    assert len({s.key for s in mesh.series}) == 54
    elmond = Mesh(MeshConfig(sites=4, seed=7, flavour="elmond"))
    assert all(re.fullmatch(r"[0-9a-f]{64}", s.key) for s in elmond.series)
    assert {s.family for s in mesh.series if "DELTA-T2" in (s.src.name, s.dst.name)} == {"ipv4"}
    for s in mesh.series:
        assert 0 <= s.phase < s.interval


def test_scalar_and_vector_hashes_agree() -> None:
    ks = np.arange(-5, 50, dtype=np.int64)
    vec = hash_u01_array((3, 5, 8), ks)
    assert vec.tolist() == [hash_u01(3, 5, 8, int(k)) for k in ks]


def test_points_lie_on_absolute_grid_and_are_deterministic(mesh: Mesh) -> None:
    s = _series(mesh, "latencybg", "ALPHA-T2", "CHARLIE-T2")
    pts = mesh.points(s.key, "histogram-owdelay", NOW - 3600, NOW)
    assert pts and all((int(p["ts"]) - s.phase) % 60 == 0 for p in pts)  # type: ignore[call-overload]
    other = Mesh(MeshConfig(sites=4, seed=7))
    # same data whatever the order of requests (later day first)
    assert other.points(s.key, "histogram-owdelay", NOW, NOW + DAY)[:1] is not None
    assert other.points(s.key, "histogram-owdelay", NOW - 3600, NOW) == pts
    reseeded = Mesh(MeshConfig(sites=4, seed=8))
    s8 = reseeded.find_series("ALPHA-T2", "CHARLIE-T2", "ipv4", "latencybg")
    assert s8 is not None
    assert reseeded.points(s8.key, "histogram-owdelay", NOW - 3600, NOW) != pts


def test_histograms_have_600_packets_and_two_decimals(mesh: Mesh) -> None:
    s = _series(mesh, "latencybg", "ALPHA-T2", "CHARLIE-T2")
    sent = mesh.points(s.key, "packet-count-sent", NOW - 600, NOW)
    lost = mesh.points(s.key, "packet-count-lost", NOW - 600, NOW)
    hists = mesh.points(s.key, "histogram-owdelay", NOW - 600, NOW)
    for h, n, m in zip(hists, sent, lost, strict=True):
        assert n["val"] == 600
        val = h["val"]
        assert isinstance(val, dict)
        assert sum(val.values()) == 600 - int(m["val"])  # type: ignore[call-overload]
        assert all(re.fullmatch(r"-?\d+\.\d\d", label) for label in val)


def test_histogram_helpers_match_numpy() -> None:
    rng = np.random.default_rng(0)
    samples = rng.integers(100, 140, size=(50, 30)).astype(np.int32)
    received = rng.integers(1, 31, size=50).astype(np.int64)
    hist = from_samples(samples, received)
    assert hist.totals.tolist() == received.tolist()
    st = stats(hist)
    for i in range(50):
        row = np.sort(samples[i, : received[i]]).astype(float)
        assert st["mean"][i] == pytest.approx(row.mean())
        assert st["variance"][i] == pytest.approx(row.var())
        assert st["percentile-75"][i] == pytest.approx(np.percentile(row, 75, method="weibull"))
        assert st["median"][i] == pytest.approx(np.percentile(row, 50, method="weibull"))
    groups, merged = merge_groups(hist, np.arange(50, dtype=np.int64) // 10)
    assert groups.tolist() == [0, 1, 2, 3, 4]
    assert merged.totals.tolist() == [int(received[g * 10 : g * 10 + 10].sum()) for g in range(5)]


def test_throughput_failures_and_retransmits(mesh: Mesh) -> None:
    s = _series(mesh, "throughput", "ALPHA-T2", "BRAVO-T1")
    start, end = NOW - 30 * DAY, NOW
    runs = mesh.points(s.key, "pscheduler-run-href", start, end)
    tput = mesh.points(s.key, "throughput", start, end)
    fails = mesh.points(s.key, "failures", start, end)
    retx = mesh.points(s.key, "packet-retransmits", start, end)
    assert len(runs) == len(tput) + len(fails) and fails
    assert {p["ts"] for p in fails}.isdisjoint({p["ts"] for p in tput})
    assert [p["ts"] for p in retx] == [p["ts"] for p in tput]
    assert all(isinstance(p["val"], int) for p in retx)
    assert all(isinstance(p["val"], float) and 1e8 < p["val"] < 9.5e9 for p in tput)
    for p in fails:
        assert is_failed(mesh.gen, s, (int(p["ts"]) - s.phase) // s.interval)  # type: ignore[call-overload]


def test_last_ts_equals_last_point(mesh: Mesh) -> None:
    view = mesh.at(NOW)
    for s in mesh.series[:12]:
        for event in (
            "throughput",
            "failures",
            "histogram-owdelay",
            "histogram-rtt",
            "packet-count-sent",
        ):
            lower = view.oldest if event == "failures" else NOW - 2 * DAY
            pts = mesh.points(s.key, event, lower, NOW)
            expected = int(pts[-1]["ts"]) if pts else None  # type: ignore[call-overload]
            assert view.time_updated(s, event) == expected, (s.kind, event)


def test_truth_counts_and_windows(mesh: Mesh) -> None:
    t = mesh.truth("ALPHA-T2", "BRAVO-T1", "ipv4", "throughput", NOW - DAY, NOW)
    assert isinstance(t, Truth) and 0 < t.count <= 12
    assert t.min is not None and t.max is not None and t.min <= (t.median or 0) <= t.max
    assert mesh.truth("ALPHA-T2", "DELTA-T2", "ipv6", "owdelay", NOW - DAY, NOW).count == 0
    assert mesh.truth("ALPHA-T2", "BRAVO-T1", "ipv4", "rtt", NOW, NOW).count == 0
    loss = mesh.truth("ALPHA-T2", "BRAVO-T1", "ipv4", "loss", NOW - DAY, NOW)
    assert loss.packets_sent == 600 * loss.count and loss.fraction is not None
    with pytest.raises(ValueError):
        mesh.truth("ALPHA-T2", "NOPE", "ipv4", "rtt", 0, 1)
    with pytest.raises(ValueError):
        mesh.truth("ALPHA-T2", "BRAVO-T1", "ipv4", "jitter", 0, 1)


def test_truth_window_is_exclusive_at_start(mesh: Mesh) -> None:
    s = _series(mesh, "throughput", "CHARLIE-T2", "ALPHA-T2")
    first = int(mesh.points(s.key, "throughput", NOW - DAY, NOW)[0]["ts"])  # type: ignore[call-overload]
    with_it = mesh.truth("CHARLIE-T2", "ALPHA-T2", "ipv4", "throughput", first - 1, NOW)
    without = mesh.truth("CHARLIE-T2", "ALPHA-T2", "ipv4", "throughput", first, NOW)
    assert with_it.count == without.count + 1


def test_realism_diurnal_and_rtt_vs_owd(mesh: Mesh) -> None:
    ab = mesh.truth("ALPHA-T2", "CHARLIE-T2", "ipv4", "owdelay", NOW - DAY, NOW)
    ba = mesh.truth("CHARLIE-T2", "ALPHA-T2", "ipv4", "owdelay", NOW - DAY, NOW)
    rtt = mesh.truth("ALPHA-T2", "CHARLIE-T2", "ipv4", "rtt", NOW - DAY, NOW)
    assert ab.median and ba.median and rtt.median
    assert 1.0 <= ab.median <= 90.0
    assert rtt.median == pytest.approx(ab.median + ba.median, rel=0.05)


def test_loss_bursts_exist(mesh: Mesh) -> None:
    worst = 0.0
    for s in (x for x in mesh.series if x.kind == "latencybg"):
        agg = mesh.summary(s.key, "packet-loss-rate", "aggregation", 3600, NOW - 2 * DAY, NOW, NOW)
        worst = max([worst, *(float(p["val"]) for p in agg)])  # type: ignore[arg-type]
    assert 0.01 <= worst <= 0.31


def test_time_window_rules() -> None:
    assert time_window({}, NOW) is None
    assert time_window({"time": "5"}, NOW) == TimeWindow(5, 5)
    assert time_window({"time-start": "5", "time-end": "9"}, NOW) == TimeWindow(5, 9)
    assert time_window({"time-start": "5", "time-range": "10"}, NOW) == TimeWindow(5, 15)
    assert time_window({"time-end": "50", "time-range": "10"}, NOW) == TimeWindow(40, 50)
    assert time_window({"time-range": "10"}, NOW) == TimeWindow(NOW - 10, None)
    assert time_window({"time-start": "5"}, NOW) == TimeWindow(5, None)
    assert time_window({"time-end": "50"}, NOW) == TimeWindow(0, 50)
    with pytest.raises(BadRequest):
        time_window({"time-start": "9", "time-end": "5"}, NOW)
    with pytest.raises(BadRequest):
        time_window({"time": "soon"}, NOW)


def test_concurrent_requests_generate_a_block_once() -> None:
    """Clients ask for several event types of one series at once: one generation, shared."""
    mesh = Mesh(MeshConfig(sites=3, seed=3))
    series = mesh.series[0]
    made: list[int] = []
    started = threading.Semaphore(0)
    release = threading.Event()
    real = mesh._make

    def counted(s, index):  # type: ignore[no-untyped-def]
        made.append(index)
        assert release.wait(60)
        return real(s, index)

    mesh._make = counted  # type: ignore[method-assign]
    got: list[object] = []

    def ask() -> None:
        started.release()
        got.append(mesh.block(series, 5))

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for thread in threads:
        thread.start()
    for _ in threads:
        assert started.acquire(timeout=60)
    release.set()
    for thread in threads:
        thread.join(60)
    assert made == [5]
    assert len(got) == 6 and all(block is got[0] for block in got)
    assert np.array_equal(got[0].ts, Mesh(MeshConfig(sites=3, seed=3)).block(series, 5).ts)  # type: ignore[attr-defined]


def test_failed_generation_is_raised_and_retried() -> None:
    mesh = Mesh(MeshConfig(sites=3, seed=3))
    series = mesh.series[0]
    real = mesh._make
    calls: list[int] = []

    def failing_once(s, index):  # type: ignore[no-untyped-def]
        calls.append(index)
        if len(calls) == 1:
            raise MemoryError("no room")
        return real(s, index)

    mesh._make = failing_once  # type: ignore[method-assign]
    with pytest.raises(MemoryError):
        mesh.block(series, 2)
    assert mesh.block(series, 2).ts.size > 0
    assert calls == [2, 2]
