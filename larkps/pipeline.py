"""The one place that wires the stages of a cycle: fetch -> aggregate -> publish.

`cli` and `daemon` call :func:`run_cycle`; they hold no logic of their own.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from larkps.config.archives import Writer
from larkps.config.settings import ArchiveSettings, Settings
from larkps.config.sites import SiteMap, SiteRule
from larkps.errors import ArchiveError, LarkpsError, PublishError
from larkps.ingest.cadence import not_due, slack_for
from larkps.ingest.runner import ArchivePlan, Ingester, IngestOptions, IngestReport, Progress
from larkps.model import (
    Alarm,
    BandwidthEstimate,
    FetchProblem,
    Forecast,
    PathHealth,
    PathKey,
    PathStats,
    Point,
    PublishProblem,
    RunReport,
    Series,
    SiteStats,
)
from larkps.publish.ads import (
    AdContext,
    FilePublisher,
    PathExtras,
    path_ads,
    render_old,
    site_ads,
)
from larkps.publish.collector import CollectorPublisher, Spool
from larkps.sources import (
    SEARCH_KINDS,
    ArchiveAnswers,
    Collected,
    EsmondSource,
    HttpOptions,
    JsonClient,
    Source,
    collect_summaries,
    cycle_deadline,
    search_source,
    series_label,
    split_modes,
)
from larkps.stats.aggregate.series_summaries import summary_stats
from larkps.stats.analysis import Analysis, Policies, RawWindow, analyse
from larkps.stats.hourly import PathHistory, path_history
from larkps.stats.rollups.views import SiteOf, sites_of
from larkps.store.db import Store
from larkps.store.points import IngestStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CycleResult:
    """Everything one cycle produced: its report, ads and the analysis behind them."""

    report: RunReport
    stats: tuple[PathStats, ...]  # the cycle's window, per site path
    ads: tuple[Any, ...]
    analysis: Analysis
    history: Mapping[PathKey, PathHistory] = field(default_factory=dict)  # run_cycle(history=True)

    @property
    def windows(self) -> tuple[PathStats, ...]:
        """Every configured window, per site path."""
        return self.analysis.windows

    @property
    def host_pairs(self) -> tuple[PathStats, ...]:
        """The cycle's window, per host pair."""
        return self.analysis.host_pairs

    @property
    def site_stats(self) -> tuple[SiteStats, ...]:
        return self.analysis.sites

    @property
    def health(self) -> tuple[PathHealth, ...]:
        return self.analysis.health

    @property
    def forecasts(self) -> tuple[Forecast, ...]:
        return self.analysis.forecasts

    @property
    def estimates(self) -> tuple[BandwidthEstimate, ...]:
        return self.analysis.estimates

    @property
    def alarms(self) -> tuple[Alarm, ...]:
        return self.analysis.alarms


@dataclass(frozen=True, slots=True)
class _Fetched:
    data: list[tuple[Series, list[Point]]]
    answers: ArchiveAnswers
    ingest: IngestReport | None = None  # incremental cycles: new points per series, counters

    @property
    def skipped(self) -> tuple[str, ...]:
        """Archives not due (own interval): only their stored points are in ``data``."""
        return self.ingest.skipped if self.ingest is not None else ()


@contextmanager
def open_sources(settings: Settings) -> Iterator[list[Source]]:
    """Sources for every configured archive; embedded archives are started here."""
    with ExitStack() as stack:
        sources: list[Source] = []
        for archive in settings.archives:
            url, sites = archive.url, settings.sites
            if archive.kind == "embedded":
                url, sites = _start_embedded(archive, settings.sites, stack)
            client = JsonClient(archive.name, _http_options(archive))
            stack.callback(client.close)
            assert url is not None
            if archive.kind in SEARCH_KINDS:  # OpenSearch pscheduler_* or WLCG ps_*
                sources.append(search_source(archive, client, sites))
                continue
            sources.append(_esmond_source(archive, url, client, sites))
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
        retries=archive.fetch.retries,
        backoff=archive.fetch.retry_backoff,
        max_response_bytes=archive.fetch.max_response_size,
        redirect_hosts=archive.fetch.redirect_hosts,
        auth=archive.credentials.as_auth() if archive.credentials else None,
    )


