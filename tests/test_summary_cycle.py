"""Summary-mode archives through a whole cycle: cluster aggregations in, ClassAds out.

A real HTTP server on 127.0.0.1 answers the OpenSearch ``_search`` composite
aggregations with the recorded summary fixtures (paged by ``after``; empty for a
window that starts after the newest document). Expected figures are computed here
from those buckets: median = the 50th-percentile value in Mbps, loss = Σlost / Σsent.
"""

from __future__ import annotations

import copy
import json
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import classad2
import pytest
from pytest_httpserver import HTTPServer
from search_pages import EMPTY_BUCKETS, EMPTY_HITS, hits, load, serve, serve_empty
from werkzeug import Request, Response

from larkps.config.settings import settings_from_dict
from larkps.config.sites import SiteMap
from larkps.daemon.service import Daemon
from larkps.pipeline import run_cycle
from larkps.sources.search.learned import LearnedSites
from larkps.store.db import Store
from larkps.store.points import IngestStore

NOW = 1735775999  # 2025-01-01T23:59:59Z, the end of the fixtures' day
STALE_AFTER = 6 * 3600
WINDOWS = (3600, 86400, 604800)
SITES = {"SITE-A": {"domains": ["a.example"]}, "SITE-B": {"domains": ["b.example"]}}
V4 = "SITE-A->SITE-B/ipv4@larkps"
V6 = "SITE-A->SITE-B/ipv6@larkps"


@pytest.fixture(autouse=True)
def _fresh_learned_sites() -> Iterator[None]:
    LearnedSites.forget()
    yield
    LearnedSites.forget()


@dataclass
class Cluster:
    """One index answering composite aggregations from recorded bucket pages."""

    pages: list[Any]
    time_field: str
    agg_bodies: list[dict[str, Any]] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)  # raw searches: none expected

    def __call__(self, request: Request) -> Response:
        body = json.loads(request.get_data())
        if "aggs" not in body:
            self.bodies.append(body)
            return _json(EMPTY_HITS)
        self.agg_bodies.append(body)
        return _json(self.answer(body))

    def answer(self, body: dict[str, Any]) -> Any:
        if not self.pages or self.start(body) > self.newest():
            return EMPTY_BUCKETS
        after = body["aggs"]["pairs"]["composite"].get("after")
        if after is None:
            return self.pages[0]
        keys = [p["aggregations"]["pairs"].get("after_key") for p in self.pages]
        following = keys.index(after) + 1 if after in keys else len(self.pages)
        return self.pages[following] if following < len(self.pages) else EMPTY_BUCKETS

    def start(self, body: dict[str, Any]) -> float:
        (bounds,) = [
            f["range"][self.time_field] for f in body["query"]["bool"]["filter"] if "range" in f
        ]
        return bounds["gte"] / (1000 if bounds["format"] == "epoch_millis" else 1)

    def newest(self) -> float:
        return max(b["latest"]["value"] / 1000 for b in buckets_of(self.pages))


def _json(answer: Any) -> Response:
    return Response(json.dumps(answer), content_type="application/json")


def buckets_of(pages: list[Any]) -> list[dict[str, Any]]:
    return [b for page in pages for b in page["aggregations"]["pairs"]["buckets"]]


def cluster(server: HTTPServer, prefix: str, index: str, pages: list[Any], field: str) -> Cluster:
    route = Cluster(pages, field)
    server.expect_request(f"{prefix}/{index}/_search", method="POST").respond_with_handler(route)
    return route


def start_ms(document: dict[str, Any]) -> float:
    return datetime.fromisoformat(document["pscheduler"]["start_time"]).timestamp() * 1000


def with_earliest(page: Any, documents: list[dict[str, Any]]) -> Any:
    """A fixture page whose buckets also carry ``earliest`` (min start time of their pair)."""
    page = copy.deepcopy(page)
    for bucket in buckets_of([page]):
        key = bucket["key"]
        mine = [
            start_ms(d)
            for d in documents
            if (d["meta"]["source"]["ip"], d["meta"]["destination"]["ip"])
            == (key["source_ip"], key["destination_ip"])
        ]
        if mine:
            bucket["earliest"] = {"value": min(mine)}
    return page


def raw_documents(*names: str) -> list[dict[str, Any]]:
    return [h["_source"] for name in names for h in hits(load("opensearch", name))]


@dataclass
class OpenSearch:
    """The perfSONAR 5 archive under ``/os``: throughput and latencybg summaries."""

    throughput: Cluster
    latencybg: Cluster
    others: list[Cluster]

    @property
    def routes(self) -> list[Cluster]:
        return [self.throughput, self.latencybg, *self.others]


