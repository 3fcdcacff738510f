"""larkps report in headless Chromium: the page built by the CLI from the embedded archive.

Skipped when Debian's chromium and chromium-driver (or selenium) are missing.
Selenium is pointed at /usr/bin/chromium and /usr/bin/chromedriver, so Selenium
Manager never runs and nothing is downloaded.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from report_truth import (
    ALARMS_TABLE,
    COLOURS,
    expected_level,
    expected_loss_alarm,
    expected_paths,
    report_toml,
)

from larkps.embedded import Mesh, MeshConfig
from larkps.model import Family, PathKey
from larkps.report.names import path_file_name

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1400",
)
SITES = 4
#: the window the report is asked for, and how far its end may drift past the fixture
WINDOW, DRIFT = 6 * 3600, 900

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="needs Debian's chromium and chromium-driver in /usr/bin",
    ),
]
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (the test extra)")
By = pytest.importorskip("selenium.webdriver.common.by").By
Service = pytest.importorskip("selenium.webdriver.chrome.service").Service


@dataclass(frozen=True)
class Rendered:
    out: Path
    stdout: str
    document: dict[str, Any]


def _clear_alarm(mesh: Mesh, src: str, dst: str, family: str, end: int) -> bool:
    """Whether the loss rule fires, by a wide margin, on the truth of the window to ``end``."""
    truth = mesh.truth(src, dst, family, "loss", end - WINDOW, end)
    limit = float(ALARMS_TABLE["loss"])
    return truth.fraction is not None and 1.5 * limit <= truth.fraction < 1.0


def _has_clear_alarm(mesh: Mesh, now: int) -> bool:
    for family in ("ipv4", "ipv6"):
        for name in expected_paths(mesh, family):
            src, dst = name.split("/")[0].split("->")
            if all(_clear_alarm(mesh, src, dst, family, end) for end in (now, now + DRIFT)):
                return True
    return False


@pytest.fixture(scope="module")
def seed() -> int:
    """The first mesh seed whose truth raises a loss alarm in the window now ending.

    The embedded mesh follows the real clock and has a loss burst on about one path in
    fifty each hour, so a fixed seed has hours without any alarm to check.
    """
    now = int(time.time())
    for candidate in range(1, 200):
        if _has_clear_alarm(Mesh(MeshConfig(sites=SITES, seed=candidate)), now):
            print(f"mesh seed {candidate} (now={now})")
            return candidate
    raise AssertionError(f"no seed in 1..199 has a loss alarm in the window ending {now}")


def _config(path: Path, state: Path, seed: int) -> None:
    path.write_text(
        f'[larkps]\nstate_dir = "{state}"\n\n'
        '[[archives]]\nname = "mesh"\nkind = "embedded"\n\n'
        f"[archives.embedded]\nsites = {SITES}\nseed = {seed}\n\n"
        '[windows]\nlist = ["6h", "24h"]\ndefault = "6h"\nstale_after = "90m"\n\n' + report_toml()
    )


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory, seed: int) -> Rendered:
    base = tmp_path_factory.mktemp("report")
    _config(base / "larkps.toml", base / "state", seed)
    done = subprocess.run(
        [sys.executable, "-m", "larkps", "report", "--config", str(base / "larkps.toml"),
         "--out", str(base / "out"), "--png"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    page = (base / "out" / "index.html").read_text()
    raw = page.split('id="larkps-data">')[1].split("</script>")[0]
    return Rendered(base / "out", done.stdout, json.loads(raw))


@pytest.fixture(scope="module")
def mesh(seed: int) -> Mesh:
    return Mesh(MeshConfig(sites=SITES, seed=seed))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tempfile.mkdtemp(prefix="larkps-chromium-")
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser: Any, rendered: Rendered) -> Any:
    browser.get((rendered.out / "index.html").as_uri())
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1"
    return browser


def _rgb(colour: str) -> str:
    """A #rrggbb colour as Chromium reports a computed colour."""
    return f"rgba({int(colour[1:3], 16)}, {int(colour[3:5], 16)}, {int(colour[5:7], 16)}, 1)"