def _esmond_source(
    archive: ArchiveSettings, url: str, client: JsonClient, sites: SiteMap
) -> EsmondSource:
    return EsmondSource(
        archive.name,
        url,
        client,
        sites,
        data_page=archive.fetch.page_size,
        filters=archive.fetch.filters,
        event_types=archive.fetch.event_types,
    )


def fetch_cycle(
    settings: Settings, sources: Sequence[Source], now: int, window: int, cadence: bool = False
) -> _Fetched:
    """The fetch half of a cycle: incremental through the state store when configured
    (``[fetch] incremental``), else the whole window from the archives.

    With ``cadence`` (daemon cycles), archives whose own ``interval`` has not passed
    since their last attempt are not fetched; their stored points are still loaded.
    """
    deadline = settings.fetch.deadline
    if not settings.fetch.incremental:
        with cycle_deadline([s.client for s in sources], deadline):
            return fetch_window(sources, now - window, now)
    # Fetch what the cycle's window needs; older points come from the store (or from
    # `larkps fetch --since`), so a cold start does not pull the longest window.
    report, data = ingest_cycle(
        settings, sources, now, now - window, deadline, window=window, cadence=cadence
    )
    return _Fetched(data, report.answers, report)


def _not_due(
    settings: Settings, sources: Sequence[Source], now: int, state: IngestStore
) -> tuple[str, ...]:
    """Sources whose own interval has not passed since their last attempted fetch."""
    names = {s.name for s in sources}
    intervals = [(a.name, a.fetch.interval) for a in settings.archives if a.name in names]
    if all(interval is None for _, interval in intervals):
        return ()
    slack = slack_for(settings.interval, settings.daemon.misfire_grace)
    skipped = not_due(intervals, state.attempts(), now, slack)
    if skipped:
        log.info("not due this cycle (own interval): %s", ", ".join(skipped))
    return skipped


def ingest_cycle(
    settings: Settings,
    sources: Sequence[Source],
    now: int,
    since: int,
    deadline: float | None,
    progress: Progress | None = None,
    window: int | None = None,
    cadence: bool = False,
) -> tuple[IngestReport, list[tuple[Series, list[Point]]]]:
    """Fetch what is new in [since, now] into the state store; with ``window``, also
    load that window's points back from the store (of skipped sources too).

    With ``cadence``, sources whose own interval has not passed are skipped
    (larkps.ingest.cadence); the attempt time of every source fetched is recorded.
    """
    options = IngestOptions(
        discover_interval=settings.fetch.discover_interval,
        retention=max(settings.fetch.retention, now - since),
        deadline=deadline,
        keep_new_points=window is not None,  # a backfill only counts them
        writer_process={Writer.PROCESS: True, Writer.THREAD: False}.get(settings.fetch.writer),
    )
    plans = [ArchivePlan(s, s.event_types, repr(s.filters)) for s in sources]
    with Store.in_directory(settings.state_dir) as store:
        state = IngestStore(store)
        skip = _not_due(settings, sources, now, state) if cadence else ()
        ingester = Ingester(state, options)
        report = ingester.cycle(plans, now, since, progress, skip=skip)
        state.save_attempts([s.name for s in sources if s.name not in skip], now)
        data = [] if window is None else ingester.load_window(plans, now - window, now)
    return report, data


def fetch_window(sources: Sequence[Source], start: int, end: int) -> _Fetched:
    """Discover and fetch every series of every source; failures are recorded."""
    data: list[tuple[Series, list[Point]]] = []
    answers = ArchiveAnswers()
    for source in sources:
        try:
            series = source.discover(source.event_types, start)
        except ArchiveError as exc:
            answers.failed(source.name, "metadata", exc)
            log.debug("%s", str(exc))  # in the run report, which the CLI or daemon prints
            continue
        answers.answered(source.name)
        fetched, failed = _fetch_series(source, series, start, end)
        data.extend(fetched)
        answers.problems.extend(failed)
    return _Fetched(data, answers)


