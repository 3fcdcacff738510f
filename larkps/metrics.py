"""Prometheus metrics of the daemon, on a registry of their own."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server


class DaemonMetrics:
    """Cycle duration, points ingested, errors by source, ads published, last success."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.cycle_seconds = Gauge(
            "larkps_cycle_duration_seconds", "Wall time of the last cycle", registry=self.registry
        )
        self.cycles = Counter(
            "larkps_cycles", "Cycles run, by outcome", ["outcome"], registry=self.registry
        )
        self.points = Counter(
            "larkps_points_ingested", "Measurement points read", registry=self.registry
        )
        self.errors = Counter(
            "larkps_source_errors", "Errors by archive", ["archive"], registry=self.registry
        )
        self.ads = Counter("larkps_ads_published", "Ads published", registry=self.registry)
        self.stage_seconds = Gauge(
            "larkps_stage_duration_seconds",
            "Wall time of each stage of the last cycle",
            ["stage"],
            registry=self.registry,
        )
        self.last_success = Gauge(
            "larkps_last_success_timestamp_seconds",
            "Start time of the last successful cycle",
            registry=self.registry,
        )

    def observe(self, document: dict[str, Any]) -> None:
        """Update the metrics from one run-report document (see larkps.runlog)."""
        self.cycle_seconds.set(float(document.get("duration_s", 0.0)))
        outcome = "failed" if not document["ok"] else "partial" if document.get("partial") else "ok"
        self.cycles.labels(outcome=outcome).inc()
        self.points.inc(int(document.get("points", 0)))
        self.ads.inc(int(document.get("ads_written", 0)))
        for problem in document.get("problems", []):
            self.errors.labels(archive=str(problem["archive"])).inc()
        for stage, seconds in document.get("stages", []):
            self.stage_seconds.labels(stage=str(stage)).set(float(seconds))
        if document["ok"]:
            self.last_success.set(float(document["started"]))

    def serve(self, address: str, port: int) -> None:
        """Expose /metrics over HTTP (127.0.0.1 by default)."""
        start_http_server(port, addr=address, registry=self.registry)
