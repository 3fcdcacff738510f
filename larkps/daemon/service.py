"""`larkps run`: scheduled cycles, signals, reloads, run reports and metrics.

A thin shell around :func:`larkps.pipeline.run_cycle`. One APScheduler interval job
(coalesced, at most one instance, with a misfire grace) runs the cycles in a worker
thread; the main thread waits for signals. SIGTERM/SIGINT stop scheduling, wait up
to ``daemon.shutdown_timeout`` for the running cycle and exit 0. SIGHUP reloads the
configuration; an invalid file keeps the old settings running and logs why. A cycle
that fails is logged and recorded; the daemon itself carries on. Archives with their
own ``interval`` are fetched only in the cycles they are due (larkps.ingest.cadence).

Each cycle logs one line at INFO (ERROR when it failed) whose fields, in the JSON log
format, are the run report's; then each problem of the cycle once, at WARNING.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from larkps.config.settings import Settings, load_settings
from larkps.daemon.logs import problem_lines
from larkps.daemon.memory import release_free_memory
from larkps.daemon.prometheus import DaemonMetrics
from larkps.errors import LarkpsError
from larkps.model import RunReport
from larkps.pipeline import CycleResult, DaemonContext, run_cycle
from larkps.publish.collector import CollectorPublisher, Spool
from larkps.store import runs as runlog

log = logging.getLogger("larkps.daemon")
Cycle = Callable[..., CycleResult]  # (settings, now, *, daemon: DaemonContext)
JOB_ID = "larkps-cycle"


class Daemon:
    """Run cycles on a schedule until told to stop."""

    def __init__(
        self, config_path: Path, cycle: Cycle = run_cycle, clock: Callable[[], float] = time.time
    ) -> None:
        self.config_path = config_path
        self.settings = load_settings(config_path)
        self.cycle = cycle
        self.clock = clock
        self.metrics = DaemonMetrics()
        self.stop_requested = threading.Event()
        self.reload_requested = threading.Event()
        self.cycle_lock = threading.Lock()
        self.cycles_done = 0
        self.started_at = int(clock())
        self.scheduler = BackgroundScheduler(timezone=UTC)

    # -- lifecycle -----------------------------------------------------------
    def run(self) -> int:
        """Block until SIGTERM/SIGINT; return the exit status."""
        self._install_signal_handlers()
        if self.settings.daemon.metrics_port:
            daemon = self.settings.daemon
            self.metrics.serve(daemon.metrics_address, daemon.metrics_port)
        self._resend_spooled()
        self._schedule(first_run=datetime.now(UTC))
        self.scheduler.start()
        log.info("larkps running: every %d s, config %s", self.settings.interval, self.config_path)
        while not self.stop_requested.wait(0.2):
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                self.reload()
        return self._shutdown()

    def _resend_spooled(self) -> None:
        """After a restart, send the ads a previous run could not deliver, at once."""
        target = self.settings.publish.collector
        if target is None:
            return
        publisher = CollectorPublisher(target, Spool(self.settings.state_dir / "spool"))
        try:
            delivery = publisher.resend_pending()
        except LarkpsError as exc:
            log.warning("spooled ads not delivered yet: %s", str(exc))
            return
        if delivery.sent:
            log.info("resent %d spooled ads to %s", delivery.sent, target.pool)

    def _install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop_requested.set()

    def _on_reload(self, signum: int, frame: FrameType | None) -> None:
        self.reload_requested.set()

    def _schedule(self, first_run: datetime | None = None) -> None:
        interval = self.settings.interval
        self.scheduler.add_job(
            self.run_one_cycle,
            "interval",
            seconds=interval,
            id=JOB_ID,
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=self.settings.daemon.misfire_grace,
            next_run_time=first_run or datetime.now(UTC) + timedelta(seconds=interval),
        )

    def _shutdown(self) -> int:
        log.info(
            "stopping: waiting up to %d s for the running cycle",
            self.settings.daemon.shutdown_timeout,
        )
        self.scheduler.shutdown(wait=False)
        if self.cycle_lock.acquire(timeout=self.settings.daemon.shutdown_timeout):
            self.cycle_lock.release()
        else:
            log.warning("a cycle was still running at shutdown; committed state is kept")
        return 0

    def reload(self) -> None:
        """Re-read the configuration; keep the old one if the new one is invalid."""
        try:
            settings = load_settings(self.config_path)
        except LarkpsError as exc:
            log.error("reload refused, keeping the running configuration: %s", str(exc))
            return
        self.settings = settings
        self._schedule()
        log.info("configuration reloaded from %s", self.config_path)

    # -- one cycle -----------------------------------------------------------
    def run_one_cycle(self) -> dict[str, Any]:
        """Run a cycle, record and log its report; never raises."""
        with self.cycle_lock:
            settings = self.settings
            started = int(self.clock())
            report: RunReport | None = None
            error: LarkpsError | str | None = None
            try:
                context = DaemonContext(sequence=self.cycles_done, started=self.started_at)
                report = self.cycle(settings, started, daemon=context).report
            except LarkpsError as exc:
                error = exc
            except Exception as exc:  # a bug in one cycle must not kill the daemon
                log.exception("cycle failed unexpectedly")
                error = f"internal error: {type(exc).__name__}: {exc}"
            names = [a.name for a in settings.archives]
            document = runlog.report_document(report, started, error, "run", names)
            _log_cycle(document, report)
            self._record(settings, document)
            self.cycles_done += 1
            release_free_memory()
            return document

    def _record(self, settings: Settings, document: dict[str, Any]) -> None:
        self.metrics.observe(document)
        try:
            runlog.save(settings.state_dir, document)
        except LarkpsError as exc:
            log.error("cannot record the run report: %s", str(exc))


def cycle_line(document: dict[str, Any]) -> str:
    """The one-line account of a cycle in the log."""
    if not document["ok"]:
        return f"cycle failed: {document['error']}"
    outcome = "partial" if document.get("partial") else "ok"
    problems = len(document.get("problems", [])) + len(document.get("publish_problems", []))
    answered = len(document.get("archives", []))
    polled = answered + len(document.get("archives_failed", {}))
    parts = [
        f"{answered}/{polled} archives answered",
        f"{document.get('paths', 0)} paths",
        f"{document.get('points', 0)} points ({document.get('ingested', 0)} new)",
        f"{document.get('ads_written', 0)} ads",
        f"{document.get('duration_s', 0.0):.1f} s",
    ]
    if problems:
        parts.append(f"{problems} problem{'' if problems == 1 else 's'}")
    if document.get("skipped"):
        parts.append(f"not due: {', '.join(document['skipped'])}")
    return f"cycle {outcome}: {', '.join(parts)}"


def _log_cycle(document: dict[str, Any], report: RunReport | None) -> None:
    fields = {"event": "cycle", **document}
    level = logging.INFO if document["ok"] else logging.ERROR
    log.log(level, "%s", cycle_line(document), extra={"fields": fields})
    problems = (report.problems + report.publish_problems) if report is not None else ()
    for line in problem_lines(problems):
        log.warning("%s", line)
