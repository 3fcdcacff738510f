"""bench/forecast_accuracy.py on a small input: its coverage against an independent count.

The independent count asks larkps.stats.forecast.forecast() (what a cycle publishes) for
the forecast of every prefix of the series and counts the values inside the bar.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from larkps.stats.forecast import forecast, replay

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "forecast_accuracy.py"
WARMUP = 10


def independent_count(values: list[float]) -> int:
    inside = 0
    for t in range(WARMUP, len(values)):
        published = forecast(values[:t])
        assert published is not None
        inside += abs(values[t] - published.value) <= published.error
    return inside


def test_script_coverage_matches_an_independent_count(tmp_path: Path):
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    level = 1000 + 300 * np.sin(np.arange(120) / 9)
    values = [float(v) for v in level * rng.lognormal(0, 0.2, size=120)]
    source = tmp_path / "series.json"
    source.write_text(json.dumps({"toy": values}))
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--no-embedded", "--samples", str(tmp_path / "absent"),
         "--input", str(source)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "shared samples not present" in done.stderr
    assert "replaying 1/1: toy (120 values)" in done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("| toy |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    steps, chosen = int(cells[1]), float(cells[2])
    assert steps == 120 - WARMUP
    count = int(re.fullmatch(r"\d+% \((\d+)\)", cells[6]).group(1))  # type: ignore[union-attr]
    assert count == independent_count(values)
    assert cells[6].startswith(f"{count / steps:.0%} ")
    assert chosen == float(f"{replay(values).chosen:.3g}")
