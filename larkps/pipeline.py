"""The one place that wires the stages of a cycle: fetch -> aggregate -> publish.

`cli` and `daemon` call :func:`run_cycle`; they hold no logic of their own.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from larkps.aggregate import path_stats
from larkps.config import ArchiveSettings, Settings
from larkps.errors import ArchiveError, PublishError
from larkps.fetch import DEFAULT_EVENT_TYPES, EsmondSource, HttpOptions, JsonClient
from larkps.model import FetchProblem, PathStats, Point, RunReport, Series
from larkps.publish import AdContext, FilePublisher, path_ads
from larkps.publish_collector import CollectorPublisher, Spool
from larkps.sites import SiteMap, SiteRule

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CycleResult:
    """Everything one cycle produced."""

    report: RunReport
    stats: tuple[PathStats, ...]
    ads: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class _Fetched:
    data: list[tuple[Series, list[Point]]]
    problems: list[FetchProblem]
    archives_ok: list[str]
    archive_errors: list[ArchiveError]


@contextmanager
def open_sources(settings: Settings) -> Iterator[list[EsmondSource]]:
    """Sources for every configured archive; embedded archives are started here."""
    with ExitStack() as stack:
        sources = []
        for archive in settings.archives:
            url, sites = archive.url, settings.sites
            if archive.kind == "embedded":
                url, sites = _start_embedded(archive, settings.sites, stack)
            client = JsonClient(archive.name, _http_options(archive))
            stack.callback(client.close)
            assert url is not None
            sources.append(EsmondSource(archive.name, url, client, sites))
        yield sources


def _start_embedded(
    archive: ArchiveSettings, sites: SiteMap, stack: ExitStack
) -> tuple[str, SiteMap]:
    from larkps.embedded import EmbeddedArchive, Mesh, MeshConfig

    assert archive.embedded is not None
    options = archive.embedded
    mesh = Mesh(MeshConfig(sites=options.sites, seed=options.seed, flavour=options.flavour))
    server = stack.enter_context(EmbeddedArchive(mesh))
    # Configured rules come first; the mesh's own map covers the rest of its hosts.
    merged = SiteMap(sites.rules + _mesh_rules(mesh.site_map()))
    return server.url, merged


def _mesh_rules(site_map: dict[str, dict[str, list[str]]]) -> tuple[SiteRule, ...]:
    return tuple(
        SiteRule(
            site=site,
            hosts=tuple(entry.get("hosts", [])),
            networks=tuple(ipaddress.ip_network(n) for n in entry.get("networks", [])),
        )
        for site, entry in sorted(site_map.items())
    )


def _http_options(archive: ArchiveSettings) -> HttpOptions:
    return HttpOptions(
        connect_timeout=archive.connect_timeout,
        read_timeout=archive.read_timeout,
        verify_tls=archive.verify_tls,
        ca_bundle=archive.ca_bundle,
        max_connections=archive.max_connections,
    )


def fetch_window(sources: Sequence[EsmondSource], start: int, end: int) -> _Fetched:
    """Discover and fetch every series of every source; failures are recorded."""
    data: list[tuple[Series, list[Point]]] = []
    problems: list[FetchProblem] = []
    archives_ok = []
    archive_errors = []
    for source in sources:
        try:
            series = source.discover(DEFAULT_EVENT_TYPES, start)
        except ArchiveError as exc:
            problems.append(FetchProblem(source.name, "metadata", exc.problem))
            archive_errors.append(exc)
            log.info("%s", exc)  # reported in the run report; the CLI prints it once
            continue
        archives_ok.append(source.name)
        fetched, failed = _fetch_series(source, series, start, end)
        data.extend(fetched)
        problems.extend(failed)
    return _Fetched(data, problems, archives_ok, archive_errors)


def _fetch_series(
    source: EsmondSource, series: list[Series], start: int, end: int
) -> tuple[list[tuple[Series, list[Point]]], list[FetchProblem]]:
    workers = max(1, source.client.options.max_connections)
    fetched, problems = [], []
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="larkps-fetch") as pool:
        futures = [(s, pool.submit(source.fetch, s, start, end)) for s in series]
        for one, future in futures:
            try:
                fetched.append((one, future.result()))
            except ArchiveError as exc:
                what = f"{one.key.metadata_key}/{one.key.event_type}"
                problems.append(FetchProblem(source.name, what, exc.problem))
                log.warning("%s (series %s)", exc, what)
    return fetched, problems


def publish_ads(
    settings: Settings, ads: Sequence[Any], now: int
) -> tuple[list[str], list[FetchProblem]]:
    """Hand the ads to every configured target; a failing collector spools them.

    A file target failing raises (nothing else is trustworthy then); a collector
    failing is recorded as a problem and the ads stay in the spool for the next try.
    """
    outputs = []
    problems = []
    if settings.publish.file is not None:
        outputs.append(FilePublisher(settings.publish.file.path).publish(ads, now))
    target = settings.publish.collector
    if target is not None:
        publisher = CollectorPublisher(target, Spool(settings.state_dir / "spool"))
        try:
            delivery = publisher.publish(ads, now)
            outputs.append(f"collector {target.pool} ({delivery.invalidated} invalidated)")
        except PublishError as exc:
            problems.append(FetchProblem(f"collector {target.pool}", "publish", str(exc)))
            log.warning("%s; ads kept in the spool", exc)
    return outputs, problems


def run_cycle(
    settings: Settings,
    now: int,
    window: int | None = None,
    publish: bool = True,
    sequence: int = 0,
    daemon_start: int | None = None,
) -> CycleResult:
    """One full cycle: fetch the window, aggregate, build ads and publish them.

    `sequence` and `daemon_start` become the ads' UpdateSequenceNumber and
    DaemonStartTime (a one-shot run is sequence 0 of a process started `now`).
    """
    started = time.monotonic()
    window = window or settings.windows.default
    with open_sources(settings) as sources:
        fetched = fetch_window(sources, now - window, now)
    if not fetched.archives_ok:
        raise fetched.archive_errors[0]
    stats = path_stats(fetched.data, window, now)
    context = AdContext(
        update_time=now,
        lifetime=settings.publish.ad_lifetime,
        sequence=sequence,
        daemon_start=now if daemon_start is None else daemon_start,
    )
    ads = path_ads(stats, context)
    outputs: list[str] = []
    publish_problems: list[FetchProblem] = []
    if publish:
        outputs, publish_problems = publish_ads(settings, ads, now)
    report = RunReport(
        started=now,
        window=window,
        archives=tuple(fetched.archives_ok),
        series=len(fetched.data),
        points=sum(len(points) for _, points in fetched.data),
        paths=len(stats),
        ads_written=len(ads) if outputs else 0,
        outputs=tuple(outputs),
        problems=tuple(fetched.problems) + tuple(publish_problems),
        duration_s=round(time.monotonic() - started, 3),
    )
    return CycleResult(report, tuple(stats), tuple(ads))
