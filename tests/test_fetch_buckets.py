"""A page of histograms read at once (larkps.sources.esmond.buckets) gives what the rules give.

The expected histogram of each point is worked out here, bucket by bucket, from the
documented rules (numeric labels, positive counts, labels scaled by the bucket width,
sorted; no usable bucket is a bad histogram; a bucket out of the metric's range makes
the value implausible), not by the code under test. Pages mix ordinary histograms,
which the array path takes, with every kind of oddity, which it must hand back.
"""

from __future__ import annotations

import math
import struct
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from larkps.config.sites import SiteMap
from larkps.histogram import MAX_COUNT, histogram_pairs
from larkps.sources import parse_metadata, parse_page
from larkps.sources.esmond.buckets import pack_page

LATEST = 1_700_000_000
OWDELAY_RANGE = (-1e5, 1e5)


def series_of(width: float | None):  # type: ignore[no-untyped-def]
    obj = {
        "metadata-key": "k1",
        "source": "198.18.0.1",
        "destination": "198.18.0.2",
        "event-types": [{"event-type": "histogram-owdelay", "base-uri": "/x/base"}],
        "sample-bucket-width": width,
    }
    (series,) = parse_metadata(obj, "t", "http://x/", SiteMap())
    return series


def expected(value: object, scale: float) -> tuple[tuple[float, int], ...] | str:
    """The (bucket ms, count) pairs the rules give, or the reason the value is refused."""
    if not isinstance(value, dict) or not value:
        return "bad histogram"
    buckets = []
    for label, count in value.items():
        try:
            bucket, weight = float(label), float(count)
        except (TypeError, ValueError):
            continue
        if math.isfinite(bucket) and math.isfinite(weight) and weight >= 1:
            bucket = bucket if scale == 1.0 else round(bucket * scale, 9)
            buckets.append((bucket, min(int(weight), MAX_COUNT)))
    if not buckets:
        return "bad histogram"
    buckets.sort()
    low, high = OWDELAY_RANGE
    if buckets[0][0] < low or buckets[-1][0] > high:
        return "implausible value"
    return tuple(buckets)


ordinary_label = st.integers(-3000, 3000).map(lambda n: f"{n / 100:.2f}")
odd_label = st.sampled_from(["abc", "nan", "inf", "-inf", "1e6", "-1e6", "1_000", "", "1.0", "1"])
ordinary_count = st.integers(1, 500)
odd_count = st.one_of(
    st.sampled_from([0, -4, MAX_COUNT, MAX_COUNT + 1, 2**70, "7", "x", None, 3.0, 2.5])
)


@st.composite
def histogram(draw: Any) -> object:
    kind = draw(st.sampled_from(["ordinary"] * 6 + ["odd", "unsorted", "empty", "not a dict"]))
    if kind == "empty":
        return {}
    if kind == "not a dict":
        return draw(st.sampled_from(["12", [1, 2], 5, None]))
    labels = draw(st.lists(ordinary_label, min_size=1, max_size=12, unique=True))
    labels.sort(key=float)
    if kind == "unsorted":
        labels.reverse()
    value = {label: draw(ordinary_count) for label in labels}
    if kind == "odd":
        value[draw(st.one_of(odd_label, ordinary_label))] = draw(
            st.one_of(odd_count, ordinary_count)
        )
    return value


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(histogram(), min_size=1, max_size=30),
    width=st.sampled_from([None, 0.001, 0.0001, 0.01]),
)
def test_a_page_of_histograms_gives_each_histogram_as_the_rules_do(
    values: list[object], width: float | None
) -> None:
    scale = 1.0 if width in (None, 0.001) else width * 1000.0  # type: ignore[operator]
    page = [{"ts": LATEST - 60 * (len(values) - i), "val": v} for i, v in enumerate(values)]
    parsed = parse_page(page, series_of(width), "t", LATEST)
    want = [expected(v, scale) for v in values]
    kept = [w for w in want if not isinstance(w, str)]
    assert [histogram_pairs(p.histogram) for p in parsed.points] == kept  # type: ignore[arg-type]
    assert [p.ts for p in parsed.points] == [
        p["ts"] for p, w in zip(page, want, strict=True) if not isinstance(w, str)
    ]
    reasons = [w for w in want if isinstance(w, str)]
    assert parsed.rejected == {r: reasons.count(r) for r in set(reasons)}


def test_ordinary_histograms_take_the_array_path_and_pack_exactly() -> None:
    page = [{"0.25": 3, "1.5": 1}, {"-2.0": 7, "-1.0": 2, "40.0": 1}]
    packed = pack_page(page, *OWDELAY_RANGE)
    assert packed == [
        struct.pack("<2d2I", 0.25, 1.5, 3, 1),
        struct.pack("<3d3I", -2.0, -1.0, 40.0, 7, 2, 1),
    ]


def test_the_array_path_hands_back_what_it_cannot_vouch_for() -> None:
    page = [
        {"0.25": 3, "1.5": 1},  # ordinary
        {"1.5": 1, "0.25": 3},  # out of order
        {"0.25": 0, "1.5": 1},  # a zero count
        {"0.25": MAX_COUNT + 1},  # a count beyond uint32
        {"nan": 1},  # a label that is not finite
        {"-200000": 1},  # out of range
    ]
    packed = pack_page(page, *OWDELAY_RANGE)
    assert packed[0] == struct.pack("<2d2I", 0.25, 1.5, 3, 1)
    assert packed[1:] == [None] * 5
    # a value that is not a histogram at all sends the whole page the careful way
    assert pack_page([*page[:1], "12"], *OWDELAY_RANGE) == [None, None]
    assert pack_page([*page[:1], {}], *OWDELAY_RANGE) == [None, None]
    assert pack_page([{"x": 1}, page[0]], *OWDELAY_RANGE) == [None, None]
