"""Packed histograms (larkps.histogram) and the batched writes of the ingest store."""

from __future__ import annotations

import sqlite3
import struct
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from larkps.histogram import bucket_count, histogram_of, histogram_pairs
from larkps.model import Point
from larkps.stats.aggregate.summaries import histogram_arrays, unpacked
from larkps.store.db import Store
from larkps.store.points import Commit, IngestStore

bucket = st.tuples(
    st.floats(-1e5, 1e5, allow_nan=False).map(lambda v: round(v, 3)), st.integers(1, 2**32 - 1)
)
histograms = st.lists(st.lists(bucket, max_size=12).map(histogram_of), max_size=20)


@given(histograms)
def test_unpacking_many_histograms_at_once_equals_unpacking_each(packed: list[bytes]) -> None:
    values, counts, sizes = unpacked(packed)  # type: ignore[arg-type]
    pairs = [pair for one in packed for pair in histogram_pairs(one)]  # type: ignore[arg-type]
    assert values.tolist() == [v for v, _ in pairs]
    assert counts.tolist() == [c for _, c in pairs]
    assert sizes.tolist() == [bucket_count(one) for one in packed]  # type: ignore[arg-type]


@given(st.lists(bucket, max_size=12))
def test_a_packed_histogram_is_sorted_and_reads_back_as_arrays(
    buckets: list[tuple[float, int]],
) -> None:
    packed = histogram_of(buckets)
    assert len(packed) == 12 * len(buckets)
    assert list(histogram_pairs(packed)) == sorted(buckets)
    values, counts = histogram_arrays(packed)
    assert values.tolist() == [v for v, _ in sorted(buckets)]
    assert counts.tolist() == [c for _, c in sorted(buckets)]


def test_a_torn_blob_is_cut_to_whole_buckets_and_spares_the_others() -> None:
    whole = histogram_of([(1.0, 2), (3.0, 4)])
    torn = histogram_of([(5.0, 6), (7.0, 8)])[:-5]  # 19 bytes: one whole bucket's value
    values, counts, sizes = unpacked([whole, torn])  # type: ignore[list-item]
    assert sizes.tolist() == [2, 1]
    assert values.tolist()[:2] == [1.0, 3.0] and counts.tolist()[:2] == [2, 4]
    assert values.size == counts.size == 3


def test_non_positive_counts_are_dropped_when_packing() -> None:
    assert histogram_pairs(histogram_of([(3.0, 0), (1.0, -4), (2.0, 5)])) == ((2.0, 5),)


def rows(db: sqlite3.Connection) -> list[tuple[object, ...]]:
    return db.execute("SELECT series_id, ts, value, histogram, note FROM points").fetchall()


def test_rows_beyond_one_statement_are_all_stored_in_order(tmp_path: Path) -> None:
    """Chunks of 8 rows at most: 1 + 2 + ... statements; every row lands once and the
    first of a repeated (series, ts) wins, as with one statement per row."""
    hist = histogram_of([(1.5, 2)])
    commits = [
        Commit(1, [Point(ts, None, hist) for ts in range(37)]),
        Commit(2, [Point(ts, float(ts)) for ts in range(0, 50, 2)]),
        Commit(2, [Point(ts, -1.0) for ts in range(40, 60, 2)]),  # 40..48 already given
        Commit(3, [Point(5, 1.0), Point(6, None, hist), Point(7, None, None, "x")]),
    ]
    with Store.in_directory(tmp_path) as store:
        ingest = IngestStore(store)
        ingest.chunk_rows = 8
        ingest.commit(commits)
        got = sorted(rows(store.connection))
    blob = struct.pack("<1d1I", 1.5, 2)
    expected = [(1, ts, None, blob, None) for ts in range(37)]
    expected += [(2, ts, float(ts), None, None) for ts in range(0, 50, 2)]
    expected += [(2, ts, -1.0, None, None) for ts in range(50, 60, 2)]
    expected += [(3, 5, 1.0, None, None), (3, 6, None, blob, None), (3, 7, None, None, "x")]
    assert got == sorted(expected)


mark = st.one_of(st.none(), st.integers(0, 1000))
commit_marks = st.lists(st.tuples(st.integers(1, 3), mark, mark), max_size=30)


@settings(max_examples=60, deadline=None)
@given(
    start=st.lists(st.tuples(mark, mark), min_size=3, max_size=3), batches=st.lists(commit_marks)
)
def test_marks_of_a_batch_are_those_of_applying_each_commit_in_order(
    tmp_path_factory: object,
    start: list[tuple[int | None, int | None]],
    batches: list[list[tuple[int, int | None, int | None]]],
) -> None:
    expected = {i + 1: marks for i, marks in enumerate(start)}
    for batch in batches:
        for series_id, hwm, covered_from in batch:
            old_hwm, old_from = expected[series_id]
            if hwm is not None:
                old_hwm = hwm if old_hwm is None else max(old_hwm, hwm)
            expected[series_id] = (old_hwm, old_from if covered_from is None else covered_from)
    path = Path(tmp_path_factory.mktemp("marks"))  # type: ignore[attr-defined]
    with Store.in_directory(path) as store:
        ingest = IngestStore(store)
        ingest.chunk_rows = 2
        store.connection.executemany(
            "INSERT INTO series (id, archive, metadata_key, event_type, source_host, source_ip, "
            "destination_host, destination_ip, family, metric, tool, data_uri, seen_at, hwm, "
            "covered_from) VALUES (?, 'a', ?, 'e', 'h', 'i', 'h', 'i', 'ipv4', 'rtt', 't', "
            "'/u', 0, ?, ?)",
            [(i + 1, str(i + 1), h, c) for i, (h, c) in enumerate(start)],
        )
        for batch in batches:
            ingest.commit([Commit(s, [], hwm=h, covered_from=c) for s, h, c in batch])
        got = store.connection.execute("SELECT id, hwm, covered_from FROM series ORDER BY id")
        assert {i: (h, c) for i, h, c in got} == expected
