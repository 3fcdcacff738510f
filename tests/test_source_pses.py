"""The WLCG/OSG ps_* datastore source against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from pytest_httpserver import HTTPServer
from search_pages import filters, hits, load, serve, serve_empty

from larkps.config.sites import SiteMap, SiteRule
from larkps.model import Endpoint, Family, Metric, Series, SeriesKey
from larkps.sources import HttpOptions, JsonClient, PsEsSource
from larkps.sources.search.learned import LearnedSites

DAY = (1735689600, 1735775999)
SITES = SiteMap(
    (
        SiteRule("MAP-B", domains=("b.example",)),
        SiteRule("NET-A", networks=(ipaddress.ip_network("192.0.2.0/24"),)),
    )
)
PRODUCTION = [{"term": {"src_production": True}}, {"term": {"dest_production": True}}]
OTHER_INDICES = ("ps_throughput", "ps_packetloss", "ps_retransmits", "ps_trace")


@pytest.fixture(autouse=True)
def _fresh_learned_sites() -> Iterator[None]:
    LearnedSites.forget()
    yield
    LearnedSites.forget()


def source(server: HTTPServer, prefix: str = "", **kwargs: Any) -> PsEsSource:
    client = JsonClient("wlcg", HttpOptions(connect_timeout=2, read_timeout=5, retries=0))
    return PsEsSource("wlcg", server.url_for(prefix + "/"), client, SITES, **kwargs)


def page(name: str) -> Any:
    return load("pses", name)


def series(index: str, event_type: str, metric: Metric, src: str, dest: str) -> Series:
    a, b = Endpoint("a", src, "A"), Endpoint("b", dest, "B")
    uri = f"{index}?dest={dest}&src={src}"
    return Series(SeriesKey("wlcg", "k", event_type), a, b, Family.IPV4, metric, "", uri)


def test_discover_reads_sites_from_documents_and_skips_placeholders(httpserver: HTTPServer):
    pages = [page("discover_owd_page1.json"), page("discover_owd_page2.json")]
    route = serve(httpserver, "ps_owd", agg_pages=pages)
    made = source(httpserver, bucket_page=3)
    found = made.discover(["histogram-owdelay"], DAY[0])  # ps_owd has medians, not histograms
    assert {s.key.event_type for s in found} == {"owdelay-median", "owdelay-mean"}
    medians = {s.source.ip: s for s in found if s.metric is Metric.OWDELAY_MEDIAN}
    assert set(medians) == {"192.0.2.10", "2001:db8:a::10", "192.0.2.30", "192.0.2.31"}
    v4 = medians["192.0.2.10"]
    assert (v4.source.site, v4.destination.site) == ("SITE-A", "SITE-B")  # "Site-A" upper-cased
    assert (v4.source.host, v4.family, v4.unit) == ("ps-lat.a.example", Family.IPV4, "ms")
    v6 = medians["2001:db8:a::10"]  # stored upper-case, normalised
    assert v6.family is Family.IPV6
    assert v6.source.site == "SITE-A"  # src_site "site-a": same site as "Site-A"
    assert v6.destination.site == "MAP-B"  # UNKNOWN: site map by host name
    bare = medians["192.0.2.30"]  # no host names, no sites at all
    assert (bare.source.host, bare.source.site) == ("192.0.2.30", "NET-A")
    assert bare.destination.site == "198.51.100.20"
    odd = medians["192.0.2.31"]  # a site name that could inject ClassAd text is not used
    assert odd.source.site == "NET-A"
    assert made.quality.snapshot() == {"placeholder": 7, "bad-site-name": 1}
    assert len({s.key.metadata_key for s in found}) == 4
    first, second = route.agg_bodies
    assert (
        second["aggs"]["pairs"]["composite"]["after"]
        == pages[0]["aggregations"]["pairs"]["after_key"]
    )
    assert filters(first)[:2] == PRODUCTION
    since = {"range": {"timestamp": {"gte": DAY[0] * 1000, "format": "epoch_millis"}}}
    assert since in filters(first)


def test_raw_fetch_converts_milliseconds_and_keeps_negative_delays(httpserver: HTTPServer):
    pages = [page("search_owd_page1.json"), page("search_owd_page2.json")]
    route = serve(httpserver, "ps_owd", pages=pages)
    made = source(httpserver, page_size=2)
    one = series("ps_owd", "owdelay-median", Metric.OWDELAY_MEDIAN, "192.0.2.10", "198.51.100.20")
    points = made.fetch(one, *DAY)
    documents = [h["_source"] for p in pages for h in hits(p)]
    assert [(p.ts, p.value) for p in points] == [
        (d["timestamp"] // 1000, d["delay_median"]) for d in documents
    ]
    assert any(p.value is not None and p.value < 0 for p in points)
    assert made.quality.snapshot() == {"negative-delay": 1}
    first, second = route.bodies
    assert second["search_after"] == hits(pages[0])[-1]["sort"]
    assert first["sort"] == [{"timestamp": "asc"}, {"src": "asc"}, {"dest": "asc"}]
    window = {"gte": DAY[0] * 1000, "lt": (DAY[1] + 1) * 1000, "format": "epoch_millis"}
    assert {"range": {"timestamp": window}} in filters(first)
    assert {"terms": {"src": ["192.0.2.10"]}} in filters(first)
    assert filters(first)[:2] == PRODUCTION


def test_ipv6_addresses_are_matched_in_every_spelling(httpserver: HTTPServer):
    route = serve(httpserver, "ps_owd", pages=[{"hits": {"hits": []}}])
    one = series("ps_owd", "owdelay-mean", Metric.OWDELAY_MEAN, "2001:DB8:A::10", "2001:db8:b::20")
    assert source(httpserver).fetch(one, *DAY) == []
    (body,) = route.bodies
    assert {"terms": {"src": ["2001:DB8:A::10", "2001:db8:a::10"]}} in filters(body)


def test_production_filter_can_be_turned_off(httpserver: HTTPServer):
    route = serve(httpserver, "ps_owd", pages=[{"hits": {"hits": []}}])
    one = series("ps_owd", "owdelay-mean", Metric.OWDELAY_MEAN, "192.0.2.10", "198.51.100.20")
    source(httpserver, production_only=False).fetch(one, *DAY)
    assert not any("src_production" in str(f) for f in filters(route.bodies[0]))


def test_summary_mode_skips_placeholder_pairs_and_matches_the_raw_documents(
    httpserver: HTTPServer,
):
    route = serve(httpserver, "ps_owd", agg_pages=[page("summary_owd.json")])
    serve_empty(httpserver, *OTHER_INDICES)
    made = source(httpserver, mode="summary")
    summaries = made.summaries(*DAY, ["histogram-owdelay"])
    raw = [h["_source"] for n in (1, 2) for h in hits(page(f"search_owd_page{n}.json"))]
    by = {s.series.key.event_type: s for s in summaries}
    assert set(by) == {"owdelay-median", "owdelay-mean"}
    median = by["owdelay-median"]
    values = [d["delay_median"] for d in raw]
    assert median.count == len(values)
    assert median.mean == pytest.approx(float(np.mean(values)))
    assert median.minimum == min(values) < 0  # kept: a clock problem, not garbage
    assert median.latest_ts == max(d["timestamp"] for d in raw) // 1000
    assert (median.series.source.site, median.series.destination.site) == ("SITE-A", "SITE-B")
    assert made.quality.snapshot() == {"placeholder": 7, "negative-delay": 2}
    (body,) = route.agg_bodies
    sources = body["aggs"]["pairs"]["composite"]["sources"]
    assert [next(iter(s)) for s in sources] == ["src", "dest", "ipv6"]
    assert body["aggs"]["pairs"]["aggs"]["owdelay-median__avg"] == {
        "avg": {"field": "delay_median"}
    }


def test_throughput_is_bits_per_second_with_retransmits(httpserver: HTTPServer):
    answer = page("search_throughput.json")
    serve(httpserver, "ps_throughput", pages=[answer, answer])
    made = source(httpserver)
    documents = [h["_source"] for h in hits(answer)]
    pair = ("192.0.2.20", "198.51.100.40")
    rate = made.fetch(series("ps_throughput", "throughput", Metric.THROUGHPUT, *pair), *DAY)
    assert [p.value for p in rate] == [d["throughput"] for d in documents]
    resent = made.fetch(
        series("ps_throughput", "packet-retransmits", Metric.RETRANSMITS, *pair), *DAY
    )
    assert [p.value for p in resent] == [d["retransmits"] for d in documents]


def test_packet_loss_is_a_fraction(httpserver: HTTPServer):
    answer = page("search_packetloss.json")
    serve(httpserver, "ps_packetloss", pages=[answer])
    pair = ("192.0.2.10", "198.51.100.20")
    loss = source(httpserver).fetch(
        series("ps_packetloss", "packet-loss-rate", Metric.LOSS_RATE, *pair), *DAY
    )
    assert [p.value for p in loss] == [h["_source"]["packet_loss"] for h in hits(answer)]


def test_trace_points_carry_hop_count_and_a_path_fingerprint(httpserver: HTTPServer):
    answer = page("search_trace.json")
    serve(httpserver, "ps_trace", pages=[answer])
    pair = ("192.0.2.10", "198.51.100.20")
    routes = source(httpserver).fetch(series("ps_trace", "packet-trace", Metric.PATH, *pair), *DAY)
    assert [p.value for p in routes] == [len(h["_source"]["hops"]) for h in hits(answer)]
    assert routes[0].note != routes[1].note  # the second hop changed: a path change


def test_index_names_and_url_prefix_are_configurable(httpserver: HTTPServer):
    route = serve(httpserver, "ps_owd_v2", pages=[{"hits": {"hits": []}}], prefix="/q")
    made = source(httpserver, prefix="/q", indices={"owd": "ps_owd_v2"})
    one = series("ps_owd_v2", "owdelay-mean", Metric.OWDELAY_MEAN, "192.0.2.10", "198.51.100.20")
    assert made.fetch(one, *DAY) == []
    assert len(route.bodies) == 1


def test_document_sites_outlive_the_source_that_learned_them(httpserver: HTTPServer):
    """The incremental store maps stored endpoints through ``sources.sites`` again."""
    serve(httpserver, "ps_owd", agg_pages=[page("discover_owd_page1.json")])
    made = source(httpserver, bucket_page=4)  # one short page
    found = made.discover(["owdelay-median"], DAY[0])
    v4 = next(s for s in found if s.source.ip == "192.0.2.10")
    later = source(httpserver)  # a new cycle makes new sources
    assert later.sites.site_for(v4.source.host, v4.source.ip) == "SITE-A"
    assert later.sites.site_for("ps-lat.e.example", "192.0.2.31") == "NET-A"  # configured map
    assert "owdelay-median" in later.event_types  # stand-ins are kept by the ingester
    assert made.filters == later.filters and made.filters.session  # rediscovered per process