def serve_opensearch(server: HTTPServer) -> OpenSearch:
    throughput = [
        with_earliest(
            load("opensearch", "summary_throughput_page1.json"),
            raw_documents("search_throughput_page1.json", "search_throughput_page2.json"),
        ),
        load("opensearch", "summary_throughput_page2.json"),
    ]
    latencybg = [
        with_earliest(
            load("opensearch", "summary_latencybg.json"), raw_documents("search_latencybg.json")
        )
    ]
    time_field = "pscheduler.start_time"
    return OpenSearch(
        cluster(server, "/os", "pscheduler_throughput", throughput, time_field),
        cluster(server, "/os", "pscheduler_latencybg", latencybg, time_field),
        [
            cluster(server, "/os", index, [], time_field)
            for index in ("pscheduler_latency", "pscheduler_rtt")
        ],
    )


def opensearch_archive(server: HTTPServer) -> dict[str, Any]:
    return {
        "name": "os",
        "kind": "opensearch",
        "url": server.url_for("/os/"),
        "retries": 0,
        "search": {"mode": "summary"},
    }


def ads_by_name(path: Path) -> dict[str, classad2.ClassAd]:
    ads = classad2.parseAds(path.read_text(), classad2.ParserType.Old)
    return {str(ad["Name"]): ad for ad in ads}


# -- expected figures, straight from the fixture buckets ------------------------------
def bucket(pages: list[Any], ip_version: int) -> dict[str, Any]:
    (found,) = [b for b in buckets_of(pages) if b["key"]["ip_version"] == ip_version]
    return found


def percentile(one: dict[str, Any], name: str, percent: str, scale: float = 1.0) -> float:
    return float(one[f"{name}__pct"]["values"][percent]) * scale


