"""Rollups: hourly and running window partials per stream, and their state in the store.

The arithmetic (``partial``, ``streams``, ``window``) is pure; ``store`` persists a cycle's
partials in the state store and ``views`` reads them back as PathStats per window.
"""

from __future__ import annotations

from larkps.stats.rollups.partial import (
    EMPTY_PARTIAL,
    Partial,
    first_hour,
    from_blobs,
    full_first_hour,
    hour_of,
    merge,
    merge_all,
    subtract,
    to_blobs,
)
from larkps.stats.rollups.streams import (
    HISTORY,
    KIND_OF_METRIC,
    LOSS_KINDS,
    METRIC_OF_KIND,
    StreamKey,
    StreamKind,
    StreamState,
    StreamTests,
    hourly,
    stream_tests,
)
from larkps.stats.rollups.window import (
    WindowState,
    expired_hours,
    fresh_part,
    needs_rebuild,
    rebuild,
    slide,
)
from larkps.units import HOUR

__all__ = [
    "EMPTY_PARTIAL",
    "HISTORY",
    "HOUR",
    "KIND_OF_METRIC",
    "LOSS_KINDS",
    "METRIC_OF_KIND",
    "Partial",
    "StreamKey",
    "StreamKind",
    "StreamState",
    "StreamTests",
    "WindowState",
    "expired_hours",
    "first_hour",
    "fresh_part",
    "from_blobs",
    "full_first_hour",
    "hour_of",
    "hourly",
    "merge",
    "merge_all",
    "needs_rebuild",
    "rebuild",
    "slide",
    "stream_tests",
    "subtract",
    "to_blobs",
]
