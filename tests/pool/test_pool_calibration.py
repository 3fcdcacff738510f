"""Completed jobs in a real pool calibrate their path: ads, report and explain show it.

Jobs with a 1 GB input name their data site (``+LarkPSSourceSite``) and run on the
pool's only host, whose startd says it is another site of the embedded mesh
(``LarkPS_Site``, as the STARTD_CRON hook publishes it; the jobs ask for it with
``job_machine_attrs``, and the config's site map does not name the host). A
larkps cycle before they run publishes no calibration for that pair; the cycle
after reads the schedd's history, records each job's transfer and applies the
ratio. The expected ratio is computed here from the history ads as the real
``condor_history`` prints them (bytes of ``TransferInputStats``, whole-second
dates) and the predicted figure larkps stored, by the documented rule.
"""

from __future__ import annotations

import json
import math
import sqlite3
import sys
from pathlib import Path

import classad2
from minipool import Pool, minipool, wait_until, world_dir

SOURCE, DESTINATION = "BRAVO-T1", "ALPHA-T2"
JOBS = 5
INPUT_BYTES = 1_000_000_000  # about 5 s per local transfer: whole-second dates time every job
LARKPS = [sys.executable, "-m", "larkps"]


STARTD_SITE = f'''LarkPS_Site = "{DESTINATION}"
STARTD_ATTRS = $(STARTD_ATTRS) LarkPS_Site
'''


def _config(etc: Path) -> Path:
    path = etc / "larkps.toml"
    path.write_text(f"""[larkps]
state_dir = "{etc / "state"}"

[[archives]]
name = "mesh"
kind = "embedded"

[archives.embedded]
sites = 4
seed = 1

[publish.file]
path = "{etc / "larkps.ads"}"

[calibration]
enabled = true
since = "1h"
min_samples = 3
min_seconds = 1
""")
    return path


def _submit(pool: Pool) -> Path:
    jobs = pool.job_dir("calibration-jobs")
    pool.job_file(jobs, "input.bin", "x" * INPUT_BYTES)
    pool.job_file(jobs, "job.sh", "#!/bin/sh\nwc -c input.bin\n", mode=0o755)
    pool.job_file(
        jobs,
        "job.sub",
        f"""executable = job.sh
transfer_input_files = input.bin
should_transfer_files = YES
when_to_transfer_output = ON_EXIT
+LarkPSSourceSite = "{SOURCE}"
job_machine_attrs = LarkPS_Site
log = job.log
output = job.$(Process).out
error = job.$(Process).err
queue {JOBS}
""",
    )
    pool.as_job_user("condor_submit", "job.sub", cwd=jobs)
    return jobs


def _history(pool: Pool) -> list[classad2.ClassAd]:
    out = pool.run("condor_history", "-long", "-constraint", "JobStatus == 4", check=False)
    return list(classad2.parseAds(out.stdout, classad2.ParserType.Old))


def _path_ad(ads_file: Path) -> classad2.ClassAd:
    ads = classad2.parseAds(ads_file.read_text(), classad2.ParserType.Old)
    chosen = [
        ad
        for ad in ads
        if ad.get("LarkPS_SourceSite") == SOURCE and ad.get("LarkPS_DestinationSite") == DESTINATION
    ]
    assert chosen, "no ad of the pair"
    return min(chosen, key=lambda ad: ad.get("LarkPS_ExpectedLowerMbps", math.inf))


def _stored_predictions(state: Path) -> dict[str, float]:
    db = sqlite3.connect(state / "larkps.sqlite")
    try:
        rows = db.execute("SELECT job, predicted_bps FROM achieved_transfers").fetchall()
    finally:
        db.close()
    return dict(rows)