def latest_s(one: dict[str, Any]) -> int:
    return int(one["latest"]["value"] // 1000)


def completeness(one: dict[str, Any], count: int, window: int) -> float:
    """count / (window / cadence), cadence = mean gap between the pair's documents."""
    gap = round((latest_s(one) - int(one["earliest"]["value"] // 1000)) / (one["doc_count"] - 1))
    return min(1.0, count / (window / gap))


def test_a_cycle_publishes_ads_from_cluster_summaries(httpserver: HTTPServer, tmp_path: Path):
    archive = serve_opensearch(httpserver)
    settings = settings_from_dict(
        {
            "archives": [opensearch_archive(httpserver)],
            "sites": SITES,
            "publish": {"file": {"path": str(tmp_path / "larkps.ads")}},
        }
    )
    result = run_cycle(settings, NOW)
    ads = ads_by_name(tmp_path / "larkps.ads")

    tp = bucket(archive.throughput.pages, 4)
    ad = ads[V4]
    mbps = 1e-6
    assert ad["LarkPS_ThroughputMbps_24h_Median"] == pytest.approx(
        percentile(tp, "throughput", "50.0", mbps)
    )
    for suffix, percent in (("P10", "10.0"), ("P90", "90.0"), ("P95", "95.0")):
        assert ad[f"LarkPS_ThroughputMbps_24h_{suffix}"] == pytest.approx(
            percentile(tp, "throughput", percent, mbps)
        )
    assert ad["LarkPS_ThroughputMbps_24h_Mean"] == pytest.approx(
        tp["throughput__avg"]["value"] * mbps
    )
    assert ad["LarkPS_ThroughputMbps_24h_Min"] == pytest.approx(
        tp["throughput__min"]["value"] * mbps
    )
    assert ad["LarkPS_ThroughputMbps_24h_Count"] == tp["throughput__count"]["value"]
    assert ad["LarkPS_ThroughputMbps_24h_LatestTime"] == latest_s(tp)
    assert ad["LarkPS_ThroughputMbps_24h_Stale"] is (NOW - latest_s(tp) > STALE_AFTER)
    assert "LarkPS_ThroughputMbps_24h_StdDev" not in ad  # the cluster sends no std
    expected = completeness(tp, tp["throughput__count"]["value"], 86400)
    assert ad["LarkPS_ThroughputMbps_24h_Completeness"] == round(expected, 4)
    assert ad["LarkPS_ThroughputMbps_24h_LowQuality"] is (expected < 0.5)
    assert ad["LarkPS_Failures_24h_Count"] == tp["failures__n"]["doc_count"]

    lat = bucket(archive.latencybg.pages, 4)
    width = lat["newest"]["hits"]["hits"][0]["_source"]["test"]["spec"]["bucket-width"]
    assert ad["LarkPS_OneWayDelayMs_24h_Median"] == pytest.approx(
        percentile(lat, "owdelay-median", "50.0", width * 1000)
    )
    assert ad["LarkPS_OneWayDelayMs_24h_Stale"] is (NOW - latest_s(lat) > STALE_AFTER)
    assert ad["LarkPS_OneWayDelayMs_24h_ClockError"] is False
    lost, sent = lat["packet-count-lost__sum"]["value"], lat["packet-count-sent__sum"]["value"]
    assert ad["LarkPS_Loss_24h_Fraction"] == pytest.approx(lost / sent)
    assert (ad["LarkPS_Loss_24h_PacketsSent"], ad["LarkPS_Loss_24h_PacketsLost"]) == (sent, lost)

    # The 1 h window holds no test (the cluster answers no bucket): empty and stale.
    assert ad["LarkPS_ThroughputMbps_1h_Count"] == 0
    assert ad["LarkPS_ThroughputMbps_1h_Stale"] is True
    assert ad["LarkPS_ThroughputMbps_7d_Median"] == pytest.approx(
        percentile(tp, "throughput", "50.0", mbps)
    )
    # No history from summaries: no forecast; the estimate is the measured median.
    assert result.forecasts == ()
    assert ad["LarkPS_ExpectedProvenance"] == "measured"
    assert ad["LarkPS_ExpectedMbps"] == pytest.approx(percentile(tp, "throughput", "50.0", mbps))
    spread = percentile(tp, "throughput", "90.0") - percentile(tp, "throughput", "10.0")
    assert ad["LarkPS_ExpectedErrorMbps"] == pytest.approx(spread / 2 * mbps)
    assert 0.0 <= ad["LarkPS_Health"] <= 1.0

    v6 = bucket(archive.throughput.pages, 6)  # a pair whose last test is 13 h old
    assert ads[V6]["LarkPS_ThroughputMbps_24h_Median"] == pytest.approx(
        percentile(v6, "throughput", "50.0", mbps)
    )
    assert NOW - latest_s(v6) > STALE_AFTER
    assert ads[V6]["LarkPS_ThroughputMbps_24h_Stale"] is True
    assert {"SITE-A", "SITE-B"} <= {s.site for s in result.site_stats}

    report = result.report
    assert (report.archives, report.points, report.problems) == (("os",), 0, ())
    assert report.paths == 2
    for route in archive.routes:  # one aggregation per window and index, no raw searches
        assert len(route.agg_bodies) == len(WINDOWS) and route.bodies == []
    starts = sorted(archive.throughput.start(body) for body in archive.throughput.agg_bodies)
    assert starts == sorted(NOW - w + 1 for w in WINDOWS)
    asked = archive.throughput.agg_bodies[0]["aggs"]["pairs"]["aggs"]
    assert asked["earliest"] == {"min": {"field": "pscheduler.start_time"}}  # for the cadence


def test_a_wlcg_summary_cycle_flags_negative_delays(httpserver: HTTPServer):
    now = 1735725600 + 3 * 3600  # 13:00Z, three hours after the fixture's newest test
    owd = cluster(httpserver, "/es", "ps_owd", [load("pses", "summary_owd.json")], "timestamp")
    for index in ("ps_throughput", "ps_packetloss", "ps_retransmits"):
        cluster(httpserver, "/es", index, [], "timestamp")
    archive = {
        "name": "wlcg",
        "kind": "ps-es",
        "url": httpserver.url_for("/es/"),
        "retries": 0,
        "search": {"mode": "summary"},
    }
    result = run_cycle(settings_from_dict({"archives": [archive]}), now, publish=False)
    (stats,) = result.stats  # the placeholder pair is skipped
    (one,) = [b for b in buckets_of(owd.pages) if "%{" not in b["key"]["dest"]]
    assert (stats.path.source_site, stats.path.destination_site) == ("SITE-A", "SITE-B")
    delay = stats.owdelay  # per-test medians, preferred over per-test means
    assert delay.median == pytest.approx(percentile(one, "owdelay-median", "50.0"))
    assert delay.minimum == one["owdelay-median__min"]["value"] < 0
    assert delay.count == one["owdelay-median__count"]["value"]
    assert delay.quality is not None and delay.quality.clock_error and not delay.quality.stale
    assert stats.throughput.count == 0 and result.forecasts == ()


def pses_raw_throughput(server: HTTPServer) -> list[dict[str, Any]]:
    """The WLCG archive under ``/es`` in raw mode: one throughput pair SITE-A -> SITE-B."""
    answer = load("pses", "search_throughput.json")
    newest = copy.deepcopy(hits(answer)[-1])
    documents = [h["_source"] for h in hits(answer)]
    found = {
        "key": {"src": documents[0]["src"], "dest": documents[0]["dest"]},
        "doc_count": len(documents),
        "newest": {"hits": {"hits": [newest]}},
        "throughput__n": {"value": len(documents)},
        "packet-retransmits__n": {"value": len(documents)},
    }
    discovery = {"hits": {"hits": []}, "aggregations": {"pairs": {"buckets": [found]}}}
    serve(server, "ps_throughput", [answer], [discovery], prefix="/es")
    serve_empty(server, *(f"es/{i}" for i in ("ps_owd", "ps_packetloss", "ps_retransmits")))
    return documents


def both_archives(server: HTTPServer) -> list[dict[str, Any]]:
    raw = {"name": "wlcg", "kind": "ps-es", "url": server.url_for("/es/"), "retries": 0}
    return [raw, opensearch_archive(server)]


def test_raw_figures_win_on_a_path_a_summary_archive_also_has(
    httpserver: HTTPServer, tmp_path: Path
):
    documents = pses_raw_throughput(httpserver)
    archive = serve_opensearch(httpserver)
    settings = settings_from_dict(
        {
            "archives": both_archives(httpserver),
            "sites": SITES,
            "publish": {"file": {"path": str(tmp_path / "larkps.ads")}},
        }
    )
    result = run_cycle(settings, NOW)
    ads = ads_by_name(tmp_path / "larkps.ads")
    raw = [d["throughput"] for d in documents]
    ad = ads[V4]  # both archives measure SITE-A -> SITE-B over IPv4: the raw one wins
    assert ad["LarkPS_ThroughputMbps_24h_Count"] == len(raw)
    assert ad["LarkPS_ThroughputMbps_24h_Median"] == pytest.approx(statistics.median(raw) * 1e-6)
    assert ad["LarkPS_OneWayDelayMs_24h_Count"] == 0  # the summary's delays are not mixed in
    assert ad["LarkPS_Failures_24h_Count"] == 0
    v6 = bucket(archive.throughput.pages, 6)  # only the summary archive has IPv6
    assert ads[V6]["LarkPS_ThroughputMbps_24h_Median"] == pytest.approx(
        percentile(v6, "throughput", "50.0", 1e-6)
    )
    assert result.report.archives == ("wlcg", "os")


def test_an_incremental_daemon_cycle_asks_the_cluster_again_and_stores_nothing_of_it(
    httpserver: HTTPServer, tmp_path: Path
):
    documents = pses_raw_throughput(httpserver)
    archive = serve_opensearch(httpserver)
    config = tmp_path / "larkps.toml"
    config.write_text(
        f"""
        [larkps]
        state_dir = "{tmp_path / "state"}"
        [fetch]
        incremental = true
        [publish.file]
        path = "{tmp_path / "larkps.ads"}"
        [sites.SITE-A]
        domains = ["a.example"]
        [sites.SITE-B]
        domains = ["b.example"]
        [[archives]]
        name = "wlcg"
        kind = "ps-es"
        url = "{httpserver.url_for("/es/")}"
        retries = 0
        [[archives]]
        name = "os"
        kind = "opensearch"
        url = "{httpserver.url_for("/os/")}"
        retries = 0
        [archives.search]
        mode = "summary"
        """
    )
    clock = [NOW]
    daemon = Daemon(config, clock=lambda: clock[0])
    first = daemon.run_one_cycle()
    clock[0] = NOW + 60
    second = daemon.run_one_cycle()
    assert first["ok"] and second["ok"] and not second["problems"]
    assert list(second["archives"]) == ["wlcg", "os"]
    for route in archive.routes:  # every cycle asks for every window again, no raw searches
        assert len(route.agg_bodies) == 2 * len(WINDOWS) and route.bodies == []
    with Store.in_directory(tmp_path / "state") as store:
        stored = IngestStore(store)
        assert stored.series("os", SiteMap()) == []
        assert stored.series("wlcg", SiteMap()) != []
    ads = ads_by_name(tmp_path / "larkps.ads")
    assert ads[V6]["LarkPS_UpdateTime"] == NOW + 60
    assert ads[V4]["LarkPS_ThroughputMbps_24h_Count"] == len(documents)  # raw, from the store
    assert ads[V4]["LarkPS_OneWayDelayMs_24h_Count"] == 0
    tp = bucket(archive.throughput.pages, 6)
    assert ads[V6]["LarkPS_ThroughputMbps_24h_Median"] == pytest.approx(
        percentile(tp, "throughput", "50.0", 1e-6)
    )
