"""The fast paths of page parsing and point storage give what the plain rules give.

Expected values are worked out here from the documented rules (sorted buckets,
first point of a timestamp wins, rejected points counted by reason), not by the
code under test.
"""

from __future__ import annotations

import gc
import json
import sqlite3
import struct
from pathlib import Path

import pytest

from larkps.config.sites import SiteMap
from larkps.histogram import EMPTY, histogram_of, histogram_pairs, pack_histogram
from larkps.ingest.runner import GC_THRESHOLDS, fewer_collections
from larkps.model import Point
from larkps.sources import parse_histogram, parse_metadata, parse_page
from larkps.sources.http.client import loads
from larkps.store.db import Store
from larkps.store.points import Commit, IngestStore

LATEST = 1_700_000_000


def series_of(event_type: str, width: float | None = None):  # type: ignore[no-untyped-def]
    obj = {
        "metadata-key": "ab12",
        "source": "192.0.2.1",
        "destination": "192.0.2.2",
        "event-types": [{"event-type": event_type, "base-uri": f"/x/{event_type}/base"}],
        "sample-bucket-width": width,
    }
    (series,) = parse_metadata(obj, "t", "http://x/", SiteMap())
    return series


def pairs(value: object, width: float | None) -> tuple[tuple[float, int], ...]:
    return histogram_pairs(parse_histogram(value, width))


def test_histogram_labels_in_any_order_and_repeated_labels() -> None:
    assert pairs({"1.5": 2, "0.5": 1, "1.0": 4}, None) == ((0.5, 1), (1.0, 4), (1.5, 2))
    # "1" and "1.0" are one bucket value: both pairs stay, ordered by count, as sorted() does
    assert pairs({"1.0": 9, "1": 3, "0.5": 1}, None) == ((0.5, 1), (1.0, 3), (1.0, 9))
    # the same labels again (now cached) give the same floats
    assert pairs({"0.5": 7, "1.5": 1}, None) == ((0.5, 7), (1.5, 1))
    # a width of 0.0001 s: labels are tenths of a ms
    assert pairs({"12": 1, "3": 2}, 0.0001) == ((0.3, 2), (1.2, 1))


def test_out_of_order_and_duplicate_timestamps() -> None:
    page = [
        {"ts": LATEST - 60, "val": 0.25},
        {"ts": LATEST - 120, "val": 0.5},
        {"ts": LATEST - 60, "val": 0.75},  # a repeat: the first one wins
        {"ts": str(LATEST - 180), "val": "0.125"},  # numeric strings
        {"ts": float(LATEST), "val": 1},
        {"ts": True, "val": 0.0},
        {"ts": LATEST + 301, "val": 0.0},
        {"ts": LATEST * 1000, "val": 0.0},
        {"ts": LATEST - 240, "val": 1.5},
        {"ts": LATEST - 300, "val": float("inf")},
        "not a point",
    ]
    parsed = parse_page(page, series_of("packet-loss-rate"), "t", LATEST)
    assert [(p.ts, p.value) for p in parsed.points] == [
        (LATEST - 180, 0.125),
        (LATEST - 120, 0.5),
        (LATEST - 60, 0.25),
        (LATEST, 1.0),
    ]
    assert all(type(p.ts) is int and type(p.value) is float for p in parsed.points)
    assert parsed.max_ts == LATEST and parsed.raw_count == len(page)
    assert parsed.rejected == {
        "duplicate timestamp": 1,
        "bad timestamp": 1,
        "timestamp in the future": 1,
        "timestamp in milliseconds": 1,
        "implausible value": 1,
        "non-finite value": 1,
        "malformed point": 1,
    }


def test_histogram_pages_check_buckets_against_the_metric() -> None:
    page = [
        {"ts": LATEST - 60, "val": {"2.5": 3, "1.25": 1}},
        {"ts": LATEST - 30, "val": {}},
        {"ts": LATEST - 20, "val": {"-200000": 1}},
        {"ts": LATEST - 10, "val": {"x": 1}},
    ]
    parsed = parse_page(page, series_of("histogram-owdelay"), "t", LATEST)
    assert parsed.points == [Point(LATEST - 60, None, histogram_of([(1.25, 1), (2.5, 3)]))]
    assert parsed.rejected == {"bad histogram": 2, "implausible value": 1}


def test_histogram_encoding_is_little_endian_doubles_then_uint32_counts() -> None:
    blob = pack_histogram([-1.5, 0.25, 7.0], [1, 2**32 - 1, 2**40])
    assert blob == struct.pack("<3d3I", -1.5, 0.25, 7.0, 1, 2**32 - 1, 2**32 - 1)  # clipped
    two = histogram_of([(-1.5, 1), (0.25, 2**32 - 1)])
    assert histogram_pairs(two) == ((-1.5, 1), (0.25, 2**32 - 1))


def stored(db: sqlite3.Connection) -> list[tuple[object, ...]]:
    return db.execute("SELECT ts, value, histogram, note FROM points ORDER BY ts").fetchall()


def test_pages_of_one_kind_and_mixed_pages_store_the_same_rows(tmp_path: Path) -> None:
    hist = histogram_of([(1.0, 2)])
    blob = struct.pack("<1d1I", 1.0, 2)
    with Store.in_directory(tmp_path) as store:
        ingest = IngestStore(store)
        commits = [
            Commit(1, [Point(10, None, hist), Point(20, None, hist)]),
            Commit(1, [Point(30, 0.5), Point(40, 0.0)]),
            Commit(1, [Point(50, 1.0), Point(50, None, hist), Point(60, None, None, "x")]),
            Commit(1, [Point(70, None, hist), Point(70, 2.0)]),  # the first of a ts wins
            Commit(1, [Point(80, 3.0, hist), Point(90, None, EMPTY)]),
        ]
        fresh = ingest.commit(commits)
        assert [len(f) for f in fresh] == [2, 2, 3, 2, 2]
        assert stored(store.connection) == [
            (10, None, blob, None),
            (20, None, blob, None),
            (30, 0.5, None, None),
            (40, 0.0, None, None),
            (50, 1.0, None, None),
            (60, None, None, "x"),
            (70, None, blob, None),
            (80, 3.0, blob, None),
            (90, None, None, None),
        ]


def test_json_is_read_as_the_standard_library_reads_it() -> None:
    documents = [
        b'[{"ts": 1700000000, "val": {"-17.93": 55, "0.01": 1}}, {"ts": 1, "val": 0.0}]',
        b'[{"ts": 1, "val": NaN}, {"ts": 2, "val": -Infinity}]',  # not JSON; esmond may send it
        '[{"ts": 1, "val": "caf\u00e9"}]'.encode("utf-16"),
        b'\xef\xbb\xbf[{"ts": 1}]',
        b'["\\ud800"]',
        b'{"a": 1, "a": 2, "b": [1e400, -0.0, 18446744073709551615]}',
    ]
    for document in documents:
        got, want = loads(document), json.loads(document)
        assert repr(got) == repr(want), document
    for broken in (b"[1,]", b"", b"\xff[]", b'{"a": 1} x'):
        with pytest.raises(ValueError):
            loads(broken)


def test_a_cycle_raises_the_collector_thresholds_and_restores_them() -> None:
    before = gc.get_threshold()
    with fewer_collections():
        inside = gc.get_threshold()
        with fewer_collections():  # a second, concurrent cycle
            assert gc.get_threshold() == inside
        assert gc.get_threshold() == inside
    assert all(i >= max(b, g) for i, b, g in zip(inside, before, GC_THRESHOLDS, strict=True))
    assert gc.get_threshold() == before
