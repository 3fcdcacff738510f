"""Delay histograms packed into bytes: one form for parsers, model, store and statistics.

A histogram of n buckets is n little-endian float64 bucket values (ms, ascending)
followed by n uint32 counts. It is a plain ``bytes``: no Python object per bucket,
nothing for the garbage collector to trace, and exactly the blob the state store
keeps, so storing and loading a histogram copies bytes and converts nothing (time and
memory against tuples of (value, count) pairs: docs/benchmarks.md).
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Iterable, Sequence

from larkps.model import Histogram

BUCKET_BYTES = 12  # a float64 value and a uint32 count
MAX_COUNT = 2**32 - 1
EMPTY = Histogram(b"")
_UINT32 = next(code for code in "IL" if array(code).itemsize == 4)


def pack_histogram(values: Sequence[float], counts: Sequence[int]) -> Histogram:
    """Pack columns already in bucket order; counts above uint32 are clipped."""
    try:  # an array packs a column in one call
        packed_values, packed_counts = array("d", values), array(_UINT32, counts)
    except OverflowError:
        clipped = [min(max(c, 0), MAX_COUNT) for c in counts]
        return Histogram(struct.pack(f"<{len(values)}d{len(values)}I", *values, *clipped))
    if sys.byteorder != "little":
        packed_values.byteswap()
        packed_counts.byteswap()
    return Histogram(packed_values.tobytes() + packed_counts.tobytes())


def histogram_of(buckets: Iterable[tuple[float, int]]) -> Histogram:
    """Pack (value ms, count) pairs in any order; buckets with counts <= 0 are dropped."""
    kept = sorted((float(value), int(count)) for value, count in buckets if count > 0)
    return pack_histogram([v for v, _ in kept], [c for _, c in kept])


def bucket_count(histogram: Histogram) -> int:
    return len(histogram) // BUCKET_BYTES


def histogram_pairs(histogram: Histogram) -> tuple[tuple[float, int], ...]:
    """The (value ms, count) pairs, in bucket order."""
    n = bucket_count(histogram)
    numbers = struct.unpack(f"<{n}d{n}I", histogram)
    return tuple(zip(numbers[:n], numbers[n:], strict=True))
