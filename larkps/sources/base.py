"""What the cycle needs from an archive source, whatever the archive.

:class:`~larkps.sources.EsmondSource` (esmond, elmond, embedded),
:class:`~larkps.sources.search.opensearch.OpenSearchSource` and
:class:`~larkps.sources.search.pses.PsEsSource` all satisfy :class:`Source`, which is
also what :class:`larkps.ingest.runner.Ingester` needs (``PagedSource``). The last two
also satisfy :class:`SummarySource`: per-pair statistics computed server-side.
:class:`ArchiveAnswers` records which archives answered a stage of a cycle.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from larkps.config.queries import SearchMode
from larkps.config.sites import SiteMap
from larkps.errors import ArchiveError
from larkps.model import FetchProblem, Point, Series, SeriesSummary
from larkps.sources.esmond.parse import ParsedPage
from larkps.sources.http.client import JsonClient


@runtime_checkable
class Source(Protocol):
    """Discover series and fetch their points from one archive."""

    name: str
    client: JsonClient
    sites: SiteMap
    event_types: tuple[str, ...]  # what a cycle asks this source for

    @property
    def filters(self) -> object:
        """The discovery filters; their ``repr`` changes when the filters do."""
        ...

    def discover(self, event_types: Iterable[str], since: int) -> list[Series]:
        """Every series of (or standing in for) the event types with data since `since`."""
        ...

    def pages(self, series: Series, start: int, end: int) -> Iterator[ParsedPage]:
        """Points of one series with ``start <= ts <= end``, one archive page at a time."""
        ...

    def fetch(self, series: Series, start: int, end: int) -> list[Point]:
        """Points of one series with ``start <= ts <= end``, ascending, one per ts."""
        ...


@runtime_checkable
class SummarySource(Source, Protocol):
    """A source whose archive can compute per-pair statistics itself."""

    mode: SearchMode

    def summaries(
        self, start: int, end: int, event_types: Iterable[str] | None = None
    ) -> list[SeriesSummary]:
        """Per-pair statistics over ``[start, end]`` computed by the archive."""
        ...


@dataclass(slots=True)
class ArchiveAnswers:
    """Which archives answered one stage of a cycle, and what went wrong there."""

    problems: list[FetchProblem] = field(default_factory=list)
    archives_ok: list[str] = field(default_factory=list)
    archive_errors: list[ArchiveError] = field(default_factory=list)

    def answered(self, archive: str) -> None:
        self.archives_ok.append(archive)

    def failed(self, archive: str, what: str, error: ArchiveError) -> None:
        """An archive that did not answer ``what`` (its error is the problem)."""
        self.problems.append(FetchProblem(archive, what, error.problem))
        self.archive_errors.append(error)

    def __add__(self, other: ArchiveAnswers) -> ArchiveAnswers:
        return ArchiveAnswers(
            self.problems + other.problems,
            self.archives_ok + other.archives_ok,
            self.archive_errors + other.archive_errors,
        )
