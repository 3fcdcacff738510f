"""Pure parts of the search sources: field access, units, site names, paging loops."""

from __future__ import annotations

from typing import Any

import pytest

from larkps.errors import ArchiveFormatError, ArchiveUnavailable
from larkps.model import Family
from larkps.sources import ResponseTooLarge
from larkps.sources.search import query
from larkps.sources.search.records import (
    dig,
    document_site,
    epoch_seconds,
    family_of,
    is_placeholder,
    normal_ip,
    scale_factor,
)
from larkps.sources.search.specs import Scale, wanted


def test_dig_follows_nested_objects_and_flattened_keys():
    document = {"result": {"latency": {"median": 3}}, "meta.ip_version": 6}
    assert dig(document, "result.latency.median") == 3
    assert dig(document, "meta.ip_version") == 6
    assert dig(document, "result.nope.median") is None
    assert dig({"result": [1]}, "result.latency") is None


@pytest.mark.parametrize(
    ("value", "millis", "expected"),
    [
        ("2025-01-01T10:00:05Z", False, 1735725605),
        ("2025-01-01T10:00:05.900+00:00", False, 1735725605),
        ("2025-01-01T10:00:05", False, 1735725605),  # naive: UTC
        (1735725605123, True, 1735725605),
        ("1735725605123", True, 1735725605),
        (1735725605, False, 1735725605),
        ("yesterday", False, None),
        (-5, False, None),
        (True, False, None),
    ],
)
def test_epoch_seconds(value: object, millis: bool, expected: int | None):
    assert epoch_seconds(value, millis) == expected


def test_address_family_from_version_flag_or_address():
    assert family_of(6) is Family.IPV6
    assert family_of("4") is Family.IPV4
    assert family_of(True) is Family.IPV6
    assert family_of(None, "not-an-ip", "2001:db8::1") is Family.IPV6
    assert family_of(None, "ps.example.org") is None
    assert normal_ip("2001:DB8:0::1") == "2001:db8::1"
    assert normal_ip("[2001:db8::1]") == "2001:db8::1"


def test_delay_scaling_follows_the_bucket_width():
    assert scale_factor(Scale.BUCKET_LABEL, None) == 1.0
    assert scale_factor(Scale.BUCKET_LABEL, 0.001) == 1.0
    assert scale_factor(Scale.BUCKET_LABEL, 0.0001) == pytest.approx(0.1)
    assert scale_factor(Scale.SECONDS_TO_MS, None) == 1000.0
    assert scale_factor(Scale.NONE, 0.0001) == 1.0


@pytest.mark.parametrize(
    ("candidates", "site", "rejected"),
    [
        (("Site-A", "SITE-X"), "SITE-A", False),
        (("UNKNOWN", "site-b"), "SITE-B", False),
        (("", None, "unknown"), None, False),
        (("Univ of Here", None), "UNIV_OF_HERE", False),
        (('A"; Requirements = true', "SITE-C"), "SITE-C", True),
        (("%{[SRC][SITE]}",), None, True),
        ((42,), None, False),
    ],
)
def test_document_site_names(candidates: tuple[object, ...], site: str | None, rejected: bool):
    assert document_site(*candidates) == (site, rejected)


def test_placeholders_are_recognised():
    assert is_placeholder("%{[DESTINATION][IPV4]}")
    assert not is_placeholder("192.0.2.1")
    assert not is_placeholder(None)


def test_requested_event_types_map_to_what_an_index_offers():
    latency = ("histogram-owdelay", "owdelay-median", "packet-count-lost", "failures")
    assert wanted(["histogram-owdelay", "failures"], latency) == ("histogram-owdelay", "failures")
    owd = ("owdelay-median", "owdelay-mean")
    assert wanted(["histogram-owdelay"], owd) == owd
    assert wanted(["owdelay-median"], latency) == ("owdelay-median",)
    assert wanted(["packet-count-lost"], ("packet-loss-rate",)) == ("packet-loss-rate",)
    assert wanted(["throughput"], owd) == ()


