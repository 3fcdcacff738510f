"""The report's path panel shows a path's calibration, in headless Chromium.

Five completed jobs recorded in the state store (as `larkps achieved` records them)
on one site pair of the embedded mesh, then `larkps report` with `[calibration]`
enabled: the page's data carry the pair's ratio and count, and clicking the pair's
cell shows them in words. Skipped without Debian's chromium, chromium-driver or
selenium.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from test_report_browser import CHROMEDRIVER, CHROMIUM, FLAGS, SITES

from larkps.embedded import Mesh, MeshConfig
from larkps.stats.achieved import AchievedTransfer, End
from larkps.stats.achieved_state import record_transfers
from larkps.store.db import Store

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="needs Debian's chromium and chromium-driver in /usr/bin",
    ),
]
SEED = 1  # any mesh: the calibration is made by the test's own transfers
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (the test extra)")
By = pytest.importorskip("selenium.webdriver.common.by").By
Service = pytest.importorskip("selenium.webdriver.chrome.service").Service
JOBS, RATE_BPS = 5, 100e6


def _config(path: Path, state: Path) -> None:
    path.write_text(
        f'[larkps]\nstate_dir = "{state}"\n\n'
        '[[archives]]\nname = "mesh"\nkind = "embedded"\n\n'
        f"[archives.embedded]\nsites = {SITES}\nseed = {SEED}\n\n"
        '[windows]\nlist = ["6h", "24h"]\ndefault = "6h"\nstale_after = "90m"\n\n'
        "[calibration]\nenabled = true\n"
    )


def test_the_path_panel_shows_the_calibration(tmp_path: Path):
    mesh = Mesh(MeshConfig(sites=SITES, seed=SEED))
    source, destination = mesh.sites[2].name, mesh.sites[0].name
    config, state = tmp_path / "larkps.toml", tmp_path / "state"
    _config(config, state)
    now = int(time.time())
    size = int(RATE_BPS * 20 / 8)
    jobs = [
        AchievedTransfer(f"s#{i}.0#1", now - 60 * (i + 1), End(site=source),
                         End(site=destination), size, 20, "cedar")
        for i in range(JOBS)
    ]  # fmt: skip
    with Store.in_directory(state) as store:
        assert record_transfers(store, "local", jobs) == JOBS
    done = subprocess.run(
        [sys.executable, "-m", "larkps", "report", "--config", str(config),
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    index = tmp_path / "out" / "index.html"
    raw = index.read_text().split('id="larkps-data">')[1].split("</script>")[0]
    paths = json.loads(raw)["paths"]
    name = f"{source}->{destination}/ipv4"
    shown = paths[name]["calibration"]
    assert shown["count"] == JOBS and shown["applied"] is True
    assert 1 / 1.5 - 1e-9 <= shown["ratio"] <= 1.5 + 1e-9  # one step from 1
    others = [p["calibration"] for n, p in paths.items() if not n.startswith(f"{source}->")]
    assert all(c is None for c in others)

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tempfile.mkdtemp(prefix="larkps-chromium-")
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        driver.get(index.as_uri())
        driver.find_element(By.CSS_SELECTOR, f'.half.top[data-path="{name}"]').click()
        text = driver.find_element(By.ID, "calibration").text
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    ratio = float(text.split("expected bandwidth x")[1].split(" ")[0])
    assert math.isclose(ratio, shown["ratio"], rel_tol=5e-3), text
    assert f"from {JOBS} completed jobs" in text and "achieved/predicted" in text
