"""The perfSONAR 5 OpenSearch source against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import base64
import copy
import logging
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pytest_httpserver import HTTPServer
from search_pages import filters, hits, load, serve, serve_empty

from larkps.config.credentials import Credentials, Secret
from larkps.config.sites import SiteMap, SiteRule
from larkps.errors import ArchiveFormatError, ArchiveUnavailable
from larkps.histogram import EMPTY, histogram_pairs
from larkps.model import Endpoint, Family, Metric, Series, SeriesKey
from larkps.sources import (
    EsmondSource,
    HttpOptions,
    JsonClient,
    OpenSearchSource,
    Source,
    SummarySource,
)

CHECKSUM_A = "9f3c2a81d54e6b7f0a1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6"
CHECKSUM_C = "c47d2e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d"
CHECKSUM_E = "e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2"
DAY = (1735689600, 1735775999)  # 2025-01-01, whole day
SITES = SiteMap((SiteRule("SITE-A", domains=("a.example",)),))


def source(
    server: HTTPServer, options: HttpOptions | None = None, **kwargs: Any
) -> OpenSearchSource:
    client = JsonClient("os", options or HttpOptions(connect_timeout=2, read_timeout=5, retries=0))
    return OpenSearchSource("os", server.url_for("/"), client, SITES, **kwargs)


def os_page(name: str) -> Any:
    return load("opensearch", name)


def start_ts(document: dict[str, Any]) -> int:
    return int(datetime.fromisoformat(document["pscheduler"]["start_time"]).timestamp())


def series(
    index: str, checksum: str, event_type: str, metric: Metric, width: float | None = None
) -> Series:
    a = Endpoint("ps.a.example", "192.0.2.10", "SITE-A")
    b = Endpoint("ps.b.example", "198.51.100.20", "ps.b.example")
    return Series(
        SeriesKey("os", checksum, event_type),
        a,
        b,
        Family.IPV4,
        metric,
        "pscheduler/x",
        f"{index}?checksum={checksum}",
        width,
    )


def test_sources_satisfy_the_source_protocols(httpserver: HTTPServer):
    made = source(httpserver)
    assert isinstance(made, SummarySource)
    assert isinstance(made, Source)
    client = JsonClient("e", HttpOptions())
    assert isinstance(EsmondSource("e", "https://x.example", client, SiteMap()), Source)


def test_discover_pages_composite_buckets_with_after_key(httpserver: HTTPServer):
    pages = [os_page("discover_throughput_page1.json"), os_page("discover_throughput_page2.json")]
    route = serve(httpserver, "pscheduler_throughput", agg_pages=pages)
    others = serve_empty(httpserver, "pscheduler_latency", "pscheduler_latencybg", "pscheduler_rtt")
    made = source(httpserver, bucket_page=2)
    found = made.discover(["throughput", "failures", "packet-count-lost"], DAY[0])
    by_key = {(s.key.metadata_key[:4], s.key.event_type): s for s in found}
    # failures only where a run failed; UDP counts nowhere (TCP tests); placeholder pair skipped
    assert set(by_key) == {("0b6e", "throughput"), ("9f3c", "throughput"), ("9f3c", "failures")}
    v6 = by_key[("0b6e", "throughput")]
    assert v6.family is Family.IPV6
    assert (v6.source.ip, v6.destination.ip) == ("2001:db8:a::10", "2001:db8:b::20")
    v4 = by_key[("9f3c", "throughput")]
    assert v4.key.metadata_key == CHECKSUM_A
    assert (v4.source.host, v4.source.site) == ("ps-bw.a.example", "SITE-A")
    assert v4.destination.site == "ps-bw.b.example"  # unmapped host: its own site
    assert (v4.metric, v4.tool, v4.unit) == (Metric.THROUGHPUT, "pscheduler/iperf3", "bit/s")
    assert made.quality.snapshot() == {"placeholder": 4}
    first, second = route.agg_bodies
    assert "after" not in first["aggs"]["pairs"]["composite"]
    assert (
        second["aggs"]["pairs"]["composite"]["after"]
        == pages[0]["aggregations"]["pairs"]["after_key"]
    )
    sources = first["aggs"]["pairs"]["composite"]["sources"]
    assert sources == [{"checksum": {"terms": {"field": "pscheduler.test_checksum.keyword"}}}]
    assert {
        "range": {"pscheduler.start_time": {"gte": DAY[0], "format": "epoch_second"}}
    } in filters(first)
    assert [len(o.agg_bodies) for o in others] == [1, 1, 1]  # failures live in every stream
    aggs = first["aggs"]["pairs"]["aggs"]
    assert aggs["failures__n"] == {"filter": {"term": {"result.succeeded": False}}}
    assert aggs["throughput__n"] == {"value_count": {"field": "result.throughput"}}


def test_raw_fetch_pages_with_search_after(httpserver: HTTPServer):
    pages = [os_page("search_throughput_page1.json"), os_page("search_throughput_page2.json")]
    route = serve(httpserver, "pscheduler_throughput", pages=pages)
    made = source(httpserver, page_size=2)
    one = series("pscheduler_throughput", CHECKSUM_A, "throughput", Metric.THROUGHPUT)
    points = made.fetch(one, *DAY)
    documents = [h["_source"] for page in pages for h in hits(page)]
    expected = [
        (start_ts(d), d["result"]["throughput"]) for d in documents if d["result"]["succeeded"]
    ]
    assert [(p.ts, p.value) for p in points] == expected
    first, second = route.bodies
    assert first["size"] == 2 and "search_after" not in first
    assert second["search_after"] == hits(pages[0])[-1]["sort"]
    assert first["sort"] == [
        {"pscheduler.start_time": "asc"},
        {"pscheduler.test_checksum.keyword": "asc"},
    ]
    window = {"gte": DAY[0], "lt": DAY[1] + 1, "format": "epoch_second"}
    assert {"range": {"pscheduler.start_time": window}} in filters(first)
    assert {"term": {"pscheduler.test_checksum.keyword": CHECKSUM_A}} in filters(first)
    assert "result.throughput" in first["_source"]["includes"]


def test_failed_runs_become_failure_points_with_their_message(httpserver: HTTPServer):
    pages = [os_page("search_throughput_page1.json"), os_page("search_throughput_page2.json")]
    serve(httpserver, "pscheduler_throughput", pages=pages)
    one = series("pscheduler_throughput", CHECKSUM_A, "failures", Metric.FAILURE)
    (point,) = source(httpserver, page_size=2).fetch(one, *DAY)
    failed = hits(pages[1])[0]["_source"]
    assert point.ts == start_ts(failed)  # 22:00:03.5 -> whole seconds
    assert point.value is None and point.note == failed["result"]["error"]


def test_latency_histograms_are_normalised_by_bucket_width(httpserver: HTTPServer):
    page = os_page("search_latencybg.json")
    serve(httpserver, "pscheduler_latencybg", pages=[page])
    made = source(httpserver)
    width = hits(page)[0]["_source"]["test"]["spec"]["bucket-width"]
    assert width == 0.0001
    owd = series("pscheduler_latencybg", CHECKSUM_C, "histogram-owdelay", Metric.OWDELAY, width)
    points = made.fetch(owd, *DAY)
    for point, hit in zip(points, hits(page), strict=True):
        histogram = hit["_source"]["result"]["latency"]["histogram"]
        expected = sorted(
            (round(v * width * 1000, 9), c)
            for v, c in zip(histogram["values"], histogram["counts"], strict=True)
        )
        assert histogram_pairs(point.histogram or EMPTY) == tuple(expected)
        assert point.ts == start_ts(hit["_source"])
    assert histogram_pairs(points[0].histogram or EMPTY)[0][0] == pytest.approx(34.4)
    lost = made.fetch(
        series("pscheduler_latencybg", CHECKSUM_C, "packet-count-lost", Metric.PACKETS_LOST), *DAY
    )
    assert [p.value for p in lost] == [
        h["_source"]["result"]["packets"]["lost"] for h in hits(page)
    ]


def test_negative_delays_are_kept_and_counted(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
):
    page = os_page("search_latency_negative.json")
    serve(httpserver, "pscheduler_latency", pages=[page, page])
    made = source(httpserver)
    owd = series("pscheduler_latency", CHECKSUM_E, "histogram-owdelay", Metric.OWDELAY)
    (point,) = made.fetch(owd, *DAY)
    assert point.histogram and all(v < 0 for v, _ in histogram_pairs(point.histogram))
    caplog.set_level(logging.INFO, logger="larkps")
    median = series("pscheduler_latency", CHECKSUM_E, "owdelay-median", Metric.OWDELAY_MEDIAN)
    (scalar,) = made.fetch(median, *DAY)
    assert scalar.value == hits(page)[0]["_source"]["result"]["latency"]["median"]
    assert made.quality.snapshot() == {"negative-delay": 1}
    assert "kept 1 negative delays" in caplog.text


def test_rtt_in_seconds_becomes_milliseconds(httpserver: HTTPServer):
    page = os_page("search_rtt.json")
    serve(httpserver, "pscheduler_rtt", pages=[page])
    made = source(httpserver)
    results = [h["_source"]["result"] for h in hits(page)]
    mean = made.fetch(series("pscheduler_rtt", CHECKSUM_E, "rtt-mean", Metric.RTT_MEAN), *DAY)
    assert [p.value for p in mean] == [pytest.approx(results[0]["rtt"]["mean"] * 1000)]
    loss = made.fetch(
        series("pscheduler_rtt", CHECKSUM_E, "packet-loss-rate-bidir", Metric.LOSS_RATE_BIDIR), *DAY
    )
    assert [p.value for p in loss] == [r["packets"]["loss"] for r in results]  # 100 % loss kept


DURATION = re.compile(r"^PT(\d+(?:\.\d+)?)S$")


def test_rtt_of_a_real_ping_run_matches_what_ping_printed(
    httpserver: HTTPServer, shared_samples: Path
):
    """Logstash stores result.rtt.* as seconds; larkps must report ping's own ms figures."""
    import json

    envelope = json.loads(
        (shared_samples / "pscheduler_http_archiver_envelope__rtt_ping.json").read_text()
    )
    merged = envelope["run"]["result-merged"]
    seconds = {
        k: float(DURATION.match(merged[k]).group(1)) for k in ("min", "max", "mean", "stddev")
    }  # type: ignore[union-attr]
    document = {
        "test": envelope["test"],
        "pscheduler": {"start_time": envelope["run"]["start-time"], "test_checksum": CHECKSUM_E},
        "meta": {"source": {"ip": "192.0.2.12"}, "destination": {"ip": "1.1.1.1"}, "ip_version": 4},
        "result": {"succeeded": True, "rtt": seconds},
    }
    answer = {"hits": {"hits": [{"_source": document, "sort": [0, CHECKSUM_E]}]}}
    serve(httpserver, "pscheduler_rtt", pages=[answer])
    one = series("pscheduler_rtt", CHECKSUM_E, "rtt-mean", Metric.RTT_MEAN)
    (point,) = source(httpserver).fetch(one, 0, 2**31)
    diags = envelope["run"]["result-full"][0]["diags"]
    printed = re.search(r"min/avg/max/mdev = ([\d.]+)/([\d.]+)/", diags)
    assert printed is not None
    assert point.value == pytest.approx(float(printed.group(2)), abs=1e-9)


