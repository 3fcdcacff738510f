"""Incremental polling: each cycle fetches only points newer than each series' mark.

Per (archive, metadata-key, event-type) the store keeps a high-water mark. A cycle
discovers series (at most once per ``discover_interval``; the list is kept in the
store), fetches every series' new points on a bounded per-archive worker pool, and
commits each page together with the marks it justifies (from a writer process in a
big cycle: larkps.ingest.writer), so ``kill -9`` can never leave a mark ahead of its
points. Errors stay with their series; at the cycle
deadline the points fetched so far are kept and the report is marked partial.
"""

from __future__ import annotations

import gc
import json
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from larkps.config.sites import SiteMap
from larkps.errors import ArchiveDeadline, ArchiveError, ArchiveUnavailable, StateError
from larkps.ingest.writer import WriterProcess
from larkps.model import FetchProblem, Point, ProblemKind, Series
from larkps.sources import DEFAULT_EVENT_TYPES, JsonClient, ParsedPage, cycle_deadline, series_label
from larkps.sources.base import ArchiveAnswers
from larkps.store.points import Commit, IngestStore, StoredSeries, page_rows

log = logging.getLogger(__name__)

BATCH_POINTS = 20000  # points per transaction, at most
BATCH_SECONDS = 0.1  # and at most this long gathering them (one fsync per transaction)
GATHER_POLL = 0.005  # while gathering, look for new results this often (not per result)
QUEUED_ITEMS = 4096  # fetch threads wait while this many results await a commit
ROOM_WAIT = 0.1  # a waiting fetch thread looks for cancellation this often
PRUNE_EVERY = 3600
# A cycle that fetches at least this many series over at least LONG_RANGE seconds each
# (a cold start, a backfill, a restart after a long stop) commits from a writer process.
# A steady cycle of short ranges does not: its commits are small, and a second process
# gains nothing there (docs/benchmarks.md).
WRITER_PROCESS_TASKS = 2000
LONG_RANGE = 1800
GC_THRESHOLDS = (5000, 10, 100)  # gc thresholds during a cycle (the default is 700, 10, 10)
Progress = Callable[[int, int, int], None]  # (series done, series total, points stored)


class Committer(Protocol):
    """What commits pages: the store itself, or a writer process."""

    def commit(self, commits: Sequence[Commit]) -> list[list[Point]]: ...


class PagedSource(Protocol):
    """What the ingester needs of a source (EsmondSource implements it)."""

    name: str
    client: JsonClient
    sites: SiteMap

    def discover(self, event_types: Iterable[str], since: int) -> list[Series]: ...

    def pages(self, series: Series, start: int, end: int) -> Iterator[ParsedPage]: ...


@dataclass(frozen=True, slots=True)
class ArchivePlan:
    """One source and what to take from it."""

    source: PagedSource
    event_types: tuple[str, ...] = DEFAULT_EVENT_TYPES
    query: str = ""  # the discovery filters, so a changed filter triggers rediscovery


@dataclass(frozen=True, slots=True)
class IngestOptions:
    """How a cycle runs. Durations in seconds; ``deadline`` None means no deadline."""

    discover_interval: int = 3600
    retention: int = 8 * 86400
    deadline: float | None = None
    keep_new_points: bool = True  # False for big backfills: count new points, keep none
    writer_process: bool | None = None  # commit from a second process; None: for big cycles


@dataclass(frozen=True, slots=True)
class IngestReport:
    """What one ingest cycle did. ``new_points`` holds only points new to the store."""

    series: int
    points: int
    requests: int
    retries: int
    answers: ArchiveAnswers
    new_points: Mapping[Series, list[Point]]
    duration_s: float
    skipped: tuple[str, ...] = ()  # archives left out of this cycle (not due)

    @property
    def archives_ok(self) -> tuple[str, ...]:
        return tuple(self.answers.archives_ok)

    @property
    def problems(self) -> tuple[FetchProblem, ...]:
        return tuple(self.answers.problems)

    @property
    def partial(self) -> bool:
        return bool(self.answers.problems)


