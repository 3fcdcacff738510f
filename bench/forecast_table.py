"""The NWS choice against every single predictor on the embedded archive's series.

Fetches 7 days of a 3-site embedded mesh over HTTP (as larkps does), takes per-test
values (throughput in Mbps; the median of each delay histogram in ms) of a few
paths, replays each series one step at a time (``larkps.stats.forecast.replay``) and
prints, as a Markdown table, the mean absolute one-step error of each predictor and
of the NWS choice (the predictor with the lowest MAE over the previous 20 steps,
chosen before each value is seen).

    .venv/bin/python bench/forecast_table.py [--sites 3] [--seed 11] [--days 7]
"""

from __future__ import annotations

import argparse

import numpy as np

from larkps.config.sites import SiteMap
from larkps.embedded import EmbeddedArchive, Mesh, MeshConfig
from larkps.model import Metric
from larkps.pipeline import _mesh_rules
from larkps.sources import EsmondSource, HttpOptions, JsonClient
from larkps.stats.aggregate.history import point_histories
from larkps.stats.forecast import PREDICTORS, replay

NOW = 1_795_000_000 // 3600 * 3600
DAY = 86400
EVENTS = ("throughput", "histogram-owdelay", "histogram-rtt")
PICK = (
    ("ALPHA-T2", "BRAVO-T1", Metric.THROUGHPUT),
    ("BRAVO-T1", "CHARLIE-T2", Metric.THROUGHPUT),
    ("CHARLIE-T2", "ALPHA-T2", Metric.THROUGHPUT),
    ("ALPHA-T2", "CHARLIE-T2", Metric.OWDELAY),
    ("CHARLIE-T2", "BRAVO-T1", Metric.OWDELAY),
    ("BRAVO-T1", "ALPHA-T2", Metric.RTT),
)
UNITS = {Metric.THROUGHPUT: ("Mbps", 1e-6), Metric.OWDELAY: ("ms", 1.0), Metric.RTT: ("ms", 1.0)}


def fetch(sites: int, seed: int, days: int):
    mesh = Mesh(MeshConfig(sites=sites, seed=seed))
    with EmbeddedArchive(mesh, clock=lambda: float(NOW)) as archive:
        client = JsonClient("forecast", HttpOptions())
        try:
            source = EsmondSource(
                "forecast", archive.url, client, SiteMap(_mesh_rules(mesh.site_map()))
            )
            series = [
                s for s in source.discover(EVENTS, NOW - days * DAY) if s.family.value == "ipv4"
            ]
            return [(s, source.fetch(s, NOW - days * DAY, NOW)) for s in series]
        finally:
            client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=3)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--days", type=int, default=7)
    args = parser.parse_args()
    data = fetch(args.sites, args.seed, args.days)
    history = point_histories(data, NOW, limit=10**6)
    columns, results = [], []
    for src, dst, metric in PICK:
        found = [
            v
            for (p, m), (_, v) in history.items()
            if (p.source_site, p.destination_site, p.family.value, m) == (src, dst, "ipv4", metric)
        ]
        if not found:
            continue
        unit, scale = UNITS[metric]
        values = found[0][np.isfinite(found[0])] * scale
        columns.append(f"{src[0]}->{dst[0]} {metric.value} ({unit}, n={values.size})")
        results.append(replay(values))
    print("| predictor | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name in PREDICTORS:
        cells = []
        for r in results:
            mark = "**" if name == r.best_single else ""
            cells.append(f"{mark}{r.single[name]:.3g}{mark}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("| **NWS choice** | " + " | ".join(f"**{r.chosen:.3g}**" for r in results) + " |")
    ranks = []
    for r in results:
        better = sum(1 for v in r.single.values() if v < r.chosen)
        ranks.append(f"{better + 1} of {len(PREDICTORS) + 1}")
    print("| rank of the NWS choice | " + " | ".join(ranks) + " |")
    ratio = [r.chosen / r.single[r.best_single] for r in results]
    print("| NWS / best single | " + " | ".join(f"{x:.2f}" for x in ratio) + " |")


if __name__ == "__main__":
    main()
