"""How accurate the published forecast is: its MAE against every single predictor's, and
how often the truth fell inside its error bar.

Series: the embedded archive's (7 days of a 3-site mesh, seed 11, over HTTP as larkps
fetches it: every IPv4 throughput path and three latency series), the real esmond
responses in ../shared/samples/perfsonar (skipped, with a message, where absent), and
any ``--input FILE`` (a JSON object: series name -> list of values, oldest first).

Each series is replayed one step at a time: before value t, the NWS choice sees only
values before t (``larkps.stats.forecast.replay``'s rule); its forecast and error bar are
what larkps would have published then (the bar: recent MAE x the scale read off the
steps before). Coverage is the fraction of steps whose true
value lay within forecast +- bar (and +- 2 bars, and +- the unscaled MAE). On the
embedded throughput series, simulated jobs show the calibration at work. Prints Markdown.

    .venv/bin/python bench/forecast_accuracy.py [--no-embedded] [--samples DIR] [--input F]
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from larkps.config.calibration import CalibrationPolicy
from larkps.stats.calibration import Sample, calibrate
from larkps.stats.forecast import (
    PREDICTORS,
    bar_scale,
    chosen_ratios,
    errors,
    predictions,
    recent_errors,
)

NOW = 1_795_000_000 // 3600 * 3600
DAY = 86400
WARMUP = 10
JOB_FRACTION = 0.6  # simulated jobs achieve this fraction of a perfSONAR test's rate
JOB_NOISE = 0.15  # ... times exp(N(0, JOB_NOISE))
STEP_SECONDS = 2 * 3600  # one test (and one job) every two hours
SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples" / "perfsonar"
LATENCY_PICKS = (
    ("ALPHA-T2", "CHARLIE-T2", "owdelay"),
    ("CHARLIE-T2", "BRAVO-T1", "owdelay"),
    ("BRAVO-T1", "ALPHA-T2", "rtt"),
)


@dataclass(frozen=True, slots=True)
class Accuracy:
    """One series replayed: MAE of each predictor and of the choice, and coverage."""

    name: str
    steps: int
    single: dict[str, float]
    chosen: float
    inside_bar: int  # steps with |truth - forecast| <= the published bar (MAE x scale)
    inside_2bar: int  # ... <= 2 x the published bar
    inside_mae: int  # ... <= the plain MAE (the bar before it was scaled)
    jobs: tuple[float, float] | None  # simulated jobs' MAE before / after calibration

    @property
    def best_single(self) -> str:
        return min(self.single, key=lambda k: self.single[k])

    @property
    def ratio(self) -> float:
        best = self.single[self.best_single]
        return self.chosen / best if best > 0 else (1.0 if self.chosen == 0 else float("inf"))


def accuracy(name: str, values: NDArray[np.float64] | list[float], jobs: bool = False) -> Accuracy:
    """Replay `values`; at each step after WARMUP the choice and its bar use only the past."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size <= WARMUP + 1:
        raise ValueError(f"{name}: need more than {WARMUP + 1} values, got {x.size}")
    table, err = predictions(x), errors(x)
    mae = recent_errors(err)
    ratios = chosen_ratios(err, mae)
    picked, forecasts, inside_bar, inside_2bar, inside_mae = [], [], 0, 0, 0
    for t in range(WARMUP, x.size):
        best = int(np.nanargmin(mae[:, t]))
        bar = mae[best, t] * bar_scale(ratios[:t])
        miss = abs(x[t] - table[best, t])
        picked.append(miss)
        forecasts.append(table[best, t])
        inside_bar += bool(miss <= bar)
        inside_2bar += bool(miss <= 2 * bar)
        inside_mae += bool(miss <= mae[best, t])
    single = {p: float(np.mean(err[i, WARMUP:])) for i, p in enumerate(PREDICTORS)}
    chosen = float(np.mean(picked))
    simulated = simulated_jobs(name, x[WARMUP:], np.array(forecasts)) if jobs else None
    return Accuracy(
        name, x.size - WARMUP, single, chosen, inside_bar, inside_2bar, inside_mae, simulated
    )


def simulated_jobs(
    name: str, truth: NDArray[np.float64], forecasts: NDArray[np.float64]
) -> tuple[float, float]:
    """Jobs' MAE against the forecast before and after calibration, on a simulation.

    After each test a job completes on the path, achieving ``JOB_FRACTION`` of the
    test's rate with log-normal noise (jobs that read from disk, say); its sample
    (achieved, the forecast it was given) joins the path's calibration, which is
    computed by larkps's own code with the default policy, one cycle per step.
    """
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    achieved = truth * JOB_FRACTION * np.exp(rng.normal(0.0, JOB_NOISE, truth.size))
    policy = CalibrationPolicy(min_seconds=1)
    samples: list[Sample] = []
    ratio: float | None = None
    before, after = [], []
    for t in range(truth.size):
        now = t * STEP_SECONDS
        calibration = calibrate(samples, ratio, now, policy)
        ratio = calibration.ratio if calibration.applied else None
        before.append(abs(achieved[t] - forecasts[t]))
        after.append(abs(achieved[t] - calibration.ratio * forecasts[t]))
        if forecasts[t] > 0:
            samples.append(Sample(now, achieved[t] * 1e6, forecasts[t] * 1e6, None, 600))
    return float(np.mean(before)), float(np.mean(after))


