"""Delay and loss from per-test scalars when an archive keeps no histograms or counts.

WLCG ``ps_owd`` has per-test medians and means, ``ps_packetloss`` per-test fractions,
OpenSearch ``pscheduler_rtt`` per-test means and round-trip counts. Expected figures
are computed here with numpy from the values handed in; the cycle test serves
documents from a real HTTP server on 127.0.0.1 and reads the ads file back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import classad2
import numpy as np
import pytest
from event_types import EVENTS
from pytest_httpserver import HTTPServer
from search_pages import serve_empty
from werkzeug import Request, Response

from larkps.config.settings import settings_from_dict
from larkps.histogram import histogram_of
from larkps.model import (
    AlarmKind,
    AlarmPolicy,
    Basis,
    Endpoint,
    Family,
    LossSummary,
    Metric,
    PathKey,
    PathStats,
    Point,
    Series,
    SeriesKey,
    Summary,
)
from larkps.pipeline import run_cycle
from larkps.publish.ads import AdContext, path_attributes
from larkps.sources.search.learned import LearnedSites
from larkps.stats.aggregate import path_stats
from larkps.stats.aggregate.sites import site_stats
from larkps.stats.alarms import loss_findings
from larkps.stats.rollups.store import update_rollups
from larkps.stats.rollups.views import sites_as_mapped, window_stats
from larkps.store.db import Store

NOW = 1_735_775_999  # 2025-01-01T23:59:59Z
HOUR, DAY = 3600, 86400


def series(metric: Metric, key: str) -> Series:
    return Series(
        key=SeriesKey("wlcg", key, EVENTS[metric]),
        source=Endpoint("ps.a.example", "192.0.2.1", "A"),
        destination=Endpoint("ps.b.example", "192.0.2.2", "B"),
        family=Family.IPV4,
        metric=metric,
        tool="",
        data_uri="/x",
    )


def spread(values: list[float], gap: int = 600) -> list[Point]:
    """One test every ``gap`` seconds, the newest at NOW."""
    n = len(values)
    return [Point(NOW - gap * (n - 1 - i), value=v) for i, v in enumerate(values)]


def numpy_summary(values: list[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=float)
    return {
        "median": float(np.median(v)),
        "p10": float(np.percentile(v, 10)),
        "p25": float(np.percentile(v, 25)),
        "p75": float(np.percentile(v, 75)),
        "p90": float(np.percentile(v, 90)),
        "p95": float(np.percentile(v, 95)),
        "mean": float(v.mean()),
        "std": float(v.std()),
        "minimum": float(v.min()),
        "maximum": float(v.max()),
    }


def assert_summary(got: Summary, values: list[float]) -> None:
    assert got.count == len(values)
    for name, expected in numpy_summary(values).items():
        assert getattr(got, name) == pytest.approx(expected, rel=1e-12), name
    assert got.latest_value == values[-1] and got.latest_ts == NOW


def one(data: list[tuple[Series, list[Point]]], window: int = DAY) -> PathStats:
    (stats,) = path_stats(data, window, NOW)
    return stats


MEDIANS = [12.38, 12.45, 13.1, 11.97, 12.6]
MEANS = [12.41, 12.52, 13.4, 12.02, 12.7]


# -- one-way delay ---------------------------------------------------------------------
def test_owd_medians_stand_in_for_histograms_and_means_are_the_last_resort():
    medians = (series(Metric.OWDELAY_MEDIAN, "owd"), spread(MEDIANS))
    means = (series(Metric.OWDELAY_MEAN, "owd"), spread(MEANS))
    stats = one([medians, means])
    assert_summary(stats.owdelay, MEDIANS)  # statistics over per-test medians
    assert stats.owdelay.basis is Basis.TEST_MEDIANS
    assert stats.owdelay.quality is not None and stats.owdelay.quality.cadence == 600
    assert not stats.owdelay.quality.clock_error
    only_means = one([means])
    assert_summary(only_means.owdelay, MEANS)
    assert only_means.owdelay.basis is Basis.TEST_MEANS


def test_histograms_win_where_the_window_has_them_and_medians_fill_in_elsewhere():
    old = NOW - 3 * HOUR  # the only histogram test: in the day, not in the last hour
    histogram = (
        series(Metric.OWDELAY, "lat"),
        [Point(old, histogram=histogram_of([(10.0, 3), (20.0, 1)]))],
    )
    medians = (series(Metric.OWDELAY_MEDIAN, "owd"), spread(MEDIANS))
    day = one([histogram, medians])
    assert day.owdelay.basis is Basis.HISTOGRAMS and day.owdelay.count == 1
    samples = [10.0, 10.0, 10.0, 20.0]
    assert day.owdelay.median == np.median(samples) and day.owdelay.mean == np.mean(samples)
    hour = one([histogram, medians], HOUR)
    assert hour.owdelay.basis is Basis.TEST_MEDIANS
    assert_summary(hour.owdelay, MEDIANS)


def test_negative_medians_raise_the_clock_error_flag_and_garbage_is_rejected():
    values = [1.2, -0.42, 1.1]
    points = [*spread(values), Point(NOW - 30, value=5e6)]  # 5000 s: not a delay
    points.sort(key=lambda p: p.ts)
    stats = one([(series(Metric.OWDELAY_MEDIAN, "owd"), points)])
    quality = stats.owdelay.quality
    assert quality is not None and quality.clock_error and quality.rejected == 1
    assert stats.owdelay.count == 3 and stats.owdelay.minimum == -0.42


# -- round-trip time -------------------------------------------------------------------
def test_rtt_comes_from_per_test_means_never_from_minima():
    means, minima = [20.4, 21.0, 35.2, 20.9], [19.8, 20.1, 20.0, 20.2]
    stats = one(
        [
            (series(Metric.RTT_MIN, "rtt"), spread(minima)),
            (series(Metric.RTT_MEAN, "rtt"), spread(means)),
        ]
    )
    assert_summary(stats.rtt, means)
    assert stats.rtt.basis is Basis.TEST_MEANS
    only_minima = one([(series(Metric.RTT_MIN, "rtt"), spread(minima))])
    assert only_minima.rtt.count == 0 and only_minima.rtt.median is None


# -- loss ------------------------------------------------------------------------------
RATES = [0.0, 1 / 300, 0.0, 0.5, 0.0]


def test_loss_without_counts_is_the_mean_of_the_per_test_fractions():
    stats = one([(series(Metric.LOSS_RATE, "pl"), spread(RATES))])
    loss = stats.loss
    assert loss.basis is Basis.RATES and loss.count == len(RATES)
    assert loss.fraction == pytest.approx(float(np.mean(RATES)), rel=1e-12)
    assert (loss.packets_sent, loss.packets_lost, loss.latest_ts) == (0, 0, NOW)
    assert loss.quality is not None and loss.quality.cadence == 600
    assert not loss.quality.stale


def test_packet_counts_win_over_rates_and_one_way_over_round_trip():
    lost, sent = [0.0, 3.0, 1.0], [600.0, 600.0, 600.0]
    counts = [
        (series(Metric.PACKETS_LOST, "lat"), spread(lost)),
        (series(Metric.PACKETS_SENT, "lat"), spread(sent)),
    ]
    bidir_lost, bidir_sent = [2.0, 0.0, 10.0], [10.0, 10.0, 10.0]
    bidir = [
        (series(Metric.PACKETS_LOST_BIDIR, "rtt"), spread(bidir_lost)),
        (series(Metric.PACKETS_SENT, "rtt"), spread(bidir_sent)),
    ]
    rates = [(series(Metric.LOSS_RATE, "pl"), spread(RATES))]
    both = one([*counts, *bidir, *rates]).loss
    assert both.basis is Basis.COUNTS and both.rate is None
    assert (both.packets_lost, both.packets_sent) == (sum(lost), sum(sent))
    assert both.fraction == sum(lost) / sum(sent)
    round_trip = one([*bidir, *rates]).loss
    assert round_trip.basis is Basis.COUNTS_BIDIR
    assert round_trip.fraction == sum(bidir_lost) / sum(bidir_sent)
    rates_bidir = [(series(Metric.LOSS_RATE_BIDIR, "rtt"), spread(RATES))]
    assert one(rates_bidir).loss.basis is Basis.RATES_BIDIR
    garbage = [(series(Metric.LOSS_RATE, "pl"), spread([0.1, 1.5, 0.3]))]  # 1.5: dropped
    assert one(garbage).loss.fraction == pytest.approx(0.2)


def test_rate_based_loss_reaches_alarms_sites_and_ads_without_packet_counts():
    stats = one([(series(Metric.LOSS_RATE, "pl"), spread([0.1, 0.05, 0.0]))])
    findings = {f.kind: f for f in loss_findings(stats, AlarmPolicy())}
    assert findings[AlarmKind.LOSS].bad and not findings[AlarmKind.COMPLETE_LOSS].bad
    assert findings[AlarmKind.LOSS].value == pytest.approx(0.05)
    (site_a, _) = site_stats([stats], [], [])
    assert site_a.outbound_loss == pytest.approx(0.05)
    context = AdContext(update_time=NOW, lifetime=900, sequence=0, daemon_start=NOW)
    ad = path_attributes(stats, context)
    assert ad["LarkPS_Loss_24h_Fraction"] == pytest.approx(0.05)
    assert "LarkPS_Loss_24h_PacketsSent" not in ad and "LarkPS_Loss_24h_PacketsLost" not in ad
    everything = one([(series(Metric.LOSS_RATE, "pl"), spread([1.0, 1.0]))])
    findings = {f.kind: f for f in loss_findings(everything, AlarmPolicy())}
    assert findings[AlarmKind.COMPLETE_LOSS].bad


def test_pooled_site_loss_prefers_paths_with_packet_counts():
    counted = with_loss(LossSummary(3, 600, 6, NOW, basis=Basis.COUNTS))
    rated = with_loss(LossSummary(2, rate=0.5, basis=Basis.RATES))
    other = with_loss(LossSummary(6, rate=0.1, basis=Basis.RATES))
    (site_a, _) = site_stats([counted, rated], [], [])
    assert site_a.outbound_loss == 6 / 600  # rates only count where no path has counts
    (site_a, _) = site_stats([rated, other], [], [])
    assert site_a.outbound_loss == pytest.approx((2 * 0.5 + 6 * 0.1) / 8)  # per-test mean


def with_loss(loss: LossSummary) -> PathStats:
    path = PathKey("A", "B", Family.IPV4)
    return PathStats(path, DAY, NOW, Summary(0), Summary(0), Summary(0), loss)


# -- rollups give the same figures -----------------------------------------------------
def test_rollups_pick_the_same_basis_per_window(tmp_path: Path):
    old = NOW - 3 * HOUR
    data = [
        (
            series(Metric.OWDELAY, "lat"),
            [Point(old, histogram=histogram_of([(10.0, 3), (20.0, 1)]))],
        ),
        (series(Metric.OWDELAY_MEDIAN, "owd"), spread(MEDIANS)),
        (series(Metric.OWDELAY_MEAN, "owd"), spread(MEANS)),
        (series(Metric.RTT_MEAN, "rtt"), spread(MEANS)),
        (series(Metric.LOSS_RATE, "pl"), spread(RATES)),
    ]
    with Store(tmp_path / "s.sqlite") as store:
        update_rollups(store, data, NOW, (HOUR, DAY))
        sites = sites_as_mapped(s for s, _ in data)
        rolled = {s.window: s for s in window_stats(store, (HOUR, DAY), NOW, sites=sites)}
    assert rolled[DAY].owdelay.basis is Basis.HISTOGRAMS and rolled[DAY].owdelay.count == 1
    assert rolled[HOUR].owdelay.basis is Basis.TEST_MEDIANS
    assert_summary(rolled[HOUR].owdelay, MEDIANS)
    assert_summary(rolled[DAY].rtt, MEANS)
    assert rolled[DAY].loss.basis is Basis.RATES
    assert rolled[DAY].loss.fraction == pytest.approx(float(np.mean(RATES)), rel=1e-12)


# -- a whole cycle on a WLCG ps_* archive in raw mode -----------------------------------
@pytest.fixture(autouse=True)
def _fresh_learned_sites() -> Iterator[None]:
    LearnedSites.forget()
    yield
    LearnedSites.forget()


IDENTITY = {
    "MA": "192.0.2.10",
    "src": "192.0.2.10",
    "dest": "198.51.100.20",
    "src_host": "ps-lat.a.example",
    "dest_host": "ps-lat.b.example",
    "ipv6": False,
    "src_production": True,
    "dest_production": True,
    "src_site": "SITE-A",
    "dest_site": "SITE-B",
}


def documents(fields: dict[str, list[float]], gap: int = 1200) -> list[dict[str, Any]]:
    """One document every ``gap`` seconds, the newest two minutes before NOW."""
    n = len(next(iter(fields.values())))
    return [
        {
            **IDENTITY,
            "timestamp": (NOW - 120 - gap * (n - 1 - i)) * 1000,
            **{name: values[i] for name, values in fields.items()},
        }
        for i in range(n)
    ]


class Index:
    """One ps_* index: a discovery bucket for the one pair, then its documents."""

    def __init__(self, docs: list[dict[str, Any]], event_types: tuple[str, ...]) -> None:
        self.docs = docs
        self.event_types = event_types

    def __call__(self, request: Request) -> Response:
        body = json.loads(request.get_data())
        answer = self.discovery() if "aggs" in body else self.hits(body)
        return Response(json.dumps(answer), content_type="application/json")

    def discovery(self) -> dict[str, Any]:
        newest = self.docs[-1]
        bucket = {
            "key": {"src": newest["src"], "dest": newest["dest"]},
            "doc_count": len(self.docs),
            "newest": {"hits": {"hits": [{"_source": newest, "sort": [newest["timestamp"]]}]}},
            **{f"{e}__n": {"value": len(self.docs)} for e in self.event_types},
        }
        return {"hits": {"hits": []}, "aggregations": {"pairs": {"buckets": [bucket]}}}

    def hits(self, body: dict[str, Any]) -> dict[str, Any]:
        found = [] if "search_after" in body else self.docs
        hits = [{"_source": d, "sort": [d["timestamp"], d["src"], d["dest"]]} for d in found]
        return {"hits": {"hits": hits}}


def serve_pses(server: HTTPServer) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rng = np.random.default_rng(7)
    medians = np.round(rng.normal(12.0, 0.4, 60), 3).tolist()
    means = [m + 0.2 for m in medians]
    owd = documents({"delay_median": medians, "delay_mean": means, "delay_sd": [0.1] * 60})
    rates = (rng.integers(0, 4, 60) / 600).tolist()
    loss = documents({"packet_loss": rates})
    routes = (
        ("ps_owd", Index(owd, ("owdelay-median", "owdelay-mean"))),
        ("ps_packetloss", Index(loss, ("packet-loss-rate",))),
    )
    for index, route in routes:
        server.expect_request(f"/es/{index}/_search", method="POST").respond_with_handler(route)
    serve_empty(server, "es/ps_throughput", "es/ps_retransmits", "es/ps_trace")
    return owd, loss


@pytest.mark.parametrize("incremental", [False, True], ids=["direct", "rollups"])
def test_a_raw_wlcg_cycle_publishes_delay_and_loss_from_per_test_values(
    httpserver: HTTPServer, tmp_path: Path, incremental: bool
):
    owd, loss = serve_pses(httpserver)
    archive = {"name": "wlcg", "kind": "ps-es", "url": httpserver.url_for("/es/"), "retries": 0}
    settings = settings_from_dict(
        {
            "larkps": {"state_dir": str(tmp_path / "state")},
            "fetch": {"incremental": incremental},
            "archives": [archive],
            "publish": {"file": {"path": str(tmp_path / "larkps.ads")}},
        }
    )
    result = run_cycle(settings, NOW)
    assert not result.report.problems
    parsed = classad2.parseAds((tmp_path / "larkps.ads").read_text(), classad2.ParserType.Old)
    (ad,) = [a for a in parsed if a["MyType"] == "LarkPSPath"]
    assert ad["Name"] == "SITE-A->SITE-B/ipv4@larkps"
    for label, window in (("24h", DAY), ("1h", HOUR)):
        start = (NOW - window) * 1000
        medians = [d["delay_median"] for d in owd if d["timestamp"] > start]
        rates = [d["packet_loss"] for d in loss if d["timestamp"] > start]
        expected = numpy_summary(medians)
        prefix = f"LarkPS_OneWayDelayMs_{label}"
        assert ad[f"{prefix}_Count"] == len(medians)
        assert ad[f"{prefix}_Median"] == pytest.approx(expected["median"], rel=1e-12)
        assert ad[f"{prefix}_P10"] == pytest.approx(expected["p10"], rel=1e-12)
        assert ad[f"{prefix}_P90"] == pytest.approx(expected["p90"], rel=1e-12)
        assert ad[f"{prefix}_Mean"] == pytest.approx(expected["mean"], rel=1e-12)
        assert ad[f"{prefix}_LatestValue"] == medians[-1]
        assert ad[f"{prefix}_ClockError"] is False and ad[f"{prefix}_Stale"] is False
        assert ad[f"LarkPS_Loss_{label}_Count"] == len(rates)
        assert ad[f"LarkPS_Loss_{label}_Fraction"] == pytest.approx(np.mean(rates), rel=1e-12)
        assert f"LarkPS_Loss_{label}_PacketsSent" not in ad
        completeness = min(1.0, len(medians) / (window / 1200))
        assert ad[f"{prefix}_Completeness"] == round(completeness, 4)  # published to 4 places
    (stats,) = result.stats
    assert stats.owdelay.basis is Basis.TEST_MEDIANS and stats.loss.basis is Basis.RATES
    if incremental:  # the figures came from the rollups
        with Store.in_directory(tmp_path / "state") as store:
            rows = store.connection.execute("SELECT kind FROM rollup_streams").fetchall()
        assert {r[0] for r in rows} == {"owdelay_median", "owdelay_mean", "loss_rate"}