def test_summary_mode_asks_the_cluster_for_per_pair_statistics(httpserver: HTTPServer):
    pages = [os_page("summary_throughput_page1.json"), os_page("summary_throughput_page2.json")]
    route = serve(httpserver, "pscheduler_throughput", agg_pages=pages)
    serve_empty(httpserver, "pscheduler_latency", "pscheduler_latencybg", "pscheduler_rtt")
    made = source(httpserver, mode="summary", bucket_page=2)
    summaries = made.summaries(*DAY, ["throughput", "failures"])
    raw = [h["_source"] for n in (1, 2) for h in hits(os_page(f"search_throughput_page{n}.json"))]
    values = [d["result"]["throughput"] for d in raw if d["result"]["succeeded"]]
    by = {(s.series.family, s.series.key.event_type): s for s in summaries}
    v4 = by[(Family.IPV4, "throughput")]
    assert v4.count == len(values)
    assert v4.mean == pytest.approx(float(np.mean(values)))
    assert (v4.minimum, v4.maximum) == (min(values), max(values))
    assert dict(v4.percentiles)[0.5] == pytest.approx(float(np.percentile(values, 50)))
    assert v4.latest_ts == max(start_ts(d) for d in raw)
    assert (v4.start, v4.end) == DAY
    assert v4.series.source.site == "SITE-A" and v4.series.unit == "bit/s"
    assert by[(Family.IPV4, "failures")].count == 1
    assert by[(Family.IPV6, "throughput")].count == 1
    assert (Family.IPV6, "failures") not in by  # no failed runs: no summary
    first, second = route.agg_bodies
    assert (
        second["aggs"]["pairs"]["composite"]["after"]
        == pages[0]["aggregations"]["pairs"]["after_key"]
    )
    fields = [
        next(iter(s.values()))["terms"]["field"]
        for s in first["aggs"]["pairs"]["composite"]["sources"]
    ]
    assert fields[:3] == [
        "meta.source.hostname.keyword",
        "meta.destination.hostname.keyword",
        "meta.ip_version",
    ]
    aggs = first["aggs"]["pairs"]["aggs"]
    assert aggs["throughput__avg"] == {"avg": {"field": "result.throughput"}}
    assert aggs["throughput__pct"]["percentiles"]["field"] == "result.throughput"
    assert {"throughput__min", "throughput__max", "throughput__count"} <= set(aggs)
    assert first["size"] == 0 and route.bodies == []  # no raw documents downloaded