@dataclass(frozen=True, slots=True)
class _Range:
    start: int
    end: int
    backfill: bool
    cover: bool  # the first commit of this range sets covered_from = start


@dataclass(frozen=True, slots=True)
class _Task:
    archive: str
    stored: StoredSeries
    ranges: tuple[_Range, ...]


@dataclass
class _Done:
    task: _Task
    problem: FetchProblem | None
    rejected: FetchProblem | None = None


@dataclass
class _Tally:
    new_points: dict[Series, list[Point]] = field(default_factory=dict)
    problems: list[FetchProblem] = field(default_factory=list)
    stored: int = 0
    done: int = 0


def plan_ranges(stored: StoredSeries, start: int, end: int) -> tuple[_Range, ...]:
    """What to fetch so the store covers [start, end]: new points first, then backfill."""
    hwm, cover = stored.hwm, stored.covered_from
    if hwm is None or cover is None or hwm + 1 < start:
        return (_Range(start, end, backfill=False, cover=True),)
    ranges = []
    if hwm + 1 <= end:
        ranges.append(_Range(hwm + 1, end, backfill=False, cover=False))
    if start < cover:
        ranges.append(_Range(start, cover - 1, backfill=True, cover=True))
    return tuple(ranges)


def discovery_query(plan: ArchivePlan) -> str:
    """What a stored discovery was made for: a different query lists the series again."""
    return json.dumps([sorted(plan.event_types), plan.query])


class Ingester:
    """Runs incremental fetch cycles of several archives into one store."""

    def __init__(self, store: IngestStore, options: IngestOptions) -> None:
        self.store = store
        self.options = options

    def cycle(
        self,
        plans: Sequence[ArchivePlan],
        now: int,
        since: int,
        progress: Progress | None = None,
        skip: Collection[str] = (),
    ) -> IngestReport:
        """Fetch what is new in [since, now] for every archive not in ``skip``
        (pruning still covers all of them)."""
        started = time.monotonic()
        all_plans, plans = plans, [p for p in plans if p.source.name not in skip]
        clients = [p.source.client for p in plans]
        before = [(c.stats.requests, c.stats.retries) for c in clients]
        with cycle_deadline(clients, self.options.deadline) as deadline:
            tasks, answers = self._tasks(plans, now, since)
            with self._committer(tasks) as committer, fewer_collections():
                runner = _Runner(committer, plans, deadline, progress)
                runner.keep = self.options.keep_new_points
                tally = runner.run(tasks)
        down = _unanswered(tasks, tally.problems, answers.archives_ok)
        gone = {e.archive for e in down}
        answers.archives_ok[:] = [name for name in answers.archives_ok if name not in gone]
        answers.archive_errors += down
        answers.problems += tally.problems
        self._maybe_prune(all_plans, min(now - self.options.retention, since), now)
        after = [(c.stats.requests, c.stats.retries) for c in clients]
        return IngestReport(
            series=len(tasks),
            points=tally.stored,
            requests=sum(a[0] - b[0] for a, b in zip(after, before, strict=True)),
            retries=sum(a[1] - b[1] for a, b in zip(after, before, strict=True)),
            answers=answers,
            new_points=tally.new_points,
            duration_s=round(time.monotonic() - started, 3),
            skipped=tuple(p.source.name for p in all_plans if p.source.name in skip),
        )

    @contextmanager
    def _committer(self, tasks: Sequence[_Task]) -> Iterator[Committer]:
        """Where pages are committed: a writer process for a big cycle (and a state
        file), this process otherwise (larkps.ingest.writer)."""
        wanted = self.options.writer_process
        if wanted is None:
            wanted = _big(tasks)
        path = self.store.store.path
        if not wanted or str(path) == ":memory:":
            yield self.store
            return
        try:
            writer = WriterProcess(path)
        except StateError as exc:  # no second process here: commit from this one
            log.warning("%s; committing from this process", exc)
            yield self.store
            return
        with writer:
            yield writer

    def _tasks(
        self, plans: Sequence[ArchivePlan], now: int, since: int
    ) -> tuple[list[_Task], ArchiveAnswers]:
        tasks, answers = [], ArchiveAnswers()
        for plan in plans:
            name = plan.source.name
            try:
                known = self._series(plan, now, since)
            except ArchiveError as exc:
                log.debug("%s", str(exc))  # in the run report, which the CLI or daemon prints
                answers.failed(name, "metadata", exc)
                known = self.store.series(name, plan.source.sites)  # carry on with what we know
                if not known:
                    continue
            else:
                answers.answered(name)
                skipped = getattr(plan.source, "skipped_metadata", 0)
                if skipped:
                    problem = f"skipped {skipped} malformed metadata objects"
                    answers.problems.append(
                        FetchProblem(name, "metadata", problem, ProblemKind.BAD_VALUES)
                    )
            wanted = set(plan.event_types)
            for stored in known:
                ranges = plan_ranges(stored, since, now)
                if stored.series.key.event_type in wanted and ranges:
                    tasks.append(_Task(name, stored, ranges))
        return tasks, answers

    def _series(self, plan: ArchivePlan, now: int, since: int) -> list[StoredSeries]:
        name, sites = plan.source.name, plan.source.sites
        query = discovery_query(plan)
        last = self.store.last_discovery(name, query)
        if last is None or now - last >= self.options.discover_interval or now < last:
            found = plan.source.discover(plan.event_types, since)
            self.store.save_discovery(name, query, now, found)
            return self.store.series(name, sites, seen_since=now)
        return self.store.series(name, sites, seen_since=last)

    def _maybe_prune(self, plans: Sequence[ArchivePlan], cutoff: int, now: int) -> None:
        last = self.store.meta("pruned_at")
        if last is not None and 0 <= now - last < PRUNE_EVERY:
            return
        ids = [i for plan in plans for i in self.store.series_ids(plan.source.name)]
        deleted = self.store.prune(ids, cutoff)
        self.store.set_meta("pruned_at", now)
        if deleted:
            log.info("pruned %d points older than %d s", deleted, self.options.retention)

    def load_window(
        self, plans: Sequence[ArchivePlan], start: int, end: int
    ) -> list[tuple[Series, list[Point]]]:
        """Every wanted series with its stored points in (start, end]."""
        data = []
        for plan in plans:
            wanted = set(plan.event_types)
            for stored in self.store.series(plan.source.name, plan.source.sites):
                if stored.series.key.event_type not in wanted:
                    continue
                points = self.store.points(stored.id, start, end)
                if points or stored.seen_at > start:
                    data.append((stored.series, points))
        return data


