"""Decoding and parsing pass through one gate: at most CPU_SLOTS fetch threads at a time."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

import larkps.sources.esmond.source as esmond
from larkps.config.sites import SiteMap
from larkps.embedded import EmbeddedArchive, Mesh, MeshConfig
from larkps.ingest.runner import ArchivePlan, Ingester, IngestOptions
from larkps.sources import EsmondSource, HttpOptions, JsonClient
from larkps.sources.http.gate import CPU_SLOTS
from larkps.store.db import Store
from larkps.store.points import IngestStore

NOW = 1_700_000_000 // 86400 * 86400 + 43200
EVENTS = ("histogram-owdelay", "packet-loss-rate")


def test_sixteen_fetch_threads_parse_at_most_cpu_slots_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = threading.Lock()
    seen = {"now": 0, "most": 0, "calls": 0}
    parse = esmond.parse_page

    def counted(*args: Any) -> Any:
        with lock:
            seen["now"] += 1
            seen["most"] = max(seen["most"], seen["now"])
            seen["calls"] += 1
        time.sleep(0.02)  # long enough for the other threads to pile up at the gate
        try:
            return parse(*args)
        finally:
            with lock:
                seen["now"] -= 1

    monkeypatch.setattr(esmond, "parse_page", counted)
    mesh = Mesh(MeshConfig(sites=4, seed=3))
    with EmbeddedArchive(mesh, clock=lambda: NOW) as archive, Store.in_directory(tmp_path) as db:
        client = JsonClient("gate", HttpOptions(max_connections=16))
        source = EsmondSource("gate", archive.url, client, SiteMap(), event_types=EVENTS)
        plan = ArchivePlan(source, EVENTS, "all")
        report = Ingester(IngestStore(db), IngestOptions()).cycle([plan], NOW, NOW - 3600)
    assert report.series > 16 and not report.problems
    assert seen["calls"] >= report.series
    assert 1 <= seen["most"] <= CPU_SLOTS
