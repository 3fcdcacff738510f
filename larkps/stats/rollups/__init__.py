"""Pure rollup arithmetic: hourly partials, their merge and subtraction, window sliding.

No I/O: :mod:`larkps.stats.rollups.store` persists these in the state store.
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
