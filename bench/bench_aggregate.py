"""Aggregation benchmarks (issue #4), each engine in its own process for its own peak RSS.

1. Group-by: 10M synthetic rows (7,000 pairs x 1,440 one-minute results, pair-major,
   ts jittered inside the minute) aggregated over 24 h: count, mean, population std,
   min, max, p10/p25/p50/p75/p90/p95, newest ts and its value per pair, with
   larkps's columnar core (``larkps.stats.aggregate.grouped_stats``, the code path of
   every scalar figure) and with DuckDB on the same rows (native table, SQL with
   ``quantile_cont``), each engine on 1 and 2 threads. Goal: larkps <= 1.5x DuckDB.
2. Steady-state cycle: rollups in a SQLite store holding 7 days of synthetic latency
   (one-minute 20-bucket delay histograms, loss counts) and throughput streams; the
   time of one 5-minute cycle (``update_rollups`` + ``window_stats``) with a 7-day
   window against the same with a 1-hour window. Goal: ratio <= 1.5.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/bench_aggregate.py [--pairs 7000] [--minutes 1440] [--streams 100]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

END = 1_795_000_000 // 3600 * 3600 + 1800  # half past an hour
DAY = 86400
QUANTILES = [0.1, 0.25, 0.5, 0.75, 0.9, 0.95]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_rows(pairs: int, minutes: int, seed: int = 1) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    group = np.repeat(np.arange(pairs, dtype=np.int64), minutes)
    start = END - DAY
    ts = start + 60 * np.tile(np.arange(minutes, dtype=np.int64), pairs)
    ts += rng.integers(1, 60, size=ts.size)
    level = np.repeat(rng.uniform(1.0, 80.0, pairs), minutes)
    value = level * rng.lognormal(0.0, 0.1, size=ts.size)
    return group, ts, value


def timed(repeat: int, run) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        began = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - began)
    return statistics.median(times), result


def worker_larkps(args: argparse.Namespace) -> dict[str, object]:
    from larkps.stats.aggregate import grouped_stats

    group, ts, value = make_rows(args.pairs, args.minutes)
    threads = int(args.threads)
    seconds, stats = timed(
        args.repeat, lambda: grouped_stats(group, ts, value, END - DAY, END, threads=threads)
    )
    median_sum = float(stats.quantiles[:, 2].sum())  # type: ignore[attr-defined]
    p95_sum = float(stats.quantiles[:, 5].sum())  # type: ignore[attr-defined]
    return {"seconds": seconds, "groups": len(stats), "median_sum": median_sum, "p95_sum": p95_sum}


def worker_duckdb(args: argparse.Namespace) -> dict[str, object]:
    import duckdb
    import pandas as pd

    group, ts, value = make_rows(args.pairs, args.minutes)
    con = duckdb.connect()
    con.execute(f"SET threads = {int(args.threads)}")
    frame = pd.DataFrame({"g": group, "ts": ts, "v": value})
    con.register("frame", frame)
    con.execute("CREATE TABLE t AS SELECT * FROM frame")
    con.unregister("frame")
    del frame
    query = (
        "SELECT g, count(*), avg(v), stddev_pop(v), min(v), max(v), "
        f"quantile_cont(v, {QUANTILES}), max(ts), arg_max(v, ts) "
        "FROM t WHERE ts > ? AND ts <= ? GROUP BY g"
    )
    seconds, rows = timed(args.repeat, lambda: con.execute(query, [END - DAY, END]).fetchall())
    return {
        "seconds": seconds,
        "groups": len(rows),  # type: ignore[arg-type]
        "median_sum": float(sum(r[6][2] for r in rows)),  # type: ignore[union-attr]
        "p95_sum": float(sum(r[6][5] for r in rows)),  # type: ignore[union-attr]
    }


def latency_points(index: int, start: int, end: int):
    """One-minute 20-bucket histograms of 600 packets for stream ``index`` in (start, end]."""
    from larkps.histogram import histogram_of
    from larkps.model import Point

    rng = np.random.default_rng(index * 1_000_003 + start)
    minutes = np.arange(start // 60 + 1, end // 60 + 1, dtype=np.int64)
    base = 5.0 + (index % 70)
    owd, lost, sent = [], [], []
    for minute in minutes.tolist():
        ts = minute * 60 - 7
        if ts <= start or ts > end:
            continue
        centre = base + 0.5 * np.sin(minute / 240.0) + rng.normal(0, 0.05)
        values = np.round(centre + 0.01 * np.arange(20) + rng.normal(0, 0.02), 2)
        counts = rng.multinomial(600, np.full(20, 1 / 20))
        buckets = histogram_of(zip(values.tolist(), counts.tolist(), strict=True))
        owd.append(Point(ts, histogram=buckets))
        dropped = int(rng.poisson(0.3))
        lost.append(Point(ts, value=float(dropped)))
        sent.append(Point(ts, value=600.0))
    return owd, lost, sent


def cycle_series(streams: int):
    from larkps.model import Endpoint, Family, Metric, Series, SeriesKey

    def one(i: int, metric: Metric, event: str) -> Series:
        return Series(
            SeriesKey("bench", f"k{i:05d}", event),
            Endpoint(f"ps.s{i % 40}.example", "192.0.2.1", f"S{i % 40}"),
            Endpoint(f"ps.d{i}.example", "192.0.2.2", f"D{i}"),
            Family.IPV4,
            metric,
            "bench",
            "/x",
        )

    return [
        (
            one(i, Metric.OWDELAY, "histogram-owdelay"),
            one(i, Metric.PACKETS_LOST, "packet-count-lost"),
            one(i, Metric.PACKETS_SENT, "packet-count-sent"),
            one(i, Metric.THROUGHPUT, "throughput"),
        )
        for i in range(streams)
    ]


def batch(series, start: int, end: int):
    from larkps.model import Point

    out = []
    for i, (owd, lost, sent, tp) in enumerate(series):
        h, lo, se = latency_points(i, start, end)
        out += [(owd, h), (lost, lo), (sent, se)]
        tests = [
            Point(t, value=1e9 + 1e6 * (t % 97))
            for t in range(start // 7200 * 7200 + 7200 + i, end + 1, 7200)
            if t > start
        ]
        out.append((tp, tests))
    return out


def worker_cycle(args: argparse.Namespace) -> dict[str, object]:
    from larkps.stats.rollups.store import update_rollups
    from larkps.stats.rollups.views import sites_as_mapped, window_stats
    from larkps.store.db import Store

    windows = (args.window,)
    series = cycle_series(args.streams)
    sites = sites_as_mapped(s for group in series for s in group)
    first = END - 3600 - args.history
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "bench.sqlite") as store:
        for lo in range(first, END - 3600, DAY):
            hi = min(lo + DAY, END - 3600)
            update_rollups(store, batch(series, lo, hi), hi, windows)
        times = []
        for k in range(args.cycles):
            lo, hi = END - 3600 + 300 * k, END - 3600 + 300 * (k + 1)
            new = batch(series, lo, hi)  # built outside the timing: the fetch half's work
            began = time.perf_counter()
            update_rollups(store, new, hi, windows)
            window_stats(store, windows, hi, sites=sites)
            times.append(time.perf_counter() - began)
        size = sum(p.stat().st_size for p in Path(tmp).iterdir())
    return {
        "mean": statistics.mean(times),
        "median": statistics.median(times),
        "max": max(times),
        "store_mib": size / 2**20,
    }


def run_worker(kind: str, args: argparse.Namespace, **extra: object) -> dict[str, object]:
    command = [sys.executable, __file__, "--worker", kind]
    for key, value in {**vars(args), **extra}.items():
        if key != "worker" and value is not None:
            command += [f"--{key}", str(value)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=7000)
    parser.add_argument("--minutes", type=int, default=1440)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--cycles", type=int, default=24)
    parser.add_argument("--history", type=int, default=7 * DAY)
    parser.add_argument("--window", type=int, default=3600)
    parser.add_argument("--part", choices=("all", "groupby", "cycle"), default="all")
    parser.add_argument("--worker", default=None)
    args = parser.parse_args()
    if args.worker:
        workers = {"larkps": worker_larkps, "duckdb": worker_duckdb, "cycle": worker_cycle}
        result = workers[args.worker](args)
        result["peak_rss_mib"] = round(peak_rss_mib(), 1)
        print(json.dumps(result))
        return
    part = args.part
    del args.part
    if part in ("all", "groupby"):
        groupby(args)
    if part in ("all", "cycle"):
        cycle(args)


def groupby(args: argparse.Namespace) -> None:
    rows = args.pairs * args.minutes
    print(f"group-by over 24 h: {rows:,} rows, {args.pairs:,} pairs, median of {args.repeat}")
    results = {}
    for threads in (1, 2):
        results[f"larkps (numpy, {threads} threads)"] = run_worker("larkps", args, threads=threads)
    for threads in (1, 2):
        results[f"duckdb ({threads} threads)"] = run_worker("duckdb", args, threads=threads)
    base = results["duckdb (2 threads)"]["seconds"]
    print(
        "| engine | seconds | rows/s | peak RSS MiB | ratio to duckdb-2t | median sum | p95 sum |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r['seconds']:.3f} | {rows / r['seconds'] / 1e6:.1f} M | "
            f"{r['peak_rss_mib']:.0f} | {r['seconds'] / base:.2f} | "
            f"{r['median_sum']:.6e} | {r['p95_sum']:.6e} |"
        )


def cycle(args: argparse.Namespace) -> None:
    print(
        f"steady-state cycle: {args.streams} latency + loss + throughput streams, "
        f"{args.history // DAY} days of history, {args.cycles} cycles of 5 min"
    )
    print("| window | mean s/cycle | median | max | store MiB | peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    found = {}
    for window in (3600, 7 * DAY):
        r = run_worker("cycle", args, window=window)
        found[window] = r
        label = "1 h" if window == 3600 else "7 d"
        print(
            f"| {label} | {r['mean']:.4f} | {r['median']:.4f} | {r['max']:.4f} | "
            f"{r['store_mib']:.0f} | {r['peak_rss_mib']:.0f} |"
        )
    ratio = found[7 * DAY]["mean"] / found[3600]["mean"]
    print(f"ratio 7 d / 1 h (mean per cycle): {ratio:.2f}")


if __name__ == "__main__":
    main()
