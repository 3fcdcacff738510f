"""The embedded archive over real HTTP on 127.0.0.1 with a pinned clock."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import requests

from larkps.embedded import EmbeddedArchive, Mesh, MeshConfig

NOW = 1_700_000_000
DAY = 86400
SEED = 7


def _start(flavour: str, seed: int = SEED, sites: int = 4) -> EmbeddedArchive:
    mesh = Mesh(MeshConfig(sites=sites, seed=seed, flavour=flavour))
    return EmbeddedArchive(mesh, clock=lambda: NOW).start()


@pytest.fixture(scope="module")
def esmond() -> Iterator[EmbeddedArchive]:
    archive = _start("esmond")
    yield archive
    archive.stop()


@pytest.fixture(scope="module")
def elmond() -> Iterator[EmbeddedArchive]:
    archive = _start("elmond")
    yield archive
    archive.stop()


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def get(http: requests.Session, url: str, status: int = 200, **params: Any) -> Any:
    response = http.get(url, params=params, timeout=30)
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    return response.json()


def listing(
    http: requests.Session, archive: EmbeddedArchive, **params: Any
) -> list[dict[str, Any]]:
    return list(get(http, archive.archive_url, limit=5000, **params))


def one(
    http: requests.Session,
    archive: EmbeddedArchive,
    src: str,
    dst: str,
    kind: str,
    family: str = "ipv4",
) -> dict[str, Any]:
    """The metadata object of one series, found with hostname filters."""
    role = "bw" if kind == "throughput" else "lat"
    found = listing(
        http,
        archive,
        **{
            "input-source": f"ps-{role}.{src.lower()}.example.org",
            "input-destination": f"ps-{role}.{dst.lower()}.example.org",
            "pscheduler-test-type": kind,
            "dns-match-rule": "v4v6",
        },
    )
    matches = [m for m in found if (":" in m["source"]) == (family == "ipv6")]
    assert len(matches) == 1
    return matches[0]


def base_uri(md: dict[str, Any], event: str) -> str:
    return str(next(e["base-uri"] for e in md["event-types"] if e["event-type"] == event))


def data(
    http: requests.Session, archive: EmbeddedArchive, md: dict[str, Any], event: str, **params: Any
) -> list[dict[str, Any]]:
    params.setdefault("limit", 10000)
    return list(get(http, archive.url + base_uri(md, event), **params))


# -- metadata list -----------------------------------------------------------------------
@pytest.mark.parametrize("flavour", ["esmond", "elmond"])
def test_paging_links_visit_every_object_once(
    flavour: str, request: pytest.FixtureRequest, http: requests.Session
) -> None:
    archive: EmbeddedArchive = request.getfixturevalue(flavour)
    url: str | None = f"{archive.archive_url}?limit=7"
    keys: list[str] = []
    pages = 0
    while url:
        page = get(http, url)
        assert 1 <= len(page) <= 7
        head = page[0]
        assert head["metadata-count-total"] == len(archive.mesh.series)
        assert all("metadata-count-total" not in m for m in page[1:])
        if pages == 0:
            assert head["metadata-previous-page"] is None
        else:
            assert head["metadata-previous-page"].startswith(archive.url)
        keys += [m["metadata-key"] for m in page]
        url = head["metadata-next-page"]
        pages += 1
        assert pages <= 8
    assert pages == 8
    assert sorted(keys) == sorted(s.key for s in archive.mesh.series)
    assert len(set(keys)) == len(keys)


def test_offset_and_previous_page(esmond: EmbeddedArchive, http: requests.Session) -> None:
    all_keys = [m["metadata-key"] for m in listing(http, esmond)]
    page = get(http, esmond.archive_url, limit=10, offset=20)
    assert [m["metadata-key"] for m in page] == all_keys[20:30]
    back = get(http, page[0]["metadata-previous-page"])
    assert [m["metadata-key"] for m in back] == all_keys[10:20]
    assert get(http, esmond.archive_url, limit=10, offset=1000) == []
    assert http.get(esmond.archive_url, params={"limit": "ten"}).status_code == 400


def test_default_page_sizes() -> None:
    with requests.Session() as http:
        for flavour, expected in (("esmond", 1500), ("elmond", 1000)):
            archive = _start(flavour, sites=26)
            try:
                page = get(http, archive.archive_url)
                assert len(page) == expected
                assert page[0]["metadata-count-total"] == len(archive.mesh.series) > expected
            finally:
                archive.stop()


def test_event_type_and_summary_filters(esmond: EmbeddedArchive, http: requests.Session) -> None:
    owd = listing(http, esmond, **{"event-type": "histogram-owdelay"})
    assert len(owd) == 18 and {m["tool-name"] for m in owd} == {"pscheduler/powstream"}
    avg = listing(http, esmond, **{"summary-type": "average"})
    assert {m["pscheduler-test-type"] for m in avg} == {"throughput"}
    stats0 = listing(http, esmond, **{"summary-type": "statistics", "summary-window": "0"})
    assert {m["pscheduler-test-type"] for m in stats0} == {"latencybg", "rtt"}
    rtt300 = listing(http, esmond, **{"event-type": "histogram-rtt", "summary-window": "300"})
    assert rtt300 == []
    assert len(listing(http, esmond, **{"pscheduler-test-type": "throughput"})) == 18
    assert len(listing(http, esmond, **{"bw-parallel-streams": "1"})) == 18
    assert len(listing(http, esmond, **{"tool-name": "pscheduler/ping"})) == 18
    assert len(listing(http, esmond, **{"subject-type": "point-to-point"})) == 54
    assert listing(http, esmond, **{"no-such-parameter": "x"}) == []
    key = owd[3]["metadata-key"]
    assert [m["metadata-key"] for m in listing(http, esmond, **{"metadata-key": key})] == [key]


def test_source_by_ip_and_hostname(esmond: EmbeddedArchive, http: requests.Session) -> None:
    alpha = esmond.mesh.sites[0].latency
    by_ip = listing(http, esmond, source=alpha.ipv4)
    assert by_ip and {m["source"] for m in by_ip} == {alpha.ipv4}
    by_name = listing(http, esmond, source=alpha.name)
    assert {m["source"] for m in by_name} == {alpha.ipv4, alpha.ipv6}
    assert len(by_name) == 2 * (2 + 2 + 1)  # latencybg + rtt; DELTA is v4-only
    only6 = listing(http, esmond, source=alpha.name, **{"dns-match-rule": "only-v6"})
    assert {m["source"] for m in only6} == {alpha.ipv6}
    prefer4 = listing(http, esmond, source=alpha.name, **{"dns-match-rule": "prefer-v4"})
    assert {m["source"] for m in prefer4} == {alpha.ipv4}
    delta = esmond.mesh.sites[3].bandwidth.name
    prefer6 = listing(http, esmond, destination=delta, **{"dns-match-rule": "prefer-v6"})
    assert len(prefer6) == 3 and all("." in m["destination"] for m in prefer6)
    assert (
        http.get(
            esmond.archive_url, params={"source": delta, "dns-match-rule": "only-v6"}
        ).status_code
        == 400
    )
    assert http.get(esmond.archive_url, params={"source": "nowhere.example.org"}).status_code == 400
    assert (
        http.get(
            esmond.archive_url, params={"source": alpha.name, "dns-match-rule": "v6-only"}
        ).status_code
        == 400
    )
    agents = listing(http, esmond, **{"measurement-agent": alpha.name, "dns-match-rule": "only-v4"})
    assert agents and all(m["measurement-agent"] == alpha.ipv4 for m in agents)


def test_input_source_and_destination(esmond: EmbeddedArchive, http: requests.Session) -> None:
    name = "ps-bw.bravo-t1.example.org"
    assert {m["input-source"] for m in listing(http, esmond, **{"input-source": name})} == {name}
    dst = listing(http, esmond, **{"input-destination": name})
    assert len(dst) == 2 * 2 + 1 and {m["tool-name"] for m in dst} == {"pscheduler/iperf3"}


def test_metadata_time_filters(esmond: EmbeddedArchive, http: requests.Session) -> None:
    recent = listing(http, esmond, **{"event-type": "histogram-owdelay", "time-range": 600})
    mesh = esmond.mesh
    expected = [
        s.key
        for s in mesh.series
        if s.kind == "latencybg" and mesh.points(s.key, "histogram-owdelay", NOW - 600, NOW)
    ]
    assert sorted(m["metadata-key"] for m in recent) == sorted(expected)
    future = listing(http, esmond, **{"time-start": NOW + 10})
    assert future == []
    failing = listing(http, esmond, **{"event-type": "failures", "time-range": 3 * DAY})
    assert failing and all(m["pscheduler-test-type"] == "throughput" for m in failing)
    for md in failing:
        fails = data(http, esmond, md, "failures", **{"time-range": 3 * DAY})
        assert fails and all(isinstance(p["val"]["error"], str) for p in fails)
    assert http.get(esmond.archive_url, params={"time-start": 10, "time-end": 5}).status_code == 400


# -- URI and value shapes ------------------------------------------------------------------
def test_esmond_shapes(esmond: EmbeddedArchive, http: requests.Session) -> None:
    md = one(http, esmond, "ALPHA-T2", "BRAVO-T1", "latencybg")
    key = md["metadata-key"]
    assert re.fullmatch(r"[0-9a-f]{32}", key)
    assert md["uri"] == f"/esmond/perfsonar/archive/{key}/"
    assert md["url"] == f"{esmond.url}/esmond/perfsonar/archive/{key}/"
    assert md["time-duration"] == "86400.0" and md["sample-size"] == "600"
    assert md["sample-bucket-width"] == "0.001" and md["time-probe-interval"] == "0.1"
    assert md["pscheduler-reference-psconfig-created-by-user-agent"] == "psconfig-pscheduler-agent"
    events = {e["event-type"]: e for e in md["event-types"]}
    assert set(events) >= {
        "failures",
        "packet-count-sent",
        "histogram-owdelay",
        "histogram-ttl",
        "packet-duplicates",
        "packet-loss-rate",
        "packet-count-lost",
        "packet-reorders",
        "time-error-estimates",
    }
    assert events["failures"]["time-updated"] is None
    assert events["histogram-owdelay"]["base-uri"] == f"{md['uri']}histogram-owdelay/base"
    sums = {
        (s["summary-type"], s["summary-window"]) for s in events["histogram-owdelay"]["summaries"]
    }
    assert sums == {
        ("aggregation", "300"),
        ("aggregation", "3600"),
        ("aggregation", "86400"),
        ("statistics", "0"),
        ("statistics", "300"),
        ("statistics", "3600"),
        ("statistics", "86400"),
    }
    s0 = events["packet-loss-rate"]["summaries"][0]
    assert s0["uri"] == f"{md['uri']}packet-loss-rate/aggregations/300"
    assert get(http, esmond.url + md["uri"])["metadata-key"] == key
    windows = get(http, f"{esmond.url}{md['uri']}histogram-owdelay/statistics")
    assert [w["summary-window"] for w in windows] == ["0", "300", "3600", "86400"]
    tput = one(http, esmond, "ALPHA-T2", "BRAVO-T1", "throughput")
    assert tput["bw-parallel-streams"] == "1" and tput["ip-transport-protocol"] == "tcp"
    avg = next(e for e in tput["event-types"] if e["event-type"] == "throughput")["summaries"]
    assert avg == [
        {
            "summary-type": "average",
            "uri": f"{tput['uri']}throughput/averages/86400",
            "time-updated": avg[0]["time-updated"],
            "summary-window": "86400",
        }
    ]


def test_elmond_shapes(elmond: EmbeddedArchive, http: requests.Session) -> None:
    md = one(http, elmond, "ALPHA-T2", "BRAVO-T1", "rtt")
    key = md["metadata-key"]
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    assert md["uri"] == f"/esmond/perfsonar/archive/{key}"
    assert md["url"] == f"https://127.0.0.1:{elmond.port}/esmond/perfsonar/archive/{key}"
    assert md["sample-size"] == 10
    events = {e["event-type"]: e for e in md["event-types"]}
    assert events["histogram-rtt"]["base-uri"] == f"{md['uri']}/histogram-rtt/base/0"
    stats = events["histogram-rtt"]["summaries"]
    assert {s["summary-window"] for s in stats} == {0, 300, 3600, 86400}
    assert all(
        s["event-type"] == "histogram-rtt" and s["summary-type"] == "statistics" for s in stats
    )
    assert get(http, elmond.url + md["uri"])["metadata-key"] == key
    get(http, elmond.url + md["uri"] + "/histogram-rtt/base", status=404)
    get(http, elmond.url + md["uri"] + "/histogram-rtt/statistics", status=404)
    points = get(http, elmond.url + base_uri(md, "histogram-rtt"), **{"time-range": 3600})
    assert points and all(isinstance(p["val"], dict) for p in points)


def test_elmond_limits_and_windows(elmond: EmbeddedArchive, http: requests.Session) -> None:
    assert (
        "limit parameter cannot exceed"
        in get(http, elmond.archive_url, status=400, limit=10001)["error"]
    )
    md = one(http, elmond, "ALPHA-T2", "CHARLIE-T2", "latencybg")
    uri = elmond.url + md["uri"]
    get(http, uri + "/histogram-owdelay/base/0", status=400, limit=20000)
    get(http, uri + "/histogram-owdelay/aggregations/3600", status=400)
    get(http, uri + "/packet-loss-rate/aggregations/600", status=400)
    hourly = get(http, uri + "/packet-loss-rate/aggregations/3600", **{"time-range": 7200})
    assert hourly and all(0.0 <= p["val"] <= 1.0 and p["ts"] % 3600 == 0 for p in hourly)
    oldest = get(http, uri + "/packet-count-sent/base/0")
    assert len(oldest) == 1000
    retention = elmond.mesh.config.retention_days * DAY
    assert NOW - retention <= oldest[0]["ts"] < NOW - retention + 600


def test_errors_are_json(esmond: EmbeddedArchive, http: requests.Session) -> None:
    assert "detail" in get(
        http, esmond.archive_url + "0123456789abcdef0123456789abcdef/", status=404
    )
    get(http, esmond.url + "/nothing/here", status=404)
    md = one(http, esmond, "BRAVO-T1", "ALPHA-T2", "throughput")
    get(http, f"{esmond.url}{md['uri']}no-such-event/base", status=400)
    get(http, f"{esmond.url}{md['uri']}throughput/weird/86400", status=400)
    get(http, f"{esmond.url}{md['uri']}throughput/base", status=400, **{"time-start": "yesterday"})
    assert http.post(esmond.archive_url, json={}).status_code == 405


# -- data ---------------------------------------------------------------------------------
def test_data_time_filters_and_limit(esmond: EmbeddedArchive, http: requests.Session) -> None:
    md = one(http, esmond, "CHARLIE-T2", "ALPHA-T2", "latencybg")
    pts = data(http, esmond, md, "packet-count-sent", **{"time-start": NOW - 3600, "time-end": NOW})
    ts = [p["ts"] for p in pts]
    assert ts == sorted(ts) and len(ts) <= 60 and all(NOW - 3600 <= t <= NOW for t in ts)
    exact = data(http, esmond, md, "packet-count-sent", time=ts[5])
    assert [p["ts"] for p in exact] == [ts[5]]
    inclusive = data(
        http, esmond, md, "packet-count-sent", **{"time-start": ts[2], "time-end": ts[4]}
    )
    assert [p["ts"] for p in inclusive] == ts[2:5]
    ranged = data(
        http, esmond, md, "packet-count-sent", **{"time-end": ts[10], "time-range": ts[10] - ts[3]}
    )
    assert [p["ts"] for p in ranged] == ts[3:11]
    limited = data(http, esmond, md, "packet-count-sent", limit=7, **{"time-start": ts[0]})
    assert [p["ts"] for p in limited] == ts[:7]
    paged = data(http, esmond, md, "packet-count-sent", limit=7, offset=7, **{"time-start": ts[0]})
    assert [p["ts"] for p in paged] == ts[7:14]
    future = data(
        http, esmond, md, "packet-count-sent", **{"time-start": NOW - 60, "time-end": NOW + DAY}
    )
    assert future and max(p["ts"] for p in future) <= NOW
    assert (
        len(data(http, esmond, md, "packet-count-sent", limit=None, **{"time-range": DAY})) == 1000
    )


def test_values_are_shaped_like_a_real_archive(
    esmond: EmbeddedArchive, http: requests.Session
) -> None:
    tp = one(http, esmond, "ALPHA-T2", "CHARLIE-T2", "throughput")
    window = {"time-range": 2 * DAY}
    assert all(isinstance(p["val"], float) for p in data(http, esmond, tp, "throughput", **window))
    assert all(
        isinstance(p["val"], int) for p in data(http, esmond, tp, "packet-retransmits", **window)
    )
    hrefs = data(http, esmond, tp, "pscheduler-run-href", **window)
    assert all(
        re.fullmatch(
            r"https://ps-bw\.[a-z0-9-]+\.example\.org/pscheduler/tasks/[0-9a-f-]{36}/runs/[0-9a-f-]{36}",
            p["val"]["href"],
        )
        for p in hrefs
    )
    sub = data(http, esmond, tp, "throughput-subintervals", **window)[0]["val"]
    assert len(sub) == 30 and {"start", "duration", "val"} <= set(sub[0])
    lat = one(http, esmond, "ALPHA-T2", "CHARLIE-T2", "latencybg")
    loss = data(http, esmond, lat, "packet-loss-rate", **window)
    assert all(isinstance(p["val"], float) and 0.0 <= p["val"] <= 1.0 for p in loss)
    ttl = data(http, esmond, lat, "histogram-ttl", **{"time-range": 600})
    assert all(len(p["val"]) == 1 for p in ttl)
    terr = data(http, esmond, lat, "time-error-estimates", **{"time-range": 600})
    assert all(isinstance(p["val"], float) for p in terr)


def test_same_seed_same_bytes_other_seed_differs(
    esmond: EmbeddedArchive, http: requests.Session
) -> None:
    twin, other = _start("esmond", seed=SEED), _start("esmond", seed=SEED + 1)
    try:
        for path in ("/esmond/perfsonar/archive/?limit=3", "/larkps/sites"):
            a = http.get(esmond.url + path).content
            assert a == http.get(twin.url + path).content.replace(
                str(twin.port).encode(), str(esmond.port).encode()
            )
        md = one(http, esmond, "ALPHA-T2", "BRAVO-T1", "latencybg")
        uri = base_uri(md, "histogram-owdelay")
        mine = http.get(esmond.url + uri, params={"time-range": 3600}).content
        assert mine == http.get(twin.url + uri, params={"time-range": 3600}).content
        md_other = one(http, other, "ALPHA-T2", "BRAVO-T1", "latencybg")
        theirs = http.get(
            other.url + base_uri(md_other, "histogram-owdelay"), params={"time-range": 3600}
        ).content
        assert md_other["metadata-key"] != md["metadata-key"] and theirs != mine
    finally:
        twin.stop()
        other.stop()


# -- the deliberate defects ---------------------------------------------------------------------
def test_ipv6_series_and_v4_only_site(esmond: EmbeddedArchive, http: requests.Session) -> None:
    everything = listing(http, esmond)
    v6 = [m for m in everything if ":" in m["source"]]
    assert len(v6) == 18 and all(
        ":" in m["destination"] and m["source"].startswith("2001:db8:") for m in v6
    )
    delta = {h.name for h in esmond.mesh.sites[3].hosts}
    assert not [m for m in v6 if {m["input-source"], m["input-destination"]} & delta]
    assert [m for m in everything if m["input-source"] in delta]


def test_fine_bucket_site_labels_are_ten_times_ms(
    esmond: EmbeddedArchive, http: requests.Session
) -> None:
    md = one(http, esmond, "ALPHA-T2", "CHARLIE-T2", "latencybg")
    assert md["sample-bucket-width"] == "0.0001"
    hists = data(http, esmond, md, "histogram-owdelay", **{"time-range": 3600})
    labels = np.array([float(k) for p in hists for k in p["val"]])
    rtt = get(
        http,
        esmond.url + "/larkps/truth",
        src_site="ALPHA-T2",
        dst_site="CHARLIE-T2",
        family="ipv4",
        metric="rtt",
        start=NOW - 3600,
        end=NOW,
    )
    owd_ms = np.median(labels) * 0.0001 * 1000
    assert owd_ms == pytest.approx(rtt["median"] / 2, rel=0.1)
    assert np.median(labels) == pytest.approx(10 * rtt["median"] / 2, rel=0.1)
    normal = one(http, esmond, "ALPHA-T2", "BRAVO-T1", "latencybg")
    assert normal["sample-bucket-width"] == "0.001"


def test_clock_error_host(esmond: EmbeddedArchive, http: requests.Session) -> None:
    to_clock = one(http, esmond, "ALPHA-T2", "BRAVO-T1", "latencybg")
    from_clock = one(http, esmond, "BRAVO-T1", "ALPHA-T2", "latencybg")
    hour = {"time-range": 3600}
    to_labels = [
        float(k)
        for p in data(http, esmond, to_clock, "histogram-owdelay", **hour)
        for k in p["val"]
    ]
    from_labels = [
        float(k)
        for p in data(http, esmond, from_clock, "histogram-owdelay", **hour)
        for k in p["val"]
    ]
    assert min(to_labels) < 0 < min(from_labels)
    assert min(from_labels) > 20
    big = [p["val"] for p in data(http, esmond, to_clock, "time-error-estimates", **hour)]
    clean = one(http, esmond, "ALPHA-T2", "CHARLIE-T2", "latencybg")
    small = [p["val"] for p in data(http, esmond, clean, "time-error-estimates", **hour)]
    assert min(big) > 10 * max(small) and min(big) > 20


def test_outage_leaves_a_gap(esmond: EmbeddedArchive, http: requests.Session) -> None:
    outages = esmond.mesh.outages(NOW - 2 * DAY, NOW)
    gap = next(o for o in outages if o.end < NOW - 7200)
    host = next(h for h in esmond.mesh.hosts if h.name == gap.host)
    role = "lat" if host.role == "latency" else "bw"
    kind = "latencybg" if role == "lat" else "throughput"
    other = "ALPHA-T2" if host.site != "ALPHA-T2" else "BRAVO-T1"
    md = one(http, esmond, other, host.site, kind)
    pts = data(
        http,
        esmond,
        md,
        "pscheduler-run-href",
        **{"time-start": gap.start - 7200, "time-end": gap.end + 7200},
    )
    assert pts and not [p for p in pts if gap.start <= p["ts"] < gap.end]
    assert [p for p in pts if p["ts"] < gap.start] and [p for p in pts if p["ts"] >= gap.end]


# -- ground truth --------------------------------------------------------------------------------
def _truth(
    http: requests.Session,
    archive: EmbeddedArchive,
    metric: str,
    src: str,
    dst: str,
    start: int,
    end: int,
) -> dict[str, Any]:
    return dict(
        get(
            http,
            archive.url + "/larkps/truth",
            src_site=src,
            dst_site=dst,
            family="ipv4",
            metric=metric,
            start=start,
            end=end,
        )
    )


@pytest.mark.parametrize("flavour", ["esmond", "elmond"])
def test_truth_matches_points_served(
    flavour: str, request: pytest.FixtureRequest, http: requests.Session
) -> None:
    archive: EmbeddedArchive = request.getfixturevalue(flavour)
    start, end = NOW - DAY, NOW - 3 * 3600
    window = {"time-start": start + 1, "time-end": end}
    tp = one(http, archive, "BRAVO-T1", "CHARLIE-T2", "throughput")
    vals = np.array([p["val"] for p in data(http, archive, tp, "throughput", **window)])
    truth = _truth(http, archive, "throughput", "BRAVO-T1", "CHARLIE-T2", start, end)
    assert truth["count"] == vals.size > 0
    assert truth["median"] == pytest.approx(np.median(vals))
    assert truth["p10"] == pytest.approx(np.percentile(vals, 10))
    assert truth["mean"] == pytest.approx(vals.mean())
    lat = one(http, archive, "BRAVO-T1", "CHARLIE-T2", "latencybg")
    hists = data(http, archive, lat, "histogram-owdelay", **window)
    width = float(lat["sample-bucket-width"])
    labels = np.array([float(k) for p in hists for k in p["val"]]) * width * 1000
    samples = np.repeat(labels, [c for p in hists for c in p["val"].values()])
    truth = _truth(http, archive, "owdelay", "BRAVO-T1", "CHARLIE-T2", start, end)
    assert truth["count"] == len(hists)
    assert truth["median"] == pytest.approx(np.median(samples))
    assert truth["p90"] == pytest.approx(np.percentile(samples, 90))
    assert truth["max"] == pytest.approx(samples.max())
    assert truth["latest_ts"] == hists[-1]["ts"]
    lost = sum(p["val"] for p in data(http, archive, lat, "packet-count-lost", **window))
    sent = sum(p["val"] for p in data(http, archive, lat, "packet-count-sent", **window))
    truth = _truth(http, archive, "loss", "BRAVO-T1", "CHARLIE-T2", start, end)
    assert (truth["packets_lost"], truth["packets_sent"]) == (lost, sent)
    assert truth["fraction"] == pytest.approx(lost / sent)


def test_truth_route_rejects_bad_parameters(
    esmond: EmbeddedArchive, http: requests.Session
) -> None:
    get(http, esmond.url + "/larkps/truth", status=400, src_site="ALPHA-T2")
    get(
        http,
        esmond.url + "/larkps/truth",
        status=400,
        src_site="ALPHA-T2",
        dst_site="X",
        family="ipv4",
        metric="rtt",
        start=0,
        end=1,
    )
    assert get(http, esmond.url + "/larkps/sites") == esmond.mesh.site_map()


def test_summaries_agree_with_base_data(esmond: EmbeddedArchive, http: requests.Session) -> None:
    day_start = (NOW - DAY) // DAY * DAY
    tp = one(http, esmond, "CHARLIE-T2", "BRAVO-T1", "throughput")
    daily = get(http, f"{esmond.url}{tp['uri']}throughput/averages/86400", time=day_start)
    base = data(
        http, esmond, tp, "throughput", **{"time-start": day_start, "time-end": day_start + DAY - 1}
    )
    assert daily == [{"ts": day_start, "val": pytest.approx(np.mean([p["val"] for p in base]))}]
    lat = one(http, esmond, "CHARLIE-T2", "BRAVO-T1", "latencybg")
    hour = NOW // 3600 * 3600 - 3600
    window = {"time-start": hour, "time-end": hour + 3599}
    agg = get(http, f"{esmond.url}{lat['uri']}packet-loss-rate/aggregations/3600", time=hour)
    lost = sum(p["val"] for p in data(http, esmond, lat, "packet-count-lost", **window))
    sent = sum(p["val"] for p in data(http, esmond, lat, "packet-count-sent", **window))
    assert agg == [{"ts": hour, "val": pytest.approx(lost / sent)}]
    merged = get(http, f"{esmond.url}{lat['uri']}histogram-owdelay/aggregations/3600", time=hour)[
        0
    ]["val"]
    total: dict[str, int] = {}
    for p in data(http, esmond, lat, "histogram-owdelay", **window):
        for k, v in p["val"].items():
            total[k] = total.get(k, 0) + v
    assert merged == total
    stats = get(http, f"{esmond.url}{lat['uri']}histogram-owdelay/statistics/3600", time=hour)[0][
        "val"
    ]
    samples = np.repeat([float(k) for k in total], list(total.values()))
    assert stats["median"] == pytest.approx(np.percentile(samples, 50, method="weibull"))
    assert stats["mean"] == pytest.approx(samples.mean())
    assert stats["variance"] == pytest.approx(samples.var())
    assert set(stats) == {
        "minimum",
        "maximum",
        "mean",
        "median",
        "mode",
        "percentile-25",
        "percentile-75",
        "percentile-95",
        "variance",
        "standard-deviation",
    }


# -- scale, lifecycle, entry point --------------------------------------------------------------
def test_hundred_site_mesh_serves_one_series(http: requests.Session) -> None:
    archive = _start("esmond", sites=100)
    try:
        site = archive.mesh.sites[42]
        found = listing(
            http,
            archive,
            source=site.latency.name,
            **{"event-type": "histogram-owdelay", "dns-match-rule": "only-v4"},
        )
        assert len(found) == 99
        points = data(http, archive, found[0], "histogram-owdelay", **{"time-range": DAY})
        assert len(points) > 1000
    finally:
        archive.stop()


def test_stop_closes_the_socket() -> None:
    archive = _start("esmond")
    port = archive.port
    with requests.Session() as http:
        assert http.get(archive.url + "/larkps/sites").status_code == 200
        assert archive.requests_served == 1
        archive.stop()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_module_entry_point_runs_and_stops() -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "larkps.embedded",
            "--sites",
            "3",
            "--seed",
            "2",
            "--flavour",
            "elmond",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        assert set(requests.get(url + "/larkps/sites", timeout=10).json()) == {
            "ALPHA-T2",
            "BRAVO-T1",
            "CHARLIE-T2",
        }
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
