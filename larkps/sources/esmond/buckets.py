"""Histogram buckets of a whole page at once: labels and counts as two numpy arrays.

A page of an esmond delay-histogram series holds tens of histograms of tens of
buckets. Read one at a time, each cost ~8.5 us, nearly all of it Python work per
bucket. Here the page's labels and counts become two arrays in two C-level passes,
every check is an array operation, and each histogram is two byte slices (~3.8 us).
A histogram this cannot vouch for (an odd label or count, buckets out of order or
out of range) comes back ``None``, and the caller reads it the careful way, so both
ways give the same result.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from itertools import chain
from typing import Any, cast

import numpy as np

from larkps.histogram import MAX_COUNT
from larkps.model import Histogram

LABEL_CACHE = 1 << 15  # bucket labels whose value is kept, per scale
SCALES = 8  # label scales (bucket widths) with a cache
_LABELS: dict[float, dict[Any, float]] = {}  # scale -> label -> bucket value in ms


def label_values(labels: Collection[Any], scale: float = 1.0) -> list[float]:
    """The bucket value in ms of every label: ``float(label)``, times ``scale`` and
    rounded to 9 decimals unless the scale is 1. Labels repeat across points, so the
    values are cached (``float(str)`` was half the cost of a histogram). Raises
    ValueError or TypeError for a label that is not a number."""
    cache = _cache(scale)
    try:
        return list(map(cache.__getitem__, labels))
    except KeyError:
        pass
    values = list(map(float, labels))
    if scale != 1.0:
        values = [round(value * scale, 9) for value in values]
    if len(cache) > LABEL_CACHE:
        cache.clear()
    cache.update(zip(labels, values, strict=True))
    return values


def _cache(scale: float) -> dict[Any, float]:
    cache = _LABELS.get(scale)
    if cache is None:
        if len(_LABELS) >= SCALES:
            _LABELS.clear()
        cache = _LABELS.setdefault(scale, {})
    return cache


def pack_page(
    histograms: Sequence[object], low: float, high: float, scale: float = 1.0
) -> list[Histogram | None]:
    """Each ``{"<label ms>": count}`` packed, or None where the careful reading is
    needed: a label or count that is not a plain number, a count outside 1..2**32-1,
    labels not strictly ascending, or the lowest below ``low`` / highest above ``high``.
    Labels are scaled as :func:`label_values` scales them. Anything unreadable in
    the page sends the whole page the careful way."""
    try:
        return _packed(histograms, low, high, scale)
    except (TypeError, ValueError, OverflowError, KeyError):
        return [None] * len(histograms)


def _packed(
    histograms: Sequence[object], low: float, high: float, scale: float
) -> list[Histogram | None]:
    dicts = cast(Sequence[dict[Any, Any]], histograms)
    lengths = np.fromiter(map(len, dicts), np.intp, count=len(dicts))
    if not len(dicts) or lengths.min() == 0:
        return [None] * len(dicts)
    total = int(lengths.sum())
    counts = np.fromiter(chain.from_iterable(map(dict.values, dicts)), np.int64, count=total)
    labels = _label_array(dicts, total, scale)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    ascending = np.ones(total, bool)
    np.greater(labels[1:], labels[:-1], out=ascending[1:])
    ascending[starts] = True  # within a histogram, not across two
    usable = (counts > 0) & (counts <= MAX_COUNT) & np.isfinite(labels) & ascending
    good = np.logical_and.reduceat(usable, starts)
    good &= (labels[starts] >= low) & (labels[ends - 1] <= high)
    values = labels.astype("<f8", copy=False).tobytes()
    weights = counts.astype("<u4").tobytes()
    packed = [
        values[8 * a : 8 * b] + weights[4 * a : 4 * b] if ok else None
        for a, b, ok in zip(starts.tolist(), ends.tolist(), good.tolist(), strict=True)
    ]
    return cast(list[Histogram | None], packed)


def _label_array(dicts: Sequence[dict[Any, Any]], total: int, scale: float) -> np.ndarray[Any, Any]:
    """The value of every label of every histogram, in order."""
    try:
        return _cached_labels(dicts, total, scale)
    except KeyError:  # new labels: remember them and look again
        label_values({label for histogram in dicts for label in histogram}, scale)
        return _cached_labels(dicts, total, scale)  # a KeyError now (cleared): careful way


def _cached_labels(
    dicts: Sequence[dict[Any, Any]], total: int, scale: float
) -> np.ndarray[Any, Any]:
    found = map(_cache(scale).__getitem__, chain.from_iterable(dicts))
    return np.fromiter(found, np.float64, count=total)
