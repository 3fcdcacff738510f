"""Per-archive cadences: which sources a daemon cycle fetches and which wait.

Pure time arithmetic. An archive without its own ``interval`` is fetched every
cycle; one with an interval waits until that long has passed since its last
attempted fetch. ``slack`` lets a cycle that started a little late (scheduler
jitter, a misfire within its grace) still count, so a source is not pushed back a
whole cycle. A last attempt in the future (the clock went back) counts as due, so
a clock jump never blocks a source.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def is_due(interval: int | None, last_attempt: int | None, now: int, slack: int = 0) -> bool:
    """True when a source with this ``interval`` should be fetched at ``now``."""
    if interval is None or last_attempt is None or last_attempt > now:
        return True
    return now - last_attempt >= interval - slack


def not_due(
    intervals: Iterable[tuple[str, int | None]],
    attempts: Mapping[str, int],
    now: int,
    slack: int = 0,
) -> tuple[str, ...]:
    """Names of the sources to skip at ``now``, in the order given."""
    return tuple(
        name for name, interval in intervals if not is_due(interval, attempts.get(name), now, slack)
    )


def slack_for(cycle_interval: int, misfire_grace: int) -> int:
    """How early a source may be fetched: the misfire grace, at most half a cycle."""
    return max(0, min(misfire_grace, cycle_interval // 2))