def _fetch_series(
    source: Source, series: list[Series], start: int, end: int
) -> tuple[list[tuple[Series, list[Point]]], list[FetchProblem]]:
    workers = max(1, source.client.options.max_connections)
    fetched, problems = [], []
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="larkps-fetch") as pool:
        futures = [(s, pool.submit(source.fetch, s, start, end)) for s in series]
        for one, future in futures:
            try:
                fetched.append((one, future.result()))
            except ArchiveError as exc:
                what = series_label(one)
                problems.append(FetchProblem(source.name, what, exc.problem))
                log.debug("%s (series %s)", str(exc), what)  # printed from the run report
    return fetched, problems


def publish_ads(
    settings: Settings, ads: Sequence[Any], now: int
) -> tuple[list[str], list[PublishProblem]]:
    """Hand the ads to every configured target; a failing collector spools them.

    A file target failing raises (nothing else is trustworthy then); a collector
    failing is recorded as a problem and the ads stay in the spool for the next try.
    """
    outputs: list[str] = []
    problems: list[PublishProblem] = []
    text = render_old(ads, now)  # once, for every target
    if settings.publish.file is not None:
        outputs.append(FilePublisher(settings.publish.file.path).publish_text(text))
    target = settings.publish.collector
    if target is not None:
        publisher = CollectorPublisher(
            target, Spool(settings.state_dir / "spool"), retries=target.retries, backoff=0.5
        )
        try:
            delivery = publisher.publish_text(text)
            outputs.append(f"collector {target.pool} ({delivery.invalidated} invalidated)")
        except PublishError as exc:
            problems.append(PublishProblem(f"collector {target.pool}", str(exc)))
            log.debug("%s; ads kept in the spool", str(exc))  # printed from the run report
    return outputs, problems


@dataclass(frozen=True, slots=True)
class DaemonContext:
    """What a cycle of `larkps run` knows that a one-shot command does not.

    ``sequence`` and ``started`` become the ads' UpdateSequenceNumber and
    DaemonStartTime; archives with their own ``interval`` are fetched only when due
    (larkps.ingest.cadence).
    """

    sequence: int
    started: int


def run_cycle(
    settings: Settings,
    now: int,
    window: int | None = None,
    publish: bool = True,
    history: bool = False,
    daemon: DaemonContext | None = None,
) -> CycleResult:
    """One full cycle: fetch the window, aggregate, build ads and publish them.

    With `history`, the result also holds each path's hourly history (larkps.stats.hourly).
    Without `daemon` (one-shot commands) every archive is fetched, and the ads are
    sequence 0 of a process started `now`.
    """
    started = time.monotonic()
    window = window or settings.windows.default
    with open_sources(settings) as sources:
        raw_sources, summary_sources = split_modes(sources)  # summary mode: nothing stored
        fetched = fetch_cycle(settings, raw_sources, now, window, cadence=daemon is not None)
        policies = Policies.from_settings(settings, window)
        summaries = collect_summaries(
            summary_sources, now, policies.needed, settings.fetch.deadline
        )
        sites = sites_of({s.name: s.sites for s in sources}, settings.sites)
    answers = fetched.answers + summaries.answers
    archives_ok = answers.archives_ok
    if not archives_ok and not fetched.skipped:
        raise _no_answer(answers.archive_errors)
    if not fetched.data and not summaries.series and not fetched.skipped:
        raise _no_series(settings, archives_ok)
    fetched_at = time.monotonic()
    if publish and fetched.ingest is not None:
        read_history(settings, now)
    policies = dataclasses.replace(policies, commit_calibration=publish)
    analysis = analyse_fetched(settings, fetched, now, policies, summaries, sites)
    stats = analysis.window(window)
    analysed_at = time.monotonic()
    context = AdContext(
        update_time=now,
        lifetime=settings.publish.ad_lifetime,
        sequence=0 if daemon is None else daemon.sequence,
        daemon_start=now if daemon is None else daemon.started,
    )
    ads = path_ads(stats, context, extras=ad_extras(analysis, window))
    ads += site_ads(analysis.sites, context, window)
    outputs: list[str] = []
    publish_problems: list[PublishProblem] = []
    if publish:
        outputs, publish_problems = publish_ads(settings, ads, now)
    report = RunReport(
        started=now,
        window=window,
        archives=tuple(archives_ok),
        series=len(fetched.data) + summaries.series,
        points=sum(len(points) for _, points in fetched.data),
        ingested=_ingested(fetched),
        paths=len(stats),
        ads_written=len(ads) if outputs else 0,
        outputs=tuple(outputs),
        problems=tuple(answers.problems),
        publish_problems=tuple(publish_problems),
        duration_s=round(time.monotonic() - started, 3),
        stages=(
            ("fetch", round(fetched_at - started, 3)),
            ("aggregate", round(analysed_at - fetched_at, 3)),
            ("publish", round(time.monotonic() - analysed_at, 3)),
        ),
        ads_spooled=len(ads) if publish_problems else 0,
        skipped=fetched.skipped,
    )
    histories = path_history(fetched.data, now, window) if history else {}
    return CycleResult(report, tuple(stats), tuple(ads), analysis, history=histories)