def test_summary_loss_is_sum_lost_over_sum_sent_and_delays_are_scaled(httpserver: HTTPServer):
    serve(httpserver, "pscheduler_latencybg", agg_pages=[os_page("summary_latencybg.json")])
    serve_empty(httpserver, "pscheduler_latency", "pscheduler_throughput", "pscheduler_rtt")
    wanted = ["histogram-owdelay", "packet-count-lost", "packet-count-sent"]
    summaries = source(httpserver, mode="summary").summaries(*DAY, wanted)
    by = {s.series.key.event_type: s for s in summaries}
    raw = [h["_source"] for h in hits(os_page("search_latencybg.json"))]
    lost = sum(d["result"]["packets"]["lost"] for d in raw)
    sent = sum(d["result"]["packets"]["sent"] for d in raw)
    assert (by["packet-count-lost"].total, by["packet-count-sent"].total) == (lost, sent)
    width = raw[0]["test"]["spec"]["bucket-width"]
    medians = [d["result"]["latency"]["median"] * width * 1000 for d in raw]
    median = by["owdelay-median"]
    assert median.series.metric is Metric.OWDELAY_MEDIAN
    assert median.mean == pytest.approx(float(np.mean(medians)))
    assert median.series.bucket_width == width
    assert set(by) == {"owdelay-median", "packet-count-lost", "packet-count-sent"}