def _halves(page: Any) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for half in page.find_elements(By.CSS_SELECTOR, ".half"):
        found.setdefault(half.get_attribute("data-path"), []).append(half)
    return found


def test_cli_wrote_the_page_and_pictures(rendered: Rendered, mesh: Mesh):
    paths = expected_paths(mesh, "ipv4") | expected_paths(mesh, "ipv6")
    assert f"({len(paths)} paths)" in rendered.stdout
    assert set(rendered.document["paths"]) == paths
    pictures = sorted(p.name for p in (rendered.out / "paths").iterdir())
    assert pictures == sorted(path_file_name(_key(name)) for name in paths)
    for name in [*pictures[:3], "../grid.png"]:
        assert (rendered.out / "paths" / name).stat().st_size > 10_000


def _key(name: str) -> PathKey:
    pair, family = name.split("/")
    src, dst = pair.split("->")
    return PathKey(src, dst, Family(family))


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_the_grid_has_one_cell_per_ordered_site_pair(page: Any, mesh: Mesh, family: str):
    page.find_element(By.ID, f"family-{family}").click()
    expected = expected_paths(mesh, family)
    sites = {name.split("->")[0] for name in expected}
    cells = page.find_elements(By.CSS_SELECTOR, "#grid td.cell")
    assert len(cells) == len(expected) == len(sites) * (len(sites) - 1)
    halves = _halves(page)
    assert set(halves) == expected  # every path present, nothing else
    assert all(len(h) == 2 for h in halves.values())  # in (a, b) on top and (b, a) below
    assert all(h.get_attribute("data-exists") == "1" for hs in halves.values() for h in hs)
    heads = [th.text for th in page.find_elements(By.CSS_SELECTOR, "#grid th.row")]
    assert heads == sorted(sites)


@pytest.mark.parametrize("metric", ["throughput", "loss", "owdelay"])
def test_colours_follow_the_thresholds_of_the_ground_truth(
    page: Any, mesh: Mesh, rendered: Rendered, metric: str
):
    end = rendered.document["window_end"]
    start = end - rendered.document["window"]
    page.find_element(By.ID, f"metric-{metric}").click()
    checked = 0
    for family in ("ipv4", "ipv6"):
        page.find_element(By.ID, f"family-{family}").click()
        for name, halves in _halves(page).items():
            key = _key(name)
            want = expected_level(
                mesh, key.source_site, key.destination_site, family, metric, start, end
            )
            if want is None:  # within 1 % of a threshold: either side is right
                continue
            for half in halves:
                assert half.get_attribute("data-level") == want, (name, half.get_attribute("title"))
                assert half.value_of_css_property("background-color") == _rgb(COLOURS[want])
                why = ("stale", "untrusted") if want == "stale" else (want,)
                assert half.get_attribute("title").startswith(tuple(f"{name}: {w}" for w in why))
                checked += 1
    # Paths within 1 % of a threshold are skipped; how many depends on the hour the
    # window ends at (the data follow the time of day): most must still be checked.
    assert checked >= 2 * 18 * 3 // 4


def test_metric_switcher_recolours_the_grid(page: Any):
    def colours() -> dict[str, str]:
        return {
            h.get_attribute("data-path") + h.get_attribute("class"): h.value_of_css_property(
                "background-color"
            )
            for h in page.find_elements(By.CSS_SELECTOR, ".half")
        }

    page.find_element(By.ID, "metric-throughput").click()
    bandwidth = colours()
    legend = page.find_element(By.ID, "legend").text
    page.find_element(By.ID, "metric-loss").click()
    assert "active" in page.find_element(By.ID, "metric-loss").get_attribute("class")
    loss = colours()
    assert bandwidth.keys() == loss.keys()
    assert bandwidth != loss
    assert page.find_element(By.ID, "legend").text != legend
    assert "Loss" in page.find_element(By.ID, "legend").text


