"""Build and serialise 10,000 path ads; compare with bare classad2 in the same run.

Baseline: the very attribute dictionaries larkps hands to the ClassAd library
(:func:`larkps.publish.ads.path_attributes`, built once before timing) turned into ads
with ``classad2.ClassAd(dict)`` and printed with ``printOld()``, the cheapest way
the library offers. larkps: ``render_old`` over ``path_ad`` for every PathStats,
which also builds those dictionaries (names checked, untrusted text cleaned, units
converted). Goal (issue #5): larkps <= 1.3x the baseline.

Two ad shapes: ``main`` (one window, 42 attributes) and ``full`` (three windows plus
health, alarms and the bandwidth estimate, as the daemon publishes them). Two ways
to call: ``stream`` (a generator: each ad printed, then freed, like the baseline)
and ``kept`` (a list of ads first, as the pipeline does to publish the same ads to
several targets).

    .venv/bin/python bench/bench_ads.py [--ads 10000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import replace

import classad2

from larkps.model import (
    BandwidthEstimate,
    Family,
    LossSummary,
    PathKey,
    PathStats,
    Provenance,
    Quality,
    Summary,
)
from larkps.publish.ads import AdContext, PathExtras, path_ad, path_attributes, render_old

CONTEXT = AdContext(update_time=1_795_000_000, lifetime=900, sequence=7, daemon_start=1_794_000_000)


def synthetic_stats(count: int, seed: int = 1) -> list[PathStats]:
    rng = random.Random(seed)
    result = []
    for i in range(count):
        tp = rng.uniform(1e8, 9.4e9)
        owd = rng.uniform(1, 80)
        result.append(
            PathStats(
                path=PathKey(f"SITE-{i // 100:04d}", f"SITE-{i % 100:04d}", Family.IPV4),
                window=86400,
                window_end=CONTEXT.update_time,
                throughput=Summary(
                    12, tp, tp * 0.8, tp * 1.05, tp, tp * 0.6, tp * 1.1, 1_794_999_000
                ),
                owdelay=Summary(
                    1440, owd, owd - 0.1, owd + 0.4, owd, owd - 0.2, owd + 9, 1_794_999_960
                ),
                rtt=Summary(
                    144,
                    2 * owd,
                    2 * owd - 0.1,
                    2 * owd + 1,
                    2 * owd,
                    2 * owd - 0.2,
                    2 * owd + 5,
                    1_794_999_400,
                ),
                loss=LossSummary(1440, 864000, rng.randint(0, 500), 1_794_999_960),
                failures=rng.randint(0, 2),
                hosts=(
                    f"ps-lat.site-{i // 100:04d}.example.org",
                    f"ps-bw.site-{i % 100:04d}.example.org",
                ),
            )
        )
    return result


def full_extras(stats: list[PathStats]) -> list[PathExtras]:
    """What the daemon adds to each path ad: two more windows, health, alarms, estimate."""
    quality = Quality(samples=1400, expected=1440.0, completeness=0.972, age=40, stale=False)
    result = []
    for s in stats:
        other = tuple(
            replace(
                s,
                window=window,
                throughput=replace(s.throughput, quality=quality),
                owdelay=replace(s.owdelay, quality=quality),
                loss=replace(s.loss, quality=quality),
            )
            for window in (3600, 604800)
        )
        median = s.throughput.median or 0.0
        estimate = BandwidthEstimate(
            s.path, median, median * 0.1, Provenance.FORECAST, False, 0.97, 1_794_999_000, "ewma"
        )
        result.append(PathExtras(0.93, ("loss",), estimate, other))
    return result


def larkps_stream(stats: list[PathStats], extras: list[PathExtras | None]) -> str:
    ads = (path_ad(s, CONTEXT, e) for s, e in zip(stats, extras, strict=True))
    return render_old(ads, CONTEXT.update_time)


def larkps_kept(stats: list[PathStats], extras: list[PathExtras | None]) -> str:
    ads = [path_ad(s, CONTEXT, e) for s, e in zip(stats, extras, strict=True)]
    return render_old(ads, CONTEXT.update_time)


def baseline_stream(dicts: list[dict[str, object]]) -> str:
    return "\n".join(classad2.ClassAd(d).printOld() for d in dicts)


def baseline_kept(dicts: list[dict[str, object]]) -> str:
    ads = [classad2.ClassAd(d) for d in dicts]
    return "\n".join(ad.printOld() for ad in ads)


def seconds(action: Callable[[], object]) -> float:
    """Wall time of one call; the cyclic GC is off while timing, as timeit does."""
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        action()
        return time.perf_counter() - started
    finally:
        gc.enable()


def interleaved(
    ours: Callable[[], object], base: Callable[[], object], repeat: int
) -> tuple[float, float, float]:
    """Median times of both sides and the median of per-round ratios.

    The two sides alternate round by round, so load from other processes hits both
    alike; one untimed round first warms caches (name and text caches, allocator).
    """
    ours()
    base()
    rounds = [(seconds(ours), seconds(base)) for _ in range(repeat)]
    return (
        statistics.median(o for o, _ in rounds),
        statistics.median(b for _, b in rounds),
        statistics.median(o / b for o, b in rounds),
    )


def compare(
    label: str, stats: list[PathStats], extras: list[PathExtras | None], repeat: int
) -> None:
    # The baseline gets exactly the dicts larkps passes to classad2.ClassAd.
    dicts = [path_attributes(s, CONTEXT, e) for s, e in zip(stats, extras, strict=True)]
    attrs = sum(len(d) for d in dicts) / len(dicts)
    print(f"{label}: {len(stats)} path ads, {attrs:.0f} attributes each, {repeat} rounds")
    for way, ours_fn, base_fn in (
        ("stream", larkps_stream, baseline_stream),
        ("kept", larkps_kept, baseline_kept),
    ):
        ours, base, ratio = interleaved(
            lambda f=ours_fn: f(stats, extras),  # type: ignore[misc]
            lambda f=base_fn: f(dicts),  # type: ignore[misc]
            repeat,
        )
        print(
            f"  {way:6} larkps {ours:.3f} s ({len(stats) / ours:,.0f} ads/s)  "
            f"classad2 {base:.3f} s ({len(stats) / base:,.0f} ads/s)  "
            f"ratio {ratio:.2f}x (goal <= 1.3x)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ads", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    stats = synthetic_stats(args.ads)
    compare("main window", stats, [None] * len(stats), args.repeat)
    compare("full (3 windows + extras)", stats, list(full_extras(stats)), args.repeat)


if __name__ == "__main__":
    main()
