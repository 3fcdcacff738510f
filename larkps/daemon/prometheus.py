"""Prometheus metrics of the daemon, on a registry of their own.

No ``_created`` series: one per counter and label set, doubling the output for a
figure (when the process first counted) no dashboard uses.
"""

from __future__ import annotations

import platform
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    start_http_server,
)

from larkps import __version__
from larkps.errors import LarkpsError

disable_created_metrics()  # type: ignore[no-untyped-call]


class DaemonMetrics:
    """Cycles and their stages, new points, errors and health per archive, ads, build."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.build = Gauge(
            "larkps_build_info",
            "larkps version and Python version (always 1)",
            ["version", "python"],
            registry=registry,
        )
        self.build.labels(version=__version__, python=platform.python_version()).set(1)
        self.cycle_seconds = Gauge(
            "larkps_cycle_duration_seconds", "Wall time of the last cycle", registry=registry
        )
        self.cycles = Counter(
            "larkps_cycles", "Cycles run, by outcome", ["outcome"], registry=registry
        )
        self.points = Counter(
            "larkps_points_ingested",
            "Measurement points new to the state (points already stored are not counted)",
            registry=registry,
        )
        self.errors = Counter(
            "larkps_source_errors",
            "Errors by archive (a series that failed, or the whole archive)",
            ["archive"],
            registry=registry,
        )
        self.archive_up = Gauge(
            "larkps_archive_up",
            "1 if the archive answered in the last cycle that polled it, else 0",
            ["archive"],
            registry=registry,
        )
        self.archive_success = Gauge(
            "larkps_archive_last_success_timestamp_seconds",
            "Start time of the last cycle in which the archive answered",
            ["archive"],
            registry=registry,
        )
        self.ads = Counter("larkps_ads_published", "Ads published", registry=registry)
        self.stage_seconds = Gauge(
            "larkps_stage_duration_seconds",
            "Wall time of each stage of the last cycle",
            ["stage"],
            registry=registry,
        )
        self.last_success = Gauge(
            "larkps_last_success_timestamp_seconds",
            "Start time of the last successful cycle",
            registry=registry,
        )

    def observe(self, document: dict[str, Any]) -> None:
        """Update the metrics from one run-report document (see larkps.store.runs)."""
        self.cycle_seconds.set(float(document.get("duration_s", 0.0)))
        outcome = "failed" if not document["ok"] else "partial" if document.get("partial") else "ok"
        self.cycles.labels(outcome=outcome).inc()
        self.points.inc(int(document.get("ingested", 0)))
        self.ads.inc(int(document.get("ads_written", 0)))
        for problem in document.get("problems", []):
            self.errors.labels(archive=str(problem["archive"])).inc()
        failed = document.get("archives_failed", {})
        if not document["ok"]:  # no report, so no problems: count each archive's failure
            for archive in failed:
                self.errors.labels(archive=str(archive)).inc()
        for archive in failed:
            self.archive_up.labels(archive=str(archive)).set(0)
        for archive in document.get("archives", []):
            self.archive_up.labels(archive=str(archive)).set(1)
            self.archive_success.labels(archive=str(archive)).set(float(document["started"]))
        for stage, seconds in document.get("stages", []):
            self.stage_seconds.labels(stage=str(stage)).set(float(seconds))
        if document["ok"]:
            self.last_success.set(float(document["started"]))

    def serve(self, address: str, port: int) -> None:
        """Expose /metrics over HTTP (127.0.0.1 by default)."""
        try:
            start_http_server(port, addr=address, registry=self.registry)
        except OSError as exc:
            where = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
            reason = exc.strerror or str(exc)
            raise LarkpsError(f"metrics: cannot listen on {where} ({reason})") from None