def test_completed_jobs_calibrate_their_path(tmp_path: Path) -> None:
    etc = world_dir("larkps-calibration-")
    with minipool(extra_config=STARTD_SITE) as pool:
        config = _config(etc)
        run = pool.run(*LARKPS, "once", "--config", config, timeout=300)
        before = _path_ad(etc / "larkps.ads")
        assert "LarkPS_CalibrationRatio" not in before, run.stdout
        uncalibrated_mbps = before["LarkPS_ExpectedLowerMbps"]

        _submit(pool)
        wait_until(lambda: len(_history(pool)) >= JOBS, 240, f"{JOBS} completed jobs")
        history = _history(pool)
        assert {ad.get("MachineAttrLarkPS_Site0") for ad in history} == {DESTINATION}

        pool.run(*LARKPS, "once", "--config", config, timeout=300)
        after = _path_ad(etc / "larkps.ads")
        predicted = _stored_predictions(etc / "state")
        rates = {}
        for ad in history:
            seconds = (
                ad["JobCurrentFinishTransferInputDate"] - ad["JobCurrentStartTransferInputDate"]
            )
            size = ad["TransferInputStats"]["CedarSizeBytesLastRun"]
            if seconds > 0:
                rates[ad["GlobalJobId"]] = size * 8 / seconds
        assert set(predicted) == set(rates), (predicted, rates)
        figure = uncalibrated_mbps * 1e6
        assert all(math.isclose(p, figure, rel_tol=0.05) for p in predicted.values())
        logs = [math.log(rates[j] / predicted[j]) for j in rates]
        target = min(2.0, max(0.25, math.exp(sum(logs) / len(logs))))  # ages ~0: equal weights
        expected = min(1.5, max(1 / 1.5, target))  # the first step moves from 1
        print(
            f"rates {sorted(r * 1e-6 for r in rates.values())} Mbps, predicted"
            f" {uncalibrated_mbps:.6g} Mbps, mean {math.exp(sum(logs) / len(logs)):.4g},"
            f" target {target:.4g}, applied {expected:.4f}"
        )
        assert len(rates) >= 3
        assert math.isclose(after["LarkPS_CalibrationRatio"], expected, rel_tol=0.01, abs_tol=1e-3)
        assert after["LarkPS_CalibrationCount"] == len(rates)
        assert after["LarkPS_CalibrationApplied"] is True
        assert "achieved/predicted" in after["LarkPS_CalibrationProvenance"]
        assert math.isclose(
            after["LarkPS_ExpectedLowerMbps"], uncalibrated_mbps * expected, rel_tol=0.05
        )

        listed = pool.run(*LARKPS, "achieved", "--config", config, "--format", "json").stdout
        document = json.loads(listed)
        assert document["read"]["recorded"] == 0  # every job was recorded by the cycle
        assert {t["job"] for t in document["transfers"]} == set(rates)
        assert {t["path"] for t in document["transfers"]} == {f"{SOURCE}->{DESTINATION}"}

        second = pool.run(*LARKPS, "once", "--config", config, timeout=300)
        again = _path_ad(etc / "larkps.ads")["LarkPS_CalibrationRatio"]
        step = min(expected * 1.5, max(expected / 1.5, target))
        assert math.isclose(again, step, rel_tol=0.01, abs_tol=1e-3), second.stdout
        after = _path_ad(etc / "larkps.ads")
        expected = again

        name = f"{SOURCE}->{DESTINATION}"
        explained = pool.run(*LARKPS, "explain", name, "--config", config, timeout=300).stdout
        assert f"LarkPS_CalibrationRatio = {after['LarkPS_CalibrationRatio']:.4g}" in explained
        assert f"LarkPS_CalibrationCount = {len(rates)}" in explained
        assert "calibrated x" in explained

        out = tmp_path / "report"
        pool.run(*LARKPS, "report", "--config", config, "--out", out, timeout=300)
        page = (out / "index.html").read_text()
        data = _report_paths(page)
        shown = [p["calibration"] for p in data if p["src"] == SOURCE and p["dst"] == DESTINATION]
        assert shown and all(c is not None and c["count"] == len(rates) for c in shown)
        assert any(math.isclose(c["ratio"], expected, rel_tol=0.01, abs_tol=1e-3) for c in shown)


def _report_paths(page: str) -> list[dict]:
    """The path documents embedded in the report page's data."""
    start = page.index("{", page.index('id="larkps-data"'))
    end = page.index("</script>", start)
    data = json.loads(page[start:end])
    paths = data["paths"]
    return list(paths.values()) if isinstance(paths, dict) else paths
