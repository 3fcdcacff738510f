"""The esmond/elmond client against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from larkps.config.sites import SiteMap, SiteRule
from larkps.errors import ArchiveFormatError, ArchiveUnavailable
from larkps.histogram import EMPTY, histogram_pairs
from larkps.model import Family, Metric
from larkps.sources import (
    ARCHIVE_PATH,
    EsmondSource,
    HttpOptions,
    JsonClient,
    MetadataFilters,
    ParsedPage,
    archive_url,
    parse_histogram,
    parse_metadata,
    parse_page,
    path_fingerprint,
    trace_hops,
)

ARCHIVE = Path(__file__).parent / "fixtures" / "archive"


def load(name: str) -> object:
    return json.loads((ARCHIVE / name).read_text())


def make_source(server: HTTPServer, **kwargs: int) -> EsmondSource:
    client = JsonClient("test", HttpOptions(connect_timeout=10, read_timeout=10, retries=0))
    sites = SiteMap((SiteRule("SITE-A", domains=("site-a.example",)),))
    return EsmondSource("test", server.url_for("/"), client, sites, **kwargs)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("ps.example.org", "https://ps.example.org/esmond/perfsonar/archive/"),
        ("http://ps.example.org", "http://ps.example.org/esmond/perfsonar/archive/"),
        ("https://ps.example.org/", "https://ps.example.org/esmond/perfsonar/archive/"),
        (
            "https://ps.example.org/esmond/perfsonar/archive",
            "https://ps.example.org/esmond/perfsonar/archive/",
        ),
        (
            "http://127.0.0.1:8080/proxy/esmond/perfsonar/archive/?x=1",
            "http://127.0.0.1:8080/proxy/esmond/perfsonar/archive/",
        ),
    ],
)
def test_archive_url_accepts_host_or_full_url(given: str, expected: str):
    assert archive_url(given) == expected


def test_archive_url_rejects_other_schemes():
    with pytest.raises(ValueError, match="archive host"):
        archive_url("ftp://ps.example.org")


def test_discover_pages_until_short_page_and_maps_sites(httpserver: HTTPServer):
    objects = load("esmond_metadata.json")
    assert isinstance(objects, list)
    for event_type in ("histogram-owdelay", "throughput"):
        matching = [
            o for o in objects if any(e["event-type"] == event_type for e in o["event-types"])
        ]
        for offset in (0, 2):
            httpserver.expect_request(
                ARCHIVE_PATH,
                query_string={
                    "event-type": event_type,
                    "time-start": "1699990000",
                    "limit": "2",
                    "offset": str(offset),
                },
            ).respond_with_json(matching[offset : offset + 2])
    source = make_source(httpserver, metadata_page=2)
    series = source.discover(["histogram-owdelay", "throughput", "failures"], 1699990000)
    by_event = {(s.key.metadata_key[:4], s.key.event_type): s for s in series}
    assert set(by_event) == {
        ("1a2b", "histogram-owdelay"),
        ("1a2b", "failures"),
        ("2b3c", "histogram-owdelay"),
        ("3c4d", "throughput"),
        ("3c4d", "failures"),
    }
    owd = by_event[("1a2b", "histogram-owdelay")]
    assert owd.bucket_width == pytest.approx(0.0001)
    assert owd.source.site == "SITE-A"
    assert owd.destination.site == "ps-lat.site-b.example"  # unmapped: own site
    assert by_event[("2b3c", "histogram-owdelay")].family is Family.IPV6
    assert by_event[("3c4d", "throughput")].data_uri.endswith("/throughput/base")
    offsets = [r.args.get("offset") for r, _ in httpserver.log]
    assert offsets == ["0", "2", "0"]  # two owdelay pages (the second short), one throughput


def test_elmond_metadata_uses_base_uri_verbatim():
    (obj,) = load("elmond_metadata.json")  # type: ignore[misc]
    series = parse_metadata(obj, "elmond", "https://x/esmond/perfsonar/archive/", SiteMap())
    throughput = next(s for s in series if s.metric is Metric.THROUGHPUT)
    assert throughput.data_uri.endswith("/throughput/base/0")
    assert len(throughput.key.metadata_key) == 64


def test_fetch_pages_by_time_start(httpserver: HTTPServer):
    uri = "/esmond/perfsonar/archive/3c4d/throughput/base"
    rows = load("throughput.json")
    assert isinstance(rows, list)
    httpserver.expect_request(
        uri, query_string={"time-start": "1699999000", "time-end": "1700030000", "limit": "2"}
    ).respond_with_json(rows[:2])
    httpserver.expect_request(
        uri, query_string={"time-start": "1700007201", "time-end": "1700030000", "limit": "2"}
    ).respond_with_json(rows[2:])
    httpserver.expect_request(
        uri, query_string={"time-start": "1700021601", "time-end": "1700030000", "limit": "2"}
    ).respond_with_json([])
    source = make_source(httpserver, data_page=2)
    series = _series(source, "throughput", uri)
    points = source.fetch(series, 1699999000, 1700030000)
    assert [p.ts for p in points] == [1700000000, 1700007200, 1700014400, 1700021600]
    assert points[1].value == pytest.approx(7225480000.0)


def _series(source: EsmondSource, event_type: str, uri: str, width: str = "0.001"):
    obj = {
        "metadata-key": "3c4d",
        "source": "192.0.2.11",
        "destination": "198.51.100.21",
        "sample-bucket-width": width,
        "event-types": [{"event-type": event_type, "base-uri": uri}],
    }
    (series,) = parse_metadata(obj, source.name, source.url, source.sites)
    return series


def test_histogram_labels_are_rescaled_when_bucket_width_is_not_a_millisecond(
    httpserver: HTTPServer,
):
    uri = "/esmond/perfsonar/archive/1a2b/histogram-owdelay/base"
    httpserver.expect_request(uri).respond_with_json(load("histogram_owdelay_bw0.0001.json"))
    source = make_source(httpserver)
    points = source.fetch(_series(source, "histogram-owdelay", uri, "0.0001"), 0, 1700001000)
    assert [p.ts for p in points] == [1700000060, 1700000120, 1700000180]
    assert histogram_pairs(points[0].histogram or EMPTY) == (
        (34.4, 506),
        (34.5, 85),
        (34.6, 5),
        (34.7, 4),
    )
    assert histogram_pairs(points[2].histogram or EMPTY)[0] == (34.3, 1)


def test_failures_keep_their_message(httpserver: HTTPServer):
    uri = "/esmond/perfsonar/archive/3c4d/failures/base"
    httpserver.expect_request(uri).respond_with_json(load("failures.json"))
    source = make_source(httpserver)
    (point,) = source.fetch(_series(source, "failures", uri), 0, 1800000000)
    assert point.value is None
    assert point.note is not None and "unable to connect" in point.note


def test_bad_points_are_skipped_not_stored(httpserver: HTTPServer):
    uri = "/esmond/perfsonar/archive/3c4d/throughput/base"
    httpserver.expect_request(uri).respond_with_json(load("bad_values.json"))
    source = make_source(httpserver)
    points = source.fetch(_series(source, "throughput", uri), 0, 1800000000)
    assert [(p.ts, p.value) for p in points] == [(1700000000, 940e6), (1700000500, 950e6)]


def test_parse_histogram_ignores_garbage_buckets():
    value = {"12.5": 3, "x": 4, "13.0": -1, "NaN": 2, "12.0": "7"}
    assert histogram_pairs(parse_histogram(value, None)) == ((12.0, 7), (12.5, 3))
    assert parse_histogram("not a histogram", None) == EMPTY


@pytest.mark.parametrize("status", [404, 500, 503])
def test_http_errors_name_status_and_url(httpserver: HTTPServer, status: int):
    httpserver.expect_request(ARCHIVE_PATH).respond_with_data("oops", status=status)
    source = make_source(httpserver)
    with pytest.raises(ArchiveUnavailable, match=f"HTTP {status} from http://"):
        source.discover(["throughput"], 0)


@pytest.mark.parametrize(
    ("fixture", "error"),
    [("truncated.json", "not JSON"), ("wrong_shape.json", "is not a list")],
)
def test_malformed_responses_are_format_errors(httpserver: HTTPServer, fixture: str, error: str):
    body = (ARCHIVE / fixture).read_text()
    httpserver.expect_request(ARCHIVE_PATH).respond_with_data(body, content_type="application/json")
    source = make_source(httpserver)
    with pytest.raises(ArchiveFormatError, match=error):
        source.discover(["throughput"], 0)


def test_redirect_to_another_host_is_refused(httpserver: HTTPServer):
    httpserver.expect_request(ARCHIVE_PATH).respond_with_data(
        "", status=302, headers={"Location": "http://198.18.0.1/esmond/perfsonar/archive/"}
    )
    with pytest.raises(ArchiveUnavailable, match="refused redirect"):
        make_source(httpserver).discover(["throughput"], 0)


def test_connection_refused_names_the_url():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = JsonClient("down", HttpOptions(connect_timeout=1, read_timeout=1, retries=0))
    source = EsmondSource("down", f"http://127.0.0.1:{port}", client, SiteMap())
    with pytest.raises(ArchiveUnavailable, match=f"cannot connect to http://127.0.0.1:{port}"):
        source.discover(["throughput"], 0)


def test_real_debrecen_metadata_parses(shared_samples: Path):
    objects = json.loads(
        (
            shared_samples
            / "esmond_metadata_list__perfsonar.debrecen3.hbone.hu__pscheduler_era.json"
        ).read_text()
    )
    series = [s for o in objects for s in parse_metadata(o, "deb", "http://x/", SiteMap())]
    families = {s.family for s in series}
    assert families == {Family.IPV4, Family.IPV6}
    owd = [s for s in series if s.metric is Metric.OWDELAY]
    assert owd and all(s.bucket_width == pytest.approx(0.0001) for s in owd)
    assert all(s.data_uri.startswith("/esmond/perfsonar/archive/") for s in series)


def _parsed(name: str, event_type: str, latest: int = 1700100000) -> ParsedPage:
    series = _series_of(event_type)
    return parse_page(load(name), series, "test", latest)


def _series_of(event_type: str):
    obj = {
        "metadata-key": "9f9f",
        "source": "2001:db8::1",
        "destination": "2001:db8::2",
        "input-source": "ps.site-a.example",
        "event-types": [{"event-type": event_type, "base-uri": f"/x/{event_type}/base"}],
    }
    (series,) = parse_metadata(obj, "test", "http://x/", SiteMap())
    return series


def test_packet_trace_keeps_a_fingerprint_of_the_hop_sequence():
    page = _parsed("packet_trace.json", "packet-trace")
    first, same, changed = page.points
    assert page.rejected == {"bad trace": 1}
    assert first.value == 4.0 and changed.value == 3.0  # hops
    assert first.note == same.note  # string (bwctl) and number (pScheduler) forms agree
    assert changed.note != first.note and len(changed.note or "") == 64
    hops = trace_hops(load("packet_trace.json")[0]["val"])  # type: ignore[index]
    assert hops[2] == (3, ())  # a silent hop is kept as a hop without addresses
    assert path_fingerprint(hops) == first.note


def test_loss_rate_bidir_accepts_numeric_strings_and_refuses_fractions_above_one():
    page = _parsed("packet_loss_rate_bidir.json", "packet-loss-rate-bidir")
    assert [(p.ts, p.value) for p in page.points] == [
        (1700000000, 0.0),
        (1700000600, 0.1),
        (1700001200, 1.0),
    ]
    assert page.rejected == {"implausible value": 1}


def test_time_error_estimates_and_retransmits():
    clock = _parsed("time_error_estimates.json", "time-error-estimates")
    assert [p.value for p in clock.points] == [0.323, 30.1]
    assert clock.rejected == {"negative value": 1}
    retransmits = _parsed("packet_retransmits.json", "packet-retransmits")
    assert [p.value for p in retransmits.points] == [12.0, 0.0, 3.0]
    series = _series_of("packet-retransmits")
    assert (series.metric, series.unit, series.family) == (
        Metric.RETRANSMITS,
        "packets",
        Family.IPV6,
    )


def test_every_listed_event_type_has_a_metric_and_a_unit():
    listed = [
        "throughput",
        "packet-retransmits",
        "packet-loss-rate",
        "packet-loss-rate-bidir",
        "packet-count-lost",
        "packet-count-lost-bidir",
        "packet-count-sent",
        "histogram-owdelay",
        "histogram-rtt",
        "time-error-estimates",
        "failures",
        "packet-trace",
    ]
    for event_type in listed:
        series = _series_of(event_type)
        assert series.unit in {"bit/s", "packets", "fraction", "ms", "hops", ""}, event_type


def test_future_timestamps_are_refused():
    page = parse_page([{"ts": 1700000400, "val": 1.0}], _series_of("throughput"), "t", 1700000000)
    assert page.points == [] and page.rejected == {"timestamp in the future": 1}


def test_metadata_filters_become_query_parameters(httpserver: HTTPServer):
    httpserver.expect_request(
        ARCHIVE_PATH,
        query_string={
            "event-type": "throughput",
            "source": "ps.site-a.example",
            "tool-name": "pscheduler/iperf3",
            "dns-match-rule": "only-v6",
            "time-range": "3600",
            "ip-transport-protocol": "tcp",
            "limit": "500",
            "offset": "0",
        },
    ).respond_with_json(load("esmond_metadata.json"))
    filters = MetadataFilters(
        source="ps.site-a.example",
        tool_name="pscheduler/iperf3",
        dns_match_rule="only-v6",
        time_range=3600,
        families=(Family.IPV4,),
        params=(("ip-transport-protocol", "tcp"),),
    )
    client = JsonClient("test", HttpOptions(connect_timeout=10, read_timeout=10))
    source = EsmondSource("test", httpserver.url_for("/"), client, SiteMap(), filters=filters)
    found = source.discover(["throughput"], 0)
    assert {s.key.metadata_key[:4] for s in found} == {"3c4d"}  # the IPv6 one is filtered out
    assert all(s.family is Family.IPV4 for s in found)


def test_a_malformed_metadata_object_is_skipped_not_fatal(httpserver: HTTPServer):
    objects = load("esmond_metadata.json")
    assert isinstance(objects, list)
    httpserver.expect_request(ARCHIVE_PATH).respond_with_json([{"junk": 1}, *objects])
    source = make_source(httpserver)
    found = source.discover(["throughput"], 0)
    assert {s.key.metadata_key[:4] for s in found} == {"3c4d"}
    assert source.skipped_metadata == 1
