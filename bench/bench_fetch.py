"""Fetch benchmark: larkps's incremental ingest against aiohttp on the same requests.

The embedded archive runs in its own process (its clock pinned, hour-long blocks,
its block cache big enough to hold the window of the whole mesh) and is warmed once:
``warm`` discovers the series and GETs every data URL once (JsonClient, nothing
stored), so the archive has generated every block before anything is timed. Then,
each in a fresh process so that peak RSS is its own:

* ``discover`` (not timed): the series listed into an empty store; then the archive
  collects and freezes its heap again, so the garbage of listing 20,000 series is not
  collected during the next phase;
* ``ingest``: one cold cycle on that store, a backfill of ``--window`` (fetch, parse,
  SQLite, new points kept: everything a daemon cycle does);
* ``transport``: the same data requests through larkps's JsonClient only (threads);
* ``aiohttp``: the same data requests with aiohttp (ClientSession, TCPConnector limit
  = connections) and ``json.loads``, nothing stored;
* ``steady``: the archive clock moves 5 minutes; one incremental cycle on that store
  (twice: +5 and +10 minutes).

Ingest, transport and aiohttp run ``--rounds`` times, alternating, and each ratio is
the median of the per-round ratios (one run's figures move by 10-20 %). The
archive's CPU time in each phase shows whether the server is the bottleneck;
``cpu_s`` is the client process's own CPU time (imports included; the writer
process of a big cycle is not in it).

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/bench_fetch.py --sites 25 --sites 101
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing as mp
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

DAY = 86400
T = 1_700_000_000 // DAY * DAY + DAY // 2  # noon UTC: a 1 h window stays in one day block
EVENTS = ("histogram-owdelay", "packet-loss-rate")
CONNECTIONS = 16


# -- the archive process ---------------------------------------------------------------
def serve(sites: int, clock: Any, ready: Any, stop: Any) -> None:
    from larkps.embedded import EmbeddedArchive, Mesh, MeshConfig

    # Hour blocks: a 1 h window at noon needs 2 per series (day blocks: 12x the work).
    config = MeshConfig(sites=sites, seed=1, cache_blocks=4 * sites * sites, block_seconds=3600)
    mesh = Mesh(config)
    with EmbeddedArchive(mesh, clock=lambda: clock.value) as archive:
        ready.send(archive.url)
        while not stop.is_set():
            if ready.poll(0.2) and ready.recv() == "settle":
                settle()
                ready.send("settled")


def settle() -> None:
    """Collect and freeze the archive's heap once its blocks are generated: otherwise
    the first phase after the warm-up paid for the archive's full collections over the
    block cache (the ingest, measured first, lost 2-4 s at 10,000 pairs)."""
    gc.collect()
    gc.freeze()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- phases, each run in its own process -------------------------------------------------
def sources(url: str):
    from larkps.config.sites import SiteMap
    from larkps.model import Family
    from larkps.sources import EsmondSource, HttpOptions, JsonClient, MetadataFilters

    client = JsonClient("bench", HttpOptions(max_connections=CONNECTIONS, read_timeout=120))
    filters = MetadataFilters(families=(Family.IPV4,))
    return EsmondSource("bench", url, client, SiteMap(), filters=filters, event_types=EVENTS)


def bench_plan(url: str):  # type: ignore[no-untyped-def]
    """The bench's one archive and what to take from it, as a cycle plans it."""
    from larkps.ingest.runner import ArchivePlan

    source = sources(url)
    return ArchivePlan(source, EVENTS, repr(source.filters))


def phase_warm(url: str, now: int, window: int, urls_file: str) -> dict[str, Any]:
    """Discover, write the data URLs, GET each once: the archive generates its blocks."""
    source = sources(url)
    started = time.monotonic()
    found = source.discover(EVENTS, now - window)
    discovery = time.monotonic() - started
    urls = [
        f"{source.url.rstrip('/')}{s.data_uri[len('/esmond/perfsonar/archive') :]}"
        f"?time-start={now - window}&time-end={now}&limit=10000"
        for s in found
    ]
    Path(urls_file).write_text("\n".join(urls))
    result = phase_transport(urls_file)
    return result | {"discovery_s": round(discovery, 2), "series": len(found)}


def phase_discover(url: str, state: str, now: int, window: int) -> dict[str, Any]:
    """List the series into an empty store, as a cycle's discovery would (not timed)."""
    from larkps.ingest.runner import discovery_query
    from larkps.store.db import Store
    from larkps.store.points import IngestStore

    plan = bench_plan(url)
    with Store.in_directory(Path(state)) as store:
        started = time.monotonic()
        found = plan.source.discover(EVENTS, now - window)
        IngestStore(store).save_discovery("bench", discovery_query(plan), now, found)
    return {"discovery_s": round(time.monotonic() - started, 2), "series": len(found)}


def phase_ingest(url: str, state: str, now: int, window: int) -> dict[str, Any]:
    """One cold cycle on the discovered store: every series' window is new."""
    from larkps.ingest.runner import Ingester, IngestOptions
    from larkps.store.db import Store
    from larkps.store.points import IngestStore

    plan = bench_plan(url)
    with Store.in_directory(Path(state)) as store:
        started = time.monotonic()
        report = Ingester(IngestStore(store), IngestOptions()).cycle([plan], now, now - window)
        wall = time.monotonic() - started
    return _result(report.requests, report.points, wall, problems=len(report.problems))


