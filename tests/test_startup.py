"""Commands people wait for load only what they use.

`larkps --version`, building the parser and `larkps startd-cron` (run every few
minutes on every execute node) must not import the statistics stack. Checked by
the modules a fresh interpreter holds afterwards, never by timing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

HEAVY = ("pandas", "numpy", "matplotlib", "htcondor2", "apscheduler", "prometheus_client")
PIPELINE = (
    "larkps.pipeline",
    "larkps.stats.aggregate",
    "larkps.daemon.service",
    "larkps.sources.http.client",
)

PROBE = """
import json, sys
from larkps.cli.app import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
sys.stdout.flush()
loaded = sorted({name for name in sys.modules})
print(json.dumps({"code": code, "modules": loaded}), file=sys.stderr)
"""


def loaded_after(*argv: str) -> tuple[int, str, set[str]]:
    """Exit code, stdout and the modules loaded by `larkps ARGV` in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    report = json.loads(done.stderr.strip().splitlines()[-1])
    return report["code"], done.stdout, set(report["modules"])


def heavy_in(modules: set[str], allowed: tuple[str, ...] = ()) -> set[str]:
    tops = {name.split(".")[0] for name in modules}
    found = {m for m in HEAVY if m in tops} | {m for m in PIPELINE if m in modules}
    return found - set(allowed)


def test_version_loads_no_statistics_stack():
    code, out, modules = loaded_after("--version")
    assert code == 0
    assert out.startswith("larkps ")
    assert not heavy_in(modules), heavy_in(modules)


def test_every_subcommand_help_loads_no_statistics_stack():
    # Building the whole parser (every subcommand registers its options).
    code, out, modules = loaded_after("throttle", "dag", "--help")
    assert code == 0
    assert "--bytes-per-job" in out
    assert not heavy_in(modules), heavy_in(modules)


def _path_ad(source: str, destination: str, expected: float, error: float, now: int) -> str:
    return "\n".join(
        [
            'MyType = "LarkPSPath"',
            f'Name = "{source}->{destination}/ipv4"',
            f'LarkPS_SourceSite = "{source}"',
            f'LarkPS_DestinationSite = "{destination}"',
            'LarkPS_AddressFamily = "ipv4"',
            f"LarkPS_UpdateTime = {now}",
            f"LarkPS_ExpectedMbps = {expected}",
            f"LarkPS_ExpectedErrorMbps = {error}",
            "LarkPS_ExpectedQuality = 0.9",
            "LarkPS_ExpectedStale = false",
            'LarkPS_ExpectedProvenance = "forecast"',
        ]
    )


def test_startd_cron_loads_no_statistics_stack(tmp_path: Path):
    now = int(time.time())
    ads = tmp_path / "larkps.ads"
    ads.write_text(
        _path_ad("BRAVO", "ALPHA", 800.0, 100.0, now)
        + "\n\n"
        + _path_ad("ALPHA", "BRAVO", 300.0, 20.0, now)
        + "\n"
    )
    code, out, modules = loaded_after("startd-cron", "--ads", str(ads), "--site", "ALPHA")
    assert code == 0, out
    lines = dict(line.split(" = ", 1) for line in out.splitlines() if " = " in line)
    assert lines["LarkPS_Site"] == '"ALPHA"'
    # The lower bound the hook publishes is the ad's forecast minus its error bar.
    assert float(lines["LarkPS_From_BRAVO_BandwidthLowMbps"]) == pytest.approx(700.0)
    assert float(lines["LarkPS_To_BRAVO_BandwidthLowMbps"]) == pytest.approx(280.0)
    assert out.splitlines()[-1] == "- update:true"
    # classad2's parser loads htcondor2 itself (a few ms); the statistics stack stays out.
    assert not heavy_in(modules, allowed=("htcondor2",)), heavy_in(modules)
