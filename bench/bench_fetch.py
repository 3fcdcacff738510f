"""Fetch benchmark: larkps's incremental ingest against aiohttp on the same requests.

The embedded archive runs in its own process (its clock pinned, its block cache big
enough to hold the whole mesh) and is warmed once. Then, each in a fresh process so
that peak RSS is its own:

* ``ingest``: discovery, then a cold backfill of ``--window`` into an empty store
  (parse + SQLite, everything larkps does);
* ``transport``: the same data requests through larkps's JsonClient only (threads);
* ``aiohttp``: the same data requests with aiohttp (ClientSession, TCPConnector limit
  = connections) and ``json.loads``, nothing stored;
* ``steady``: the archive clock moves 5 minutes; one incremental cycle on that store.

The archive's CPU time in each phase shows whether the server is the bottleneck.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/bench_fetch.py --sites 25 --sites 101
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import resource
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

    mesh = Mesh(MeshConfig(sites=sites, seed=1, cache_blocks=4 * sites * sites))
    with EmbeddedArchive(mesh, clock=lambda: clock.value) as archive:
        ready.send(archive.url)
        stop.wait()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- phases, each run in its own process -------------------------------------------------
def sources(url: str):
    from larkps.fetch import EsmondSource, HttpOptions, JsonClient, MetadataFilters
    from larkps.model import Family
    from larkps.sites import SiteMap

    client = JsonClient("bench", HttpOptions(max_connections=CONNECTIONS, read_timeout=120))
    filters = MetadataFilters(families=(Family.IPV4,))
    return EsmondSource("bench", url, client, SiteMap(), filters=filters, event_types=EVENTS)


def phase_ingest(url: str, state: str, now: int, window: int, urls_file: str) -> dict[str, Any]:
    from larkps.ingest import ArchivePlan, Ingester, IngestOptions
    from larkps.ingest_store import IngestStore
    from larkps.store import Store

    source = sources(url)
    plan = ArchivePlan(source, EVENTS, repr(source.filters))
    with Store.in_directory(Path(state)) as store:
        ingest = IngestStore(store)
        started = time.monotonic()
        found = source.discover(EVENTS, now - window)
        ingest.save_discovery("bench", json.dumps([sorted(EVENTS), plan.query]), now, found)
        discovery = time.monotonic() - started
        started = time.monotonic()
        report = Ingester(ingest, IngestOptions()).cycle([plan], now, now - window)
        wall = time.monotonic() - started
    Path(urls_file).write_text(
        "\n".join(
            f"{source.url.rstrip('/')}{s.data_uri[len('/esmond/perfsonar/archive') :]}"
            f"?time-start={now - window}&time-end={now}&limit=10000"
            for s in found
        )
    )
    return _result(report.requests, report.points, wall, discovery=discovery, series=len(found))


def phase_steady(url: str, state: str, now: int, window: int) -> dict[str, Any]:
    from larkps.ingest import ArchivePlan, Ingester, IngestOptions
    from larkps.ingest_store import IngestStore
    from larkps.store import Store

    source = sources(url)
    plan = ArchivePlan(source, EVENTS, repr(source.filters))
    started = time.monotonic()
    with Store.in_directory(Path(state)) as store:
        report = Ingester(IngestStore(store), IngestOptions()).cycle([plan], now, now - window)
    wall = time.monotonic() - started
    return _result(report.requests, report.points, wall, problems=len(report.problems))


def phase_transport(urls_file: str) -> dict[str, Any]:
    from larkps.fetch import HttpOptions, JsonClient

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
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "requests": requests,
        "points": points,
        "wall_s": round(wall, 2),
        "req_per_s": round(requests / wall, 1),
        "points_per_s": round(points / wall, 1),
        "peak_rss_mib": round(rss, 1),
        **extra,
    }


def run_phase(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--phase", *args], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.splitlines()[-1])


# -- driver ---------------------------------------------------------------------------
def bench_mesh(sites: int, window: int) -> None:
    clock = mp.Value("d", float(T))
    ready, remote = mp.Pipe()
    stop = mp.Event()
    server = mp.Process(target=serve, args=(sites, clock, remote, stop), daemon=True)
    server.start()
    url = ready.recv()
    with tempfile.TemporaryDirectory() as tmp:
        urls = f"{tmp}/urls.txt"
        args = (url, "{state}", str(T), str(window), urls)
        warm = run_phase("ingest", *[a.format(state=f"{tmp}/warm") for a in args])
        print(f"sites={sites}: {warm['series']} series; warm-up (generates the mesh) {warm}")
        results = {}
        for name, phase_args in (
            ("ingest", [a.format(state=f"{tmp}/state") for a in args]),
            ("transport", [urls]),
            ("aiohttp", [urls]),
        ):
            before = cpu_seconds(server.pid or 0)
            results[name] = run_phase(name, *phase_args)
            results[name]["archive_cpu_s"] = round(cpu_seconds(server.pid or 0) - before, 2)
            print(f"  {name:9s} {results[name]}")
        clock.value = float(T + 300)
        before = cpu_seconds(server.pid or 0)
        steady = run_phase("steady", url, f"{tmp}/state", str(T + 300), str(window))
        steady["archive_cpu_s"] = round(cpu_seconds(server.pid or 0) - before, 2)
        print(f"  steady    {steady}")
    base = results["aiohttp"]["req_per_s"]
    for name in ("ingest", "transport"):
        print(f"  ratio {name}/aiohttp (req/s): {results[name]['req_per_s'] / base:.2f}")
    stop.set()
    server.join(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sites", type=int, action="append")
    parser.add_argument("--window", type=int, default=3600)
    parser.add_argument("--phase", nargs="+")
    args = parser.parse_args()
    if args.phase:
        name, *rest = args.phase
        phases = {
            "ingest": lambda: phase_ingest(rest[0], rest[1], int(rest[2]), int(rest[3]), rest[4]),
            "steady": lambda: phase_steady(rest[0], rest[1], int(rest[2]), int(rest[3])),
            "transport": lambda: phase_transport(rest[0]),
            "aiohttp": lambda: phase_aiohttp(rest[0]),
        }
        print(json.dumps(phases[name]()))
        return
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, connections {CONNECTIONS}")
    for sites in args.sites or [25]:
        bench_mesh(sites, args.window)


if __name__ == "__main__":
    main()