def embedded_series() -> dict[str, NDArray[np.float64]]:
    """Per-test values of the embedded mesh's IPv4 series (Mbps, ms)."""
    from larkps.config.sites import SiteMap
    from larkps.embedded import EmbeddedArchive, Mesh, MeshConfig
    from larkps.model import Metric
    from larkps.pipeline import _mesh_rules
    from larkps.sources import EsmondSource, HttpOptions, JsonClient
    from larkps.stats.aggregate.history import point_histories

    mesh = Mesh(MeshConfig(sites=3, seed=11))
    events = ("throughput", "histogram-owdelay", "histogram-rtt")
    with EmbeddedArchive(mesh, clock=lambda: float(NOW)) as archive:
        client = JsonClient("accuracy", HttpOptions())
        try:
            source = EsmondSource(
                "accuracy", archive.url, client, SiteMap(_mesh_rules(mesh.site_map()))
            )
            found = [s for s in source.discover(events, NOW - 7 * DAY) if s.family.value == "ipv4"]
            data = []
            for number, series in enumerate(found, start=1):
                progress(f"fetching embedded series {number}/{len(found)}")
                data.append((series, source.fetch(series, NOW - 7 * DAY, NOW)))
        finally:
            client.close()
    picks = {(s, d, Metric(m)) for s, d, m in LATENCY_PICKS}
    out = {}
    for (path, metric), (_, values) in sorted(
        point_histories(data, NOW, limit=10**6).items(), key=lambda kv: kv[0][0].name
    ):
        key = (path.source_site, path.destination_site, metric)
        if path.family.value != "ipv4" or (metric is not Metric.THROUGHPUT and key not in picks):
            continue
        scale, unit = (1e-6, "Mbps") if metric is Metric.THROUGHPUT else (1.0, "ms")
        name = f"embedded {path.source_site}->{path.destination_site} {metric.value} ({unit})"
        out[name] = values[np.isfinite(values)] * scale
    return out


def sample_series(directory: Path) -> dict[str, NDArray[np.float64]]:
    """The real esmond responses: daily throughput averages and 5-minute delay medians."""
    throughput = json.loads(
        (directory / "esmond_data__throughput__averages_86400.json").read_text()
    )
    delay = json.loads(
        (directory / "esmond_data__histogram-owdelay__statistics_300.json").read_text()
    )
    return {
        "real throughput, daily averages (Mbps)": np.array(
            [p["val"] * 1e-6 for p in throughput], dtype=np.float64
        ),
        "real owdelay, 5-min medians (ms)": np.array(
            [p["val"]["median"] for p in delay], dtype=np.float64
        ),
    }


def progress(text: str) -> None:
    print(f"[forecast_accuracy] {text}", file=sys.stderr, flush=True)


def summary_table(results: list[Accuracy]) -> list[str]:
    lines = [
        "| series | steps | NWS MAE | best single (hindsight) | NWS / best | within +10 % |"
        " inside +-1 bar | inside +-2 bars | inside +-1 MAE (unscaled) |"
        " jobs' MAE, uncalibrated | jobs' MAE, calibrated |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        best = r.best_single
        jobs = ("n/a", "n/a") if r.jobs is None else (f"{r.jobs[0]:.3g}", f"{r.jobs[1]:.3g}")
        lines.append(
            f"| {r.name} | {r.steps} | {r.chosen:.3g} | {best} {r.single[best]:.3g} |"
            f" {r.ratio:.3f} | {'yes' if r.ratio <= 1.10 else '**no**'} |"
            f" {r.inside_bar / r.steps:.0%} ({r.inside_bar}) | {r.inside_2bar / r.steps:.0%} |"
            f" {r.inside_mae / r.steps:.0%} | {jobs[0]} | {jobs[1]} |"
        )
    return lines


def predictor_table(results: list[Accuracy]) -> list[str]:
    lines = [
        "| predictor | " + " | ".join(f"S{i}" for i in range(1, len(results) + 1)) + " |",
        "|---" * (len(results) + 1) + "|",
    ]
    for name in PREDICTORS:
        cells = []
        for r in results:
            mark = "**" if name == r.best_single else ""
            cells.append(f"{mark}{r.single[name]:.3g}{mark}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| NWS choice | " + " | ".join(f"{r.chosen:.3g}" for r in results) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-embedded", action="store_true", help="skip the embedded archive")
    parser.add_argument("--samples", type=Path, default=SAMPLES, help="the shared real samples")
    parser.add_argument("--input", type=Path, help="JSON: series name -> values")
    args = parser.parse_args(argv)
    series: dict[str, NDArray[np.float64]] = {}
    if not args.no_embedded:
        series |= embedded_series()
    if args.samples.is_dir():
        series |= sample_series(args.samples)
    else:
        progress(f"shared samples not present at {args.samples}: skipped")
    if args.input:
        loaded = json.loads(args.input.read_text())
        series |= {k: np.asarray(v, dtype=np.float64) for k, v in loaded.items()}
    results = []
    for number, (name, values) in enumerate(series.items(), start=1):
        progress(f"replaying {number}/{len(series)}: {name} ({values.size} values)")
        results.append(
            accuracy(name, values, jobs=name.startswith("embedded") and "throughput" in name)
        )
    print("\n".join(summary_table(results)))
    print()
    print("\n".join(f"S{i}: {r.name}" for i, r in enumerate(results, start=1)))
    print()
    print("\n".join(predictor_table(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
