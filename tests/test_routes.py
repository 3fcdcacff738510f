"""One route, one fingerprint: esmond ``packet-trace`` and WLCG ``ps_trace`` agree."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from search_pages import load, serve

from larkps.config.sites import SiteMap
from larkps.model import Endpoint, Family, Metric, Point, Series, SeriesKey
from larkps.sources import (
    HttpOptions,
    JsonClient,
    PsEsSource,
    listed_hops,
    parse_metadata,
    parse_page,
)

DAY = (1735689600, 1735775999)
PAIR = ("192.0.2.10", "198.51.100.20")


def esmond_points(trace: list[Any]) -> list[Point]:
    """Points of an esmond ``packet-trace`` answer, parsed as EsmondSource parses them."""
    obj = {
        "metadata-key": "9f9f",
        "source": PAIR[0],
        "destination": PAIR[1],
        "input-source": "ps.a.example",
        "event-types": [{"event-type": "packet-trace", "base-uri": "/x/packet-trace/base"}],
    }
    (series,) = parse_metadata(obj, "esmond", "http://x/", SiteMap())
    latest = max(int(entry["ts"]) for entry in trace) + 1
    return parse_page(trace, series, "esmond", latest).points


def ps_trace_points(server: HTTPServer, routes: list[tuple[list[Any], list[Any]]]) -> list[Point]:
    """Points PsEsSource reads from ps_trace documents with these (hops, ttls)."""
    answer = load("pses", "search_trace.json")
    template = answer["hits"]["hits"][0]
    documents = []
    for n, (hops, ttls) in enumerate(routes):
        hit = copy.deepcopy(template)
        hit["_source"].update(hops=hops, ttls=ttls, n_hops=len(hops))
        hit["_source"]["timestamp"] += n * 600_000
        hit["sort"][0] = hit["_source"]["timestamp"]
        documents.append(hit)
    answer["hits"]["hits"] = documents
    answer["hits"]["total"]["value"] = len(documents)
    serve(server, "ps_trace", pages=[answer])
    client = JsonClient("wlcg", HttpOptions(connect_timeout=2, read_timeout=5, retries=0))
    made = PsEsSource("wlcg", server.url_for("/"), client, SiteMap())
    a, b = Endpoint("a", PAIR[0], "A"), Endpoint("b", PAIR[1], "B")
    uri = f"ps_trace?dest={PAIR[1]}&src={PAIR[0]}"
    one = Series(SeriesKey("wlcg", "k", "packet-trace"), a, b, Family.IPV4, Metric.PATH, "", uri)
    return made.fetch(one, *DAY)


def test_the_same_route_from_esmond_and_ps_trace_has_one_fingerprint(httpserver: HTTPServer):
    trace = json.loads((Path(__file__).parent / "fixtures/archive/packet_trace.json").read_text())
    silent, _, plain = esmond_points(trace)  # bwctl strings with a silent hop; pScheduler numbers
    found = ps_trace_points(
        httpserver,
        [
            (["192.0.2.1", "198.51.100.9", "203.0.113.20"], [1, 2, 3]),
            (["192.0.2.1", "198.51.100.7", None, "203.0.113.20"], [1, 2, 3, 4]),
            (["192.0.2.1", "198.51.100.7", "203.0.113.20"], [1, 2, 4]),  # ttl 3 not listed
        ],
    )
    assert [p.value for p in found] == [3.0, 4.0, 3.0]
    assert (found[0].note, found[0].value) == (plain.note, plain.value)
    assert (found[1].note, found[1].value) == (silent.note, silent.value)
    assert found[2].note not in {plain.note, silent.note}  # a different hop list


def test_ps_trace_hops_read_like_esmond_probes():
    expected = [(1, ("192.0.2.1",)), (2, ()), (3, ("2001:db8::1",))]
    assert listed_hops(["192.0.2.1", "*", "2001:DB8:0::1"], [1, 2, 3]) == expected
    assert listed_hops(["192.0.2.1", "", "[2001:db8::1]"]) == expected  # no ttls: 1, 2, 3
    assert listed_hops(["192.0.2.1", None, "2001:db8::1"], [1, 2]) == expected  # ttls too short
    assert listed_hops("192.0.2.1") == [] and listed_hops([]) == []


def test_a_real_esmond_trace_matches_its_ps_trace_form(
    shared_samples: Path, httpserver: HTTPServer
):
    sample = shared_samples / "esmonddocs__data__packet-trace__base.json"
    if not sample.exists():
        pytest.skip(f"{sample.name} not in {shared_samples}")
    trace = json.loads(sample.read_text())
    (esmond,) = esmond_points(trace)
    first_ip: dict[int, str] = {}
    for probe in trace[0]["val"]:
        first_ip.setdefault(int(probe["ttl"]), probe["ip"])  # one answer per ttl in this sample
    ttls = sorted(first_ip)
    (found,) = ps_trace_points(httpserver, [([first_ip[t] for t in ttls], ttls)])
    assert (found.note, found.value) == (esmond.note, esmond.value)
