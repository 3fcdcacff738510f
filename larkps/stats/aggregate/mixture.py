"""Percentiles of several summarised series together, from their percentiles alone.

Each series is taken as a piecewise-linear distribution through its known
(level, value) knots: (0, min), its percentiles, (1, max). The series are mixed
with their test counts as weights and the mixture's CDF inverted. Exact for the
knots' own model; an approximation of the pooled samples' percentiles.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from larkps.model import SeriesSummary
from larkps.stats.aggregate.weighted import QUANTILES, FloatArray


def mixture_quantiles(parts: Sequence[SeriesSummary]) -> dict[float, float]:
    """Percentiles (at QUANTILES) of the count-weighted mixture of the series.

    The mixture's CDF is evaluated at every knot (and just below it, for the jump
    at a series' minimum) and inverted: the smallest value reaching each level.
    """
    knots = [_knots(p) for p in parts]
    weights = np.asarray([p.count for p in parts], dtype=np.float64)
    weights /= weights.sum()
    grid = np.unique(np.concatenate([values for values, _ in knots]))
    at = np.zeros(grid.size)
    below = np.zeros(grid.size)
    for weight, (xs, ys) in zip(weights, knots, strict=True):
        cdf = weight * np.interp(grid, xs, ys, left=0.0, right=1.0)
        at += cdf
        below += np.where(grid > xs[0], cdf, 0.0)
    levels = np.maximum.accumulate(np.column_stack([below, at]).ravel())
    unique, first = np.unique(levels, return_index=True)  # the smallest value per level
    values = np.repeat(grid, 2)[first]
    return {q: float(np.interp(q, unique, values)) for q in QUANTILES}


def _knots(summary: SeriesSummary) -> tuple[FloatArray, FloatArray]:
    """(values, levels) of one series' distribution; equal values keep the highest level."""
    pairs = sorted(summary.percentiles)
    low = summary.minimum if summary.minimum is not None else pairs[0][1]
    high = summary.maximum if summary.maximum is not None else pairs[-1][1]
    values = np.maximum.accumulate(np.asarray([low, *(v for _, v in pairs), high]))
    levels = np.asarray([0.0, *(q for q, _ in pairs), 1.0])
    last = np.append(values[1:] != values[:-1], True)
    return values[last], levels[last]