def test_round_trip_loss_is_fetched_for_rtt_indices_by_default():
    """pscheduler_rtt has no one-way counts: its round-trip ones stand in for loss."""
    from larkps.config.queries import DEFAULT_EVENT_TYPES
    from larkps.sources.search.specs import OPENSEARCH_INDICES

    rtt = next(i for i in OPENSEARCH_INDICES if i.name == "rtt")
    chosen = wanted(DEFAULT_EVENT_TYPES, (f.event_type for f in rtt.fields))
    assert "packet-count-lost-bidir" in chosen
    assert "packet-count-sent" in chosen


def answer(hits: list[dict[str, Any]]) -> dict[str, Any]:
    return {"hits": {"hits": hits}}


def test_search_pages_shrink_a_page_that_is_too_large():
    sent: list[dict[str, Any]] = []

    def post(body: dict[str, Any]) -> Any:
        sent.append(body)
        if body["size"] > 10:
            raise ResponseTooLarge("a", "too large")
        return answer([{"sort": [1]}] * 3)

    pages = list(query.search_pages(post, {"size": 100, "query": {}}, "a"))
    assert [b["size"] for b in sent] == [100, 10]
    assert len(pages) == 1  # 3 < 10: the last page


def test_search_pages_stop_after_a_short_page_and_need_sort_values():
    pages = iter([answer([{"sort": [1, "x"]}, {"sort": [2, "y"]}]), answer([])])
    sent: list[dict[str, Any]] = []

    def post(body: dict[str, Any]) -> Any:
        sent.append(body)
        return next(pages)

    assert len(list(query.search_pages(post, {"size": 2}, "a"))) == 1
    assert sent[1]["search_after"] == [2, "y"]
    with pytest.raises(ArchiveFormatError, match="without sort"):
        list(query.search_pages(lambda body: answer([{}, {}]), {"size": 2}, "a"))


def test_composite_pages_follow_after_key_until_a_short_page():
    body = query.composite_body([], [query.terms_source("k", "k")], 2, {})
    answers = iter(
        [
            {
                "aggregations": {
                    "pairs": {"buckets": [{"key": 1}, {"key": 2}], "after_key": {"k": 2}}
                }
            },
            {"aggregations": {"pairs": {"buckets": [{"key": 3}], "after_key": {"k": 3}}}},
        ]
    )
    sent: list[dict[str, Any]] = []

    def post(request: dict[str, Any]) -> Any:
        sent.append(request)
        return next(answers)

    pages = list(query.composite_pages(post, body, "a"))
    assert [len(p) for p in pages] == [2, 1]
    assert sent[1]["aggs"]["pairs"]["composite"]["after"] == {"k": 2}
    assert "after" not in body["aggs"]["pairs"]["composite"]  # the template is untouched


def test_timed_out_searches_are_errors():
    with pytest.raises(ArchiveUnavailable, match="timed out"):
        list(
            query.search_pages(
                lambda body: {"timed_out": True, "hits": {"hits": []}}, {"size": 1}, "a"
            )
        )


def test_paging_that_does_not_advance_is_refused():
    """A server repeating itself must not keep larkps paging (MAX_SEARCH_PAGES times)."""
    full = answer([{"sort": [1]}, {"sort": [1]}])
    with pytest.raises(ArchiveFormatError, match="does not advance"):
        list(query.search_pages(lambda body: full, {"size": 2}, "a"))
    body = query.composite_body([], [query.terms_source("k", "k")], 1, {})
    same = {"aggregations": {"pairs": {"buckets": [{"key": 1}], "after_key": {"k": 1}}}}
    with pytest.raises(ArchiveFormatError, match="repeats its after_key"):
        list(query.composite_pages(lambda request: same, body, "a"))