_gc_lock = threading.Lock()
_gc_users = 0
_gc_saved = gc.get_threshold()


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Raise the collector's thresholds to at least GC_THRESHOLDS while a cycle runs.

    A cycle allocates millions of short-lived, acyclic objects (decoded JSON,
    points, histogram pairs) and keeps its new points; with the default thresholds
    the collector runs far more often, some of the runs full collections over every
    kept point (figures in docs/benchmarks.md). The thresholds are restored when the
    last concurrent cycle ends: nothing is left uncollected, only collected later.
    """
    global _gc_users, _gc_saved
    with _gc_lock:
        if _gc_users == 0:
            _gc_saved = gc.get_threshold()
            gc.set_threshold(*(max(a, b) for a, b in zip(_gc_saved, GC_THRESHOLDS, strict=True)))
        _gc_users += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_users -= 1
            if _gc_users == 0:
                gc.set_threshold(*_gc_saved)


class _Runner:
    """Fetch tasks on per-archive pools; commit pages from this thread in batches."""

    def __init__(
        self,
        committer: Committer,
        plans: Sequence[ArchivePlan],
        deadline: float | None,
        progress: Progress | None,
    ) -> None:
        self.committer = committer
        self.sources = {p.source.name: p.source for p in plans}
        self.deadline = deadline
        self.progress = progress
        # A SimpleQueue: put and get are C calls, and the committer polls it while
        # gathering a batch instead of waking once per result (~2 results a series).
        self.results: queue.SimpleQueue[Commit | _Done] = queue.SimpleQueue()
        # Room in the queue: a fetch thread finding it full blocks on this semaphore.
        self.room = threading.Semaphore(QUEUED_ITEMS)
        self.cancel = threading.Event()
        self.owners: dict[int, Series] = {}
        self.keep = True

    def run(self, tasks: list[_Task]) -> _Tally:
        tally = _Tally()
        self.owners = {t.stored.id: t.stored.series for t in tasks}
        todo: dict[str, deque[_Task]] = {name: deque() for name in self.sources}
        for task in tasks:
            todo[task.archive].append(task)
        try:
            for name, source in self.sources.items():
                self._start_workers(name, todo[name], source.client.options.max_connections)
            self._collect(tasks, tally)
        finally:
            self.cancel.set()  # workers finish the task in hand and stop
        return tally

    def _start_workers(self, archive: str, todo: deque[_Task], connections: int) -> None:
        """One thread per connection of the archive, taking tasks in order (a plain
        deque: an executor's future, locks and wake-ups per task cost more than the
        small request of a steady cycle)."""
        for i in range(min(max(1, connections), len(todo))):
            name = f"larkps-fetch-{archive}_{i}"
            threading.Thread(target=self._work, args=(todo,), name=name).start()

    def _collect(self, tasks: list[_Task], tally: _Tally) -> None:
        pending = {id(t): t for t in tasks}
        while pending:
            batch = self._next_batch(len(pending))
            if batch is None:  # the deadline passed: keep what was fetched so far
                self.cancel.set()
                break
            commits = [item for item in batch if isinstance(item, Commit)]
            self._commit(commits, tally)
            for item in batch:
                if isinstance(item, _Done):
                    pending.pop(id(item.task), None)
                    self._finish(item, tally, len(tasks))
        self._commit([i for i in self._drain() if isinstance(i, Commit)], tally)
        for task in pending.values():
            what = series_label(task.stored.series)
            problem = "cycle deadline reached; fetched in part or not at all"
            tally.problems.append(FetchProblem(task.archive, what, problem, ProblemKind.DEADLINE))

    def _next_batch(self, pending: int) -> list[Commit | _Done] | None:
        while True:
            wait = 0.5
            if self.deadline is not None:
                wait = min(wait, self.deadline - time.monotonic())
                if wait <= 0:
                    return None
            try:
                first = self.results.get(timeout=wait)
            except queue.Empty:
                continue
            self.room.release()
            return self._gather(first, pending)

    def _gather(self, first: Commit | _Done, pending: int) -> list[Commit | _Done]:
        """More items for the same transaction: up to BATCH_POINTS or BATCH_SECONDS, or
        until every pending task has reported done."""
        batch = [first]
        size = len(first.points) if isinstance(first, Commit) else 0
        done = 0 if isinstance(first, Commit) else 1
        until = time.monotonic() + BATCH_SECONDS
        if self.deadline is not None:
            until = min(until, self.deadline)
        while size < BATCH_POINTS and done < pending:
            items = self._drain(BATCH_POINTS - size)
            if not items:
                left = until - time.monotonic()
                if left <= 0:
                    break
                time.sleep(min(GATHER_POLL, left))
                continue
            batch.extend(items)
            for item in items:
                if isinstance(item, Commit):
                    size += len(item.points)
                else:
                    done += 1
        return batch

    def _drain(self, limit: int | None = None) -> list[Commit | _Done]:
        items: list[Commit | _Done] = []
        size = 0
        while limit is None or size < limit:
            try:
                item = self.results.get_nowait()
            except queue.Empty:
                break
            items.append(item)
            size += len(item.points) if isinstance(item, Commit) else 0
        if items:
            self.room.release(len(items))
        return items

    def _commit(self, commits: list[Commit], tally: _Tally) -> None:
        if not commits:
            return
        for item, fresh in zip(commits, self.committer.commit(commits), strict=True):
            if fresh and self.keep:
                tally.new_points.setdefault(self.owners[item.series_id], []).extend(fresh)
            tally.stored += len(fresh)

    def _finish(self, done: _Done, tally: _Tally, total: int) -> None:
        tally.done += 1
        for problem in (done.problem, done.rejected):
            if problem is not None:
                tally.problems.append(problem)
                log.debug("archive %s: %s: %s", problem.archive, problem.what, problem.problem)
        if self.progress is not None:
            self.progress(tally.done, total, tally.stored)

    # -- worker threads (never touch the store) ------------------------------------------
    def _work(self, todo: deque[_Task]) -> None:
        while not self.cancel.is_set():
            try:
                task = todo.popleft()
            except IndexError:
                return
            self._fetch(task)

    def _fetch(self, task: _Task) -> None:
        series = task.stored.series
        rejected: dict[str, int] = {}
        problem: FetchProblem | None = None
        try:
            for fetch_range in task.ranges:
                self._fetch_range(task, fetch_range, rejected)
        except ArchiveError as exc:
            kind = ProblemKind.DEADLINE if isinstance(exc, ArchiveDeadline) else ProblemKind.ERROR
            problem = FetchProblem(task.archive, series_label(series), exc.problem, kind)
        except Exception as exc:
            log.exception("archive %s: %s: unexpected failure", task.archive, series_label(series))
            problem = FetchProblem(task.archive, series_label(series), f"internal error: {exc!r}")
        self._put(_Done(task, problem, _rejected(task, rejected)))

    def _fetch_range(self, task: _Task, fetch_range: _Range, rejected: dict[str, int]) -> None:
        source = self.sources[task.archive]
        cover = fetch_range.cover and not fetch_range.backfill
        for page in source.pages(task.stored.series, fetch_range.start, fetch_range.end):
            if self.cancel.is_set():
                raise ArchiveDeadline(task.archive, "cycle deadline reached")
            for reason, count in page.rejected.items():
                rejected[reason] = rejected.get(reason, 0) + count
            if not page.points:
                continue
            series_id = task.stored.id
            self._put(
                Commit(
                    series_id,
                    page.points,
                    hwm=None if fetch_range.backfill else page.max_ts,
                    covered_from=fetch_range.start if cover else None,
                    check_existing=fetch_range.backfill,
                    rows=None if fetch_range.backfill else page_rows(series_id, page.points),
                )
            )
            cover = False
        if fetch_range.backfill:  # complete: the store now covers from its start
            self._put(Commit(task.stored.id, (), covered_from=fetch_range.start))

    def _put(self, item: Commit | _Done) -> None:
        """Hand a result to the committer; wait while too many are queued (a big
        backfill fetches faster than SQLite stores); dropped once cancelled."""
        while not self.room.acquire(timeout=ROOM_WAIT):
            if self.cancel.is_set():
                return
        if not self.cancel.is_set():
            self.results.put(item)


def _unanswered(
    tasks: Sequence[_Task], problems: Sequence[FetchProblem], listed: Sequence[str]
) -> list[ArchiveError]:
    """Archives whose series list was read (or known) but every series of which failed
    with an error: they did not answer this cycle (a deadline is not their failure)."""
    wanted: dict[str, int] = {}
    for task in tasks:
        wanted[task.archive] = wanted.get(task.archive, 0) + 1
    failed: dict[str, list[FetchProblem]] = {}
    for problem in problems:
        if problem.kind == ProblemKind.ERROR:
            failed.setdefault(problem.archive, []).append(problem)
    return [
        ArchiveUnavailable(name, failed[name][0].problem)
        for name in listed
        if wanted.get(name) and len(failed.get(name, ())) >= wanted[name]
    ]


def _big(tasks: Sequence[_Task]) -> bool:
    """Whether a cycle fetches enough to commit from a writer process."""
    long = (t for t in tasks if sum(r.end - r.start for r in t.ranges) >= LONG_RANGE)
    return sum(1 for _ in long) >= WRITER_PROCESS_TASKS


def _rejected(task: _Task, rejected: dict[str, int]) -> FetchProblem | None:
    if not rejected:
        return None
    detail = ", ".join(f"{n} {reason}" for reason, n in sorted(rejected.items()))
    problem = f"rejected {sum(rejected.values())} points: {detail}"
    return FetchProblem(
        task.archive, series_label(task.stored.series), problem, ProblemKind.BAD_VALUES
    )
