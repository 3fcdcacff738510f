"""The summary half of a cycle's fetch: per-window statistics from summary-mode archives.

A summary-mode archive (``[archives.search] mode = "summary"``) is asked, for every
window, for per-pair statistics over ``(now - window, now]``; nothing is stored, so
the next cycle asks again (one bucket per pair and window: the cost follows the
number of pairs, not of tests). Raw-mode archives go through discovery and points.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from larkps.config.queries import SearchMode
from larkps.errors import ArchiveError
from larkps.model import SeriesSummary
from larkps.sources.base import ArchiveAnswers, Source, SummarySource
from larkps.sources.http.client import cycle_deadline

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Collected:
    """What the summary-mode archives answered in one cycle."""

    by_window: dict[int, list[SeriesSummary]] = field(default_factory=dict)
    answers: ArchiveAnswers = field(default_factory=ArchiveAnswers)

    @property
    def series(self) -> int:
        """Distinct series summarised, over every window."""
        return len({s.series.key for summaries in self.by_window.values() for s in summaries})


def split_modes(sources: Sequence[Source]) -> tuple[list[Source], list[SummarySource]]:
    """(raw-mode sources, summary-mode sources), each in configuration order."""
    raw: list[Source] = []
    summary: list[SummarySource] = []
    for source in sources:
        if isinstance(source, SummarySource) and source.mode == SearchMode.SUMMARY:
            summary.append(source)
        else:
            raw.append(source)
    return raw, summary


def collect_summaries(
    sources: Sequence[SummarySource],
    now: int,
    windows: Sequence[int],
    deadline: float | None = None,
) -> Collected:
    """Every window's summaries from every source, within ``deadline`` seconds.

    A source that fails in any window is left out of every window (one consistent
    set of windows per archive) and recorded as a problem of the cycle.
    """
    collected = Collected(by_window={w: [] for w in windows})
    with cycle_deadline([s.client for s in sources], deadline):
        for source in sources:
            try:
                answers = {
                    w: source.summaries(now - w + 1, now, source.event_types) for w in windows
                }
            except ArchiveError as exc:
                collected.answers.failed(source.name, "summaries", exc)
                log.info("%s", str(exc))  # reported in the run report; the CLI prints it once
                continue
            collected.answers.answered(source.name)
            for window, summaries in answers.items():
                collected.by_window[window].extend(summaries)
    return collected