def read_history(settings: Settings, now: int) -> None:
    """With ``[calibration] enabled``, record the schedd's newly completed jobs; a
    failure to read is logged and the cycle goes on with what is stored."""
    if not settings.calibration.enabled:
        return
    from larkps.publish.schedd_history import read_into_store

    try:
        with Store.in_directory(settings.state_dir) as store:
            read = read_into_store(store, settings.calibration, now)
    except LarkpsError as exc:
        log.warning("calibration: %s", exc)
        return
    log.info(
        "calibration: %d history ads, %d transfers (%d new), %d skipped",
        read.ads, len(read.transfers), read.recorded, len(read.skipped),
    )  # fmt: skip


def _no_answer(errors: Sequence[ArchiveError]) -> ArchiveError:
    """The first archive's error, naming the others that failed too."""
    first = errors[0]
    first.also_failed = tuple(errors[1:])
    return first


def _no_series(settings: Settings, archives: Sequence[str]) -> ArchiveError:
    """Every archive answered, and none listed a series to fetch."""
    wanted = [a.fetch.event_types for a in settings.archives if a.name in archives]
    types = sorted({t for event_types in wanted for t in event_types})
    what = f" of the event types {', '.join(types)}" if types else ""
    return ArchiveError(", ".join(archives), f"lists no measurement series{what}")


def _ingested(fetched: _Fetched) -> int:
    """Points new to the state this cycle: those fetched, without a state store."""
    if fetched.ingest is not None:
        return fetched.ingest.points
    return sum(len(points) for _, points in fetched.data)


def analyse_fetched(
    settings: Settings,
    fetched: _Fetched,
    now: int,
    policies: Policies,
    summaries: Collected | None = None,
    sites: SiteOf | None = None,
) -> Analysis:
    """The aggregate half: rollups in the state store after an incremental fetch
    (their endpoints mapped by ``sites``, else by the configured site map), else
    every window straight from the fetched points; summary-mode archives'
    statistics merged in (raw figures win on a path both have)."""
    window = policies.default
    summarised = None
    if summaries is not None and summaries.answers.archives_ok:
        by_window = summaries.by_window
        summarised = summary_stats(by_window, now, policies.quality, policies.default)
    if fetched.ingest is None:
        return analyse(fetched.data, now, policies, summarised=summarised)
    new = list(fetched.ingest.new_points.items())
    raw = RawWindow(fetched.data, now - window, now)  # the window loaded back from the store
    with Store.in_directory(settings.state_dir) as store:
        return analyse(
            new,
            now,
            policies,
            store,
            all_new=True,
            raw=raw,
            summarised=summarised,
            sites=sites or sites_of({}, settings.sites),
        )


def ad_extras(analysis: Analysis, window: int) -> dict[PathKey, PathExtras]:
    """Health, alarms and the bandwidth estimate of each path, for its ad."""
    health = {h.path: h for h in analysis.health if h.window == window}
    estimates = {e.path: e for e in analysis.estimates}
    others: dict[PathKey, list[PathStats]] = {}
    for stats in analysis.windows:
        if stats.window != window:
            others.setdefault(stats.path, []).append(stats)
    return {
        path: PathExtras(
            health=health[path].health if path in health else None,
            alarms=tuple(k.value for k in health[path].alarms) if path in health else (),
            estimate=estimates.get(path),
            other_windows=tuple(sorted(others.get(path, []), key=lambda s: s.window)),
        )
        for path in set(health) | set(estimates) | set(others)
    }
