"""Build and serialise 10,000 path ads; compare with bare classad2 in the same run.

Baseline: the same attribute dictionaries turned into ads with
``classad2.ClassAd(dict)`` and printed with ``printOld()``, which is the cheapest
way the ClassAd library offers. Goal (issue #5): larkps <= 1.3x the baseline.

    .venv/bin/python bench/bench_ads.py [--ads 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from collections.abc import Callable

import classad2

from larkps.model import Family, LossSummary, PathKey, PathStats, Summary
from larkps.publish import AdContext, path_ad, render_old

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


def larkps_build(stats: list[PathStats]) -> str:
    return render_old([path_ad(s, CONTEXT) for s in stats], CONTEXT.update_time)


def baseline_build(dicts: list[dict[str, object]]) -> str:
    return "\n".join(classad2.ClassAd(d).printOld() for d in dicts)


def median_seconds(action: Callable[[], object], repeat: int) -> tuple[float, list[float]]:
    """Median wall time; the cyclic GC is off while timing, as timeit does, for both sides."""
    runs = []
    for _ in range(repeat):
        gc.collect()
        gc.disable()
        try:
            started = time.perf_counter()
            action()
            runs.append(time.perf_counter() - started)
        finally:
            gc.enable()
    return statistics.median(runs), runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ads", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    stats = synthetic_stats(args.ads)
    # The baseline gets exactly the attributes larkps produces, as plain dicts.
    dicts = [dict(path_ad(s, CONTEXT).items()) for s in stats]
    attrs = sum(len(d) for d in dicts) / len(dicts)
    ours, our_runs = median_seconds(lambda: larkps_build(stats), args.repeat)
    base, base_runs = median_seconds(lambda: baseline_build(dicts), args.repeat)
    print(f"{args.ads} path ads, {attrs:.0f} attributes each, median of {args.repeat} runs")
    print(
        f"larkps path_ad + render_old : {ours:.3f} s  ({args.ads / ours:,.0f} ads/s)  "
        f"runs {[round(r, 3) for r in our_runs]}"
    )
    print(
        f"classad2.ClassAd(dict)+printOld: {base:.3f} s  ({args.ads / base:,.0f} ads/s)  "
        f"runs {[round(r, 3) for r in base_runs]}"
    )
    print(f"ratio larkps / baseline: {ours / base:.2f}x (goal <= 1.3x)")


if __name__ == "__main__":
    main()