def test_basic_auth_is_sent_and_the_password_never_logged(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
):
    password = "s3cr3t-Pa55"
    credentials = Credentials("reader", Secret(password), "environment")
    assert password not in repr(credentials) and password not in repr(credentials.as_auth())
    options = HttpOptions(connect_timeout=2, read_timeout=5, retries=0, auth=credentials.as_auth())
    route = serve(
        httpserver, "pscheduler_throughput", pages=[os_page("search_throughput_page2.json")]
    )
    caplog.set_level(logging.DEBUG)
    made = source(httpserver, options)
    made.fetch(series("pscheduler_throughput", CHECKSUM_A, "failures", Metric.FAILURE), *DAY)
    token = base64.b64encode(f"reader:{password}".encode()).decode()
    assert route.auth == [f"Basic {token}"]
    missing = series("pscheduler_rtt", CHECKSUM_A, "rtt-mean", Metric.RTT_MEAN)
    with pytest.raises(ArchiveUnavailable) as caught:
        made.fetch(missing, *DAY)
    for text in (caplog.text, str(caught.value), repr(options), repr(made.client.options)):
        assert password not in text and token not in text


def test_a_partial_answer_is_an_error_not_silently_short(httpserver: HTTPServer):
    page = os_page("search_rtt.json")
    page["_shards"]["failed"] = 1
    serve(httpserver, "pscheduler_rtt", pages=[page])
    with pytest.raises(ArchiveUnavailable, match="1 shard"):
        source(httpserver).fetch(
            series("pscheduler_rtt", CHECKSUM_E, "rtt-mean", Metric.RTT_MEAN), *DAY
        )


def test_an_answer_of_the_wrong_shape_is_a_format_error(httpserver: HTTPServer):
    serve(httpserver, "pscheduler_rtt", pages=[{"hits": {"total": 3}}])
    with pytest.raises(ArchiveFormatError, match=r"hits\.hits"):
        source(httpserver).fetch(
            series("pscheduler_rtt", CHECKSUM_E, "rtt-mean", Metric.RTT_MEAN), *DAY
        )


def test_garbage_values_are_skipped_and_counted(httpserver: HTTPServer):
    page = os_page("search_throughput_page1.json")
    extra = copy.deepcopy(hits(page)[1])
    extra["sort"][0] += 1000
    hits(page).append(extra)
    documents = [h["_source"] for h in hits(page)]
    documents[0]["result"]["throughput"] = -5
    documents[1]["result"]["throughput"] = float("nan")  # sent as NaN, which JSON lacks
    documents[2]["result"]["throughput"] = "lots"
    serve(httpserver, "pscheduler_throughput", pages=[page])
    made = source(httpserver)
    points = made.fetch(
        series("pscheduler_throughput", CHECKSUM_A, "throughput", Metric.THROUGHPUT), *DAY
    )
    assert points == []
    assert made.quality.snapshot() == {"bad-value": 3}


@pytest.mark.parametrize(
    ("status", "body", "error", "match"),
    [
        (503, "busy", ArchiveUnavailable, "HTTP 503"),
        (404, '{"error": {"type": "index_not_found_exception"}}', ArchiveUnavailable, "HTTP 404"),
        (200, '{"hits": {"hits": [', ArchiveFormatError, "not JSON"),
    ],
)
def test_bad_answers_are_errors_of_that_series(
    httpserver: HTTPServer, status: int, body: str, error: type[Exception], match: str
):
    httpserver.expect_request("/pscheduler_rtt/_search", method="POST").respond_with_data(
        body, status=status, content_type="application/json"
    )
    with pytest.raises(error, match=match):
        source(httpserver).fetch(
            series("pscheduler_rtt", CHECKSUM_E, "rtt-mean", Metric.RTT_MEAN), *DAY
        )