def phase_steady(url: str, state: str, now: int, window: int) -> dict[str, Any]:
    from larkps.ingest.runner import Ingester, IngestOptions
    from larkps.store.db import Store
    from larkps.store.points import IngestStore

    plan = bench_plan(url)
    started = time.monotonic()
    with Store.in_directory(Path(state)) as store:
        report = Ingester(IngestStore(store), IngestOptions()).cycle([plan], now, now - window)
    wall = time.monotonic() - started
    return _result(report.requests, report.points, wall, problems=len(report.problems))


def phase_transport(urls_file: str) -> dict[str, Any]:
    from larkps.sources import HttpOptions, JsonClient

    urls = Path(urls_file).read_text().split()
    client = JsonClient("bench", HttpOptions(max_connections=CONNECTIONS, read_timeout=120))
    started = time.monotonic()
    with ThreadPoolExecutor(CONNECTIONS) as pool:
        points = sum(len(page) for page in pool.map(client.get, urls))
    return _result(len(urls), points, time.monotonic() - started)


def phase_aiohttp(urls_file: str) -> dict[str, Any]:
    import aiohttp

    urls = Path(urls_file).read_text().split()

    async def run() -> int:
        connector = aiohttp.TCPConnector(limit=CONNECTIONS)
        async with aiohttp.ClientSession(connector=connector) as session:
            queue: asyncio.Queue[str] = asyncio.Queue()
            for url in urls:
                queue.put_nowait(url)
            counts = [0] * CONNECTIONS

            async def worker(i: int) -> None:
                while not queue.empty():
                    async with session.get(queue.get_nowait()) as response:
                        counts[i] += len(json.loads(await response.read()))

            await asyncio.gather(*(worker(i) for i in range(CONNECTIONS)))
            return sum(counts)

    started = time.monotonic()
    points = asyncio.run(run())
    return _result(len(urls), points, time.monotonic() - started)


def _result(requests: int, points: int, wall: float, **extra: Any) -> dict[str, Any]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss = usage.ru_maxrss / 1024
    return {
        "requests": requests,
        "points": points,
        "wall_s": round(wall, 2),
        "req_per_s": round(requests / wall, 1),
        "points_per_s": round(points / wall, 1),
        "peak_rss_mib": round(rss, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),  # the whole process, imports too
        **extra,
    }


def run_phase(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--phase", *args], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.splitlines()[-1])


# -- driver ---------------------------------------------------------------------------
def bench_mesh(sites: int, window: int, rounds: int) -> None:
    clock = mp.Value("d", float(T))
    ready, remote = mp.Pipe()
    stop = mp.Event()
    server = mp.Process(target=serve, args=(sites, clock, remote, stop), daemon=True)
    server.start()
    url = ready.recv()
    with tempfile.TemporaryDirectory() as tmp:
        urls = f"{tmp}/urls.txt"
        warm = measured(server, "warm", url, str(T), str(window), urls)
        settle_archive(ready)
        print(f"sites={sites}: {warm['series']} series; warm-up (generates the blocks) {warm}")
        ratios: dict[str, list[float]] = {"ingest": [], "transport": []}
        for n in range(rounds):  # the phases alternate, so load hits them alike
            state = f"{tmp}/state{n}"
            found = measured(server, "discover", url, state, str(T), str(window))
            settle_archive(ready)  # discovery's garbage is not the ingest's to collect
            print(f"  round {n + 1} discover  {found}")
            results = {}
            for name, args in (
                ("ingest", [url, state, str(T), str(window)]),
                ("transport", [urls]),
                ("aiohttp", [urls]),
            ):
                results[name] = measured(server, name, *args)
                print(f"  round {n + 1} {name:9s} {results[name]}")
            for name in ratios:
                ratios[name].append(results["aiohttp"]["wall_s"] / results[name]["wall_s"])
        for step in (300, 600):
            clock.value = float(T + step)
            steady = measured(server, "steady", url, state, str(T + step), str(window))
            print(f"  steady +{step // 60} min {steady}")
    for name, values in ratios.items():
        each = ", ".join(f"{v:.2f}" for v in values)
        print(f"  ratio {name}/aiohttp (req/s): median {statistics.median(values):.2f} ({each})")
    stop.set()
    server.join(10)


def settle_archive(ready: Any) -> None:
    ready.send("settle")
    ready.recv()


def measured(server: mp.Process, *args: str) -> dict[str, Any]:
    """Run one phase; add the archive's CPU time during it."""
    before = cpu_seconds(server.pid or 0)
    result = run_phase(*args)
    result["archive_cpu_s"] = round(cpu_seconds(server.pid or 0) - before, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sites", type=int, action="append")
    parser.add_argument("--window", type=int, default=3600)
    parser.add_argument("--rounds", type=int, default=3, help="ingest/transport/aiohttp rounds")
    parser.add_argument("--phase", nargs="+")
    args = parser.parse_args()
    if args.phase:
        name, *rest = args.phase
        phases = {
            "warm": lambda: phase_warm(rest[0], int(rest[1]), int(rest[2]), rest[3]),
            "discover": lambda: phase_discover(rest[0], rest[1], int(rest[2]), int(rest[3])),
            "ingest": lambda: phase_ingest(rest[0], rest[1], int(rest[2]), int(rest[3])),
            "steady": lambda: phase_steady(rest[0], rest[1], int(rest[2]), int(rest[3])),
            "transport": lambda: phase_transport(rest[0]),
            "aiohttp": lambda: phase_aiohttp(rest[0]),
        }
        print(json.dumps(phases[name]()))
        return
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, connections {CONNECTIONS}")
    for sites in args.sites or [25]:
        bench_mesh(sites, args.window, args.rounds)


if __name__ == "__main__":
    main()