def test_clicking_a_cell_shows_that_paths_history(
    page: Any, mesh: Mesh, rendered: Rendered, tmp_path: Path
):
    end = rendered.document["window_end"]
    name = f"{mesh.sites[2].name}->{mesh.sites[0].name}/ipv4"
    key = _key(name)
    half = page.find_element(By.CSS_SELECTOR, f'.half.top[data-path="{name}"]')
    half.click()
    detail = page.find_element(By.ID, "detail")
    assert detail.get_attribute("data-path") == name
    title = page.find_element(By.ID, "detail-title").text
    assert title == f"{key.source_site} \u2192 {key.destination_site} (ipv4)"
    assert "Throttle advice" in page.find_element(By.ID, "advice").text
    for metric in ("throughput", "loss", "owdelay"):
        chart = page.find_element(By.ID, f"chart-{metric}")
        points = chart.find_elements(By.CSS_SELECTOR, "circle.pt")
        hours = [
            mesh.truth(key.source_site, key.destination_site, "ipv4", metric, e - 3600, e)
            for e in range(end - 5 * 3600, end + 1, 3600)
        ]
        assert len(points) == sum(1 for t in hours if t.count), metric
        assert points, metric
    bands = page.find_elements(By.CSS_SELECTOR, "#chart-throughput rect.band")
    assert len(bands) == 1  # the forecast band of the window median
    link = page.find_element(By.ID, "detail-png").get_attribute("href")
    assert link.endswith(f"/paths/{path_file_name(key)}")
    shot = tmp_path / "report.png"
    assert page.save_screenshot(str(shot))
    _check_screenshot(shot)


def test_alarm_marks_follow_the_ground_truth(page: Any, mesh: Mesh, rendered: Rendered):
    end = rendered.document["window_end"]
    start = end - rendered.document["window"]
    marked = 0
    for name, path in rendered.document["paths"].items():
        want = expected_loss_alarm(mesh, path["src"], path["dst"], path["family"], start, end)
        if not want:
            continue
        page.find_element(By.ID, f"family-{path['family']}").click()
        page.find_element(By.CSS_SELECTOR, f'.half.top[data-path="{name}"]').click()
        assert "loss since" in page.find_element(By.ID, "alarms").text
        assert len(page.find_elements(By.CSS_SELECTOR, "#chart-loss line.alarm")) == 1
        assert not page.find_elements(By.CSS_SELECTOR, "#chart-throughput line.alarm")
        marked += 1
    assert marked >= 1


def _check_screenshot(path: Path) -> None:
    from matplotlib import image

    pixels = np.rint(image.imread(str(path))[:, :, :3] * 255).astype(np.uint8)
    assert pixels.shape[0] >= 1000 and pixels.shape[1] >= 1000
    colours = {tuple(c) for c in np.unique(pixels.reshape(-1, 3), axis=0).tolist()}
    ok = (0x1A, 0x98, 0x50)
    assert ok in colours and len(colours) > 50


def test_hostile_names_stay_text_in_the_browser(browser: Any, tmp_path: Path, rendered: Rendered):
    document = rendered.document
    hostile = '<img src=x onerror="window.pwned=1">'
    page = (rendered.out / "index.html").read_text()
    old = document["sites"][0]
    raw = page.split('id="larkps-data">')[1].split("</script>")[0]
    swapped = raw.replace(json.dumps(old)[1:-1], json.dumps(hostile)[1:-1].replace("<", "\\u003c"))
    (tmp_path / "index.html").write_text(page.replace(raw, swapped))
    browser.get((tmp_path / "index.html").as_uri())
    assert browser.execute_script("return window.pwned === undefined")
    heads = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#grid th.row")]
    assert hostile in heads
    assert not browser.find_elements(By.CSS_SELECTOR, "#grid img")
