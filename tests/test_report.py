"""larkps report without a browser: the input model against ground truth, the page's
escaping, file names, the PNGs and the output directory."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from report_truth import (
    ALARMS_TABLE,
    COLOURS,
    REPORT_TABLE,
    STALE_AFTER,
    expected_level,
    expected_loss_alarm,
    expected_paths,
)

from larkps.config.settings import Settings, settings_from_dict
from larkps.embedded import EmbeddedArchive, Mesh, MeshConfig
from larkps.model import Family, Metric, PathKey
from larkps.pipeline import CycleResult, run_cycle
from larkps.report.adapter import report_input
from larkps.report.model import ReportInput, ReportMetric
from larkps.report.names import MAX_NAME, decode_part, encode_part, path_file_name
from larkps.report.output import write_report
from larkps.report.page import embed_json, render_page
from larkps.report.pictures import grid_png, path_png

NOW = 1_700_010_000
WINDOW = 6 * 3600
HOSTILE = '</script><script>window.pwned=1</script><img src=x onerror="window.pwned=2">&$x$'


def _settings(url: str, mesh: Mesh) -> Settings:
    sites = {
        site: {"hosts": entry["hosts"], "networks": entry["networks"]}
        for site, entry in mesh.site_map().items()
    }
    return settings_from_dict(
        {
            "archives": [{"name": "mesh", "kind": "esmond", "url": url}],
            "sites": sites,
            "windows": {"list": ["6h"], "default": "6h", "stale_after": f"{STALE_AFTER}s"},
            "report": {**REPORT_TABLE, "colours": COLOURS},
            "alarms": ALARMS_TABLE,
        }
    )


@pytest.fixture(scope="module")
def mesh() -> Mesh:
    return Mesh(MeshConfig(sites=4, seed=1))


@pytest.fixture(scope="module")
def cycle(mesh: Mesh) -> Iterator[tuple[CycleResult, Settings]]:
    with EmbeddedArchive(mesh, clock=lambda: NOW) as archive:
        settings = _settings(archive.url, mesh)
        yield run_cycle(settings, NOW, WINDOW, publish=False, history=True), settings


@pytest.fixture(scope="module")
def report(cycle: tuple[CycleResult, Settings]) -> ReportInput:
    return report_input(cycle[0], cycle[1], NOW)


def test_every_path_of_the_mesh_is_in_the_report(mesh: Mesh, report: ReportInput):
    names = {v.path.name for v in report.paths}
    assert names == expected_paths(mesh, "ipv4") | expected_paths(mesh, "ipv6")
    assert report.sites == tuple(sorted(s.name for s in mesh.sites))
    assert report.families == (Family.IPV4, Family.IPV6)
    assert (report.window, report.window_end, report.generated) == (WINDOW, NOW, NOW)


def test_levels_follow_the_thresholds_of_the_ground_truth(mesh: Mesh, report: ReportInput):
    seen = set()
    for view in report.paths:
        key = view.path
        for metric in ReportMetric:
            want = expected_level(
                mesh, key.source_site, key.destination_site, key.family.value, metric.value,
                NOW - WINDOW, NOW,
            )  # fmt: skip
            figure = view.figures[metric]
            if want is not None:
                assert figure.level.value == want, (key.name, metric, figure.reason)
            seen.add(figure.level.value)
            assert key.name not in figure.reason  # the page prefixes the path itself
    assert {"ok", "warning", "critical", "stale"} <= seen


def test_histories_bands_and_advice_are_attached(mesh: Mesh, report: ReportInput):
    for view in report.paths:
        assert view.history is not None and view.history.path == view.path
        assert view.history.ends[-1] == NOW and len(view.history.ends) == WINDOW // 3600
        tp = view.figures[ReportMetric.THROUGHPUT]
        assert tp.value is None or ReportMetric.THROUGHPUT in view.bands
        assert view.advice is not None
        assert 1 <= view.advice.jobs <= 200
        assert view.advice.rationale.startswith(f"N={view.advice.jobs} ")
        assert "2GB per job" in view.advice.demand


def test_site_rows_count_partners(mesh: Mesh, report: ReportInput):
    rows = {r.site: r for r in report.site_rows}
    assert set(rows) == {s.name for s in mesh.sites}
    for site, row in rows.items():
        partners = {p.split("->")[1].split("/")[0] for p in expected_paths(mesh, "ipv4")}
        assert row.partners_out == row.partners_in == len(partners - {site})
        assert 0 <= row.fresh_out <= row.partners_out
    assert rows["DELTA-T2"].families == (Family.IPV4,)  # the mesh's IPv4-only site


def test_statistics_extras_reach_the_views(
    cycle: tuple[CycleResult, Settings], report: ReportInput
):
    result = cycle[0]
    views = {v.path: v for v in report.paths}
    forecasts = [f for f in result.forecasts if f.metric in (Metric.THROUGHPUT, Metric.OWDELAY)]
    assert forecasts  # the statistics forecast these metrics over the mesh
    for forecast in forecasts:
        band = views[forecast.path].bands[ReportMetric(forecast.metric.value)]
        assert (band.value, band.error) == (forecast.value, forecast.error)
        assert forecast.method in band.method
    for health in result.health:
        if health.window == WINDOW:
            assert views[health.path].health == health.health
    sites = {s.site: s for s in result.site_stats if s.window == WINDOW}
    assert sites
    for row in report.site_rows:
        assert row.health == sites[row.site].health
        assert {k.value for k in sites[row.site].alarms} <= {a.split(" ")[0] for a in row.alarms}
    assert result.alarms
    for alarm in result.alarms:
        if alarm.subject in {p.name for p in views}:
            marks = views[_key(alarm.subject)].alarms
            assert (alarm.since, alarm.kind.value) in {(m.ts, m.kind) for m in marks}


def _key(name: str) -> PathKey:
    pair, family = name.split("/")
    src, dst = pair.split("->")
    return PathKey(src, dst, Family(family))


def _hostile(report: ReportInput) -> ReportInput:
    """The same report with one site renamed to markup."""
    old = report.sites[0]

    def rename(site: str) -> str:
        return HOSTILE if site == old else site

    def path(key: PathKey) -> PathKey:
        return PathKey(rename(key.source_site), rename(key.destination_site), key.family)

    views = tuple(
        replace(v, path=path(v.path), history=None, hosts=(*v.hosts, HOSTILE)) for v in report.paths
    )
    rows = tuple(replace(r, site=rename(r.site)) for r in report.site_rows)
    sites = tuple(rename(s) for s in report.sites)
    return replace(report, sites=sites, paths=views, site_rows=rows, archives=(HOSTILE,))


def test_page_embeds_untrusted_names_as_data_only(report: ReportInput):
    hostile = _hostile(report)
    page = render_page(hostile)
    assert page.count("<script") == 2 and page.count("</script>") == 2
    assert "<img" not in page  # escaped in the static part, \u003c in the data
    assert "&lt;/script&gt;" in page  # the archives line
    raw = page.split('<script type="application/json" id="larkps-data">')[1].split("</script>")[0]
    assert "<" not in raw and ">" not in raw and "&" not in raw
    document = json.loads(raw)
    assert HOSTILE in document["sites"]
    assert any(HOSTILE in p["hosts"] for p in document["paths"].values())
    # Nothing to fetch, so it works offline: the only URL is the SVG namespace name.
    assert set(re.findall(r"https?://[^\"' ]+", page)) == {"http://www.w3.org/2000/svg"}
    assert "default-src 'none'" in page


def test_embed_json_round_trips_every_character():
    text = "</script><!-- & \u2028 \u2029 \x00 é"
    assert json.loads(embed_json({"x": text})) == {"x": text}


@given(st.text(max_size=40))
def test_file_name_parts_round_trip_and_use_a_safe_alphabet(text: str):
    encoded = encode_part(text)
    assert re.fullmatch(r"[A-Za-z0-9_-]*", encoded)
    assert decode_part(encoded) == text


@given(st.lists(st.tuples(st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=30))))
def test_file_names_are_injective(pairs: list[tuple[str, str]]):
    keys = {PathKey(a, b, f) for a, b in pairs for f in Family}
    names = {path_file_name(k) for k in keys}
    assert len(names) == len(keys)
    for name in names:
        assert "/" not in name and not name.startswith(".") and name.endswith(".png")


def test_long_names_are_hashed():
    key = PathKey("a" * 150, "b" * 150, Family.IPV4)
    name = path_file_name(key)
    assert name.startswith("h-") and len(name) <= MAX_NAME and name.count(".") == 1


def _pixels(path: Path) -> np.ndarray:
    from matplotlib import image

    rgba = image.imread(str(path))
    assert rgba.dtype == np.float32
    return np.rint(rgba[:, :, :3] * 255).astype(np.uint8)


def _rgb(colour: str) -> tuple[int, int, int]:
    return (int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16))


def _count(pixels: np.ndarray, colour: str) -> int:
    return int(np.all(pixels == np.array(_rgb(colour), dtype=np.uint8), axis=2).sum())


def test_grid_png_draws_each_level_in_its_colour(tmp_path: Path, report: ReportInput):
    target = tmp_path / "grid.png"
    grid_png(_hostile(report), target)  # markup and "$x$" in a name are just text
    pixels = _pixels(target)
    assert pixels.shape[0] > 400 and pixels.shape[1] > 800
    levels = {f.level.value for v in report.paths for f in v.figures.values()}
    for level in levels:
        assert _count(pixels, COLOURS[level]) > 1000, level  # whole half-cells, not edges
    for absent in set(COLOURS) - levels:
        assert _count(pixels, COLOURS[absent]) < 500, absent  # the legend swatch at most


def test_path_png_draws_the_history(tmp_path: Path, report: ReportInput):
    view = next(v for v in report.paths if v.figures[ReportMetric.LOSS].value is not None)
    target = tmp_path / "path.png"
    path_png(report, view, target)
    pixels = _pixels(target)
    assert pixels.shape[:2] == (700, 800)
    drawn = np.any(pixels < 250, axis=2).mean()
    assert 0.02 < drawn < 0.6  # axes, lines and labels on a white page
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20
    assert _count(pixels, "#23395b") > 50  # the history line and its points


def test_write_report_replaces_the_directory_contents(tmp_path: Path, report: ReportInput):
    out = tmp_path / "out"
    (out / "paths").mkdir(parents=True)
    (out / "paths" / "gone.png").write_bytes(b"old")
    (out / "keep.txt").write_text("not ours")
    small = replace(report, paths=report.paths[:2])
    written = write_report(small, out, png=True)
    assert written.pictures == 2 and written.grid == out / "grid.png"
    assert sorted(p.name for p in (out / "paths").iterdir()) == sorted(
        path_file_name(v.path) for v in small.paths
    )
    assert (out / "keep.txt").read_text() == "not ours"
    assert sorted(p.name for p in out.iterdir()) == ["grid.png", "index.html", "keep.txt", "paths"]
    page = (out / "index.html").read_text()
    assert f'"png":"paths/{path_file_name(small.paths[0].path)}"' in page
    assert (out / "index.html").stat().st_mode & 0o044  # readable by a web server


def test_write_report_without_png_writes_only_the_page(tmp_path: Path, report: ReportInput):
    written = write_report(report, tmp_path, png=False)
    assert written.grid is None and written.pictures == 0
    assert [p.name for p in tmp_path.iterdir()] == ["index.html"]


def test_report_command_usage_and_config_errors(tmp_path: Path):
    bad = Path(__file__).parent / "fixtures" / "config" / "report_bad_colour.toml"
    done = subprocess.run(
        [sys.executable, "-m", "larkps", "report", "--config", str(bad), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "report.colours.ok: expected a colour" in done.stderr
    assert not list(tmp_path.iterdir())


def test_an_empty_report_still_renders(tmp_path: Path, report: ReportInput):
    empty = replace(report, sites=(), families=(), paths=(), site_rows=())
    written = write_report(empty, tmp_path, png=True)
    assert written.pictures == 0 and (tmp_path / "grid.png").stat().st_size > 1000
    document = json.loads(
        written.index.read_text().split('id="larkps-data">')[1].split("</script>")[0]
    )
    assert document["paths"] == {} and document["sites"] == []


def test_loss_alarms_follow_the_ground_truth(mesh: Mesh, report: ReportInput):
    raised = 0
    for view in report.paths:
        key = view.path
        want = expected_loss_alarm(
            mesh, key.source_site, key.destination_site, key.family.value, NOW - WINDOW, NOW
        )
        marks = [m for m in view.alarms if m.kind == "loss"]
        if want is not None:
            assert bool(marks) == want, key.name
        for mark in marks:
            assert mark.metric is ReportMetric.LOSS and mark.ts == NOW  # first raised now
            raised += 1
    assert raised >= 1  # the mesh has loss bursts in this window
