"""Pure statistics: series and points (or rollups) in, typed per-path results out.

No I/O and no clock: the window end (``now``) is an argument. pandas and numpy stay
inside this package. A window ending at ``now`` of length ``w`` holds points with
``now - w < ts <= now``.
"""

from __future__ import annotations

from larkps.stats.aggregate.assemble import Figure, LossFigure, PathFigures, Span, assemble
from larkps.stats.aggregate.columnar import GroupStats, grouped_stats
from larkps.stats.aggregate.paths import path_key, path_stats
from larkps.stats.aggregate.quality import QualityPolicy
from larkps.stats.aggregate.summaries import histogram_summary, loss_summary, scalar_summary
from larkps.stats.aggregate.weighted import (
    QUANTILES,
    describe,
    merge_weighted,
    weighted_percentiles,
)

__all__ = [
    "QUANTILES",
    "Figure",
    "GroupStats",
    "LossFigure",
    "PathFigures",
    "QualityPolicy",
    "Span",
    "assemble",
    "describe",
    "grouped_stats",
    "histogram_summary",
    "loss_summary",
    "merge_weighted",
    "path_key",
    "path_stats",
    "scalar_summary",
    "weighted_percentiles",
]
