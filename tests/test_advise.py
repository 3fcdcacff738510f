"""STARTD_CRON attributes and the advisor, proven with classad2 matchmaking.

Machine ads are built exactly as the startd would build them (the hook's printed
lines, parsed by classad2); job ads from the advisor's submit lines. Rank
evaluation must order the machines as the advisor's table does.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import classad2
import pytest

from larkps.cli.commands.advise import advice_table
from larkps.cli.commands.core import demo_settings
from larkps.decide.advise import AdviceRow, advise
from larkps.decide.views import PathView, views_from_ads
from larkps.pipeline import run_cycle
from larkps.publish.startd import startd_cron_ad, startd_cron_text
from larkps.publish.submit import submit_lines

STALE_AFTER = 6 * 3600
QUALITY = 0.5
GB = 10**9


@pytest.fixture(scope="module")
def views(tmp_path_factory: pytest.TempPathFactory) -> list[PathView]:
    out = tmp_path_factory.mktemp("cycle")
    result = run_cycle(demo_settings(out), int(time.time()))
    ads = list(classad2.parseAds((out / "larkps.ads").read_text(), classad2.ParserType.Old))
    assert len(ads) == len(result.ads)
    return views_from_ads(ads)


def machine_ad(hook_output: str, name: str) -> classad2.ClassAd:
    """What the startd makes of the hook's output: lines up to '- update:true'."""
    body, marker, _ = hook_output.partition("- update:true")
    assert marker, "the hook must end its ad with '- update:true'"
    ad = classad2.parseOne(body, classad2.ParserType.Old)
    ad.update({"MyType": "Machine", "Name": name, "Requirements": True})
    return ad


def job_ad(lines: list[str]) -> classad2.ClassAd:
    text = "\n".join(line for line in lines if not line.startswith("#"))
    ad = classad2.parseOne(
        text.replace("requirements =", "Requirements =").replace("rank =", "Rank ="),
        classad2.ParserType.Old,
    )
    assert set(ad.keys()) == {"Requirements", "Rank"}
    ad.update({"MyType": "Job"})
    return ad


def machines(views: list[PathView], now: int) -> dict[str, classad2.ClassAd]:
    sites = sorted({v.source_site for v in views})
    return {
        s: machine_ad(
            startd_cron_text(startd_cron_ad(views, s, now, STALE_AFTER, QUALITY)),
            f"slot1@node.{s.lower()}",
        )
        for s in sites
    }


def rank_of(job: classad2.ClassAd, machine: classad2.ClassAd) -> float:
    value = classad2.ExprTree(str(job.lookup("Rank"))).eval(scope=job, target=machine)
    return float(value)


def test_hook_output_is_attr_lines_then_update(views: list[PathView]):
    now = int(time.time())
    text = startd_cron_text(startd_cron_ad(views, "ALPHA-T2", now, STALE_AFTER, QUALITY))
    lines = text.splitlines()
    assert lines[-1] == "- update:true"
    assert all(" = " in line for line in lines[:-1])
    ad = machine_ad(text, "m")
    assert ad["LarkPS_Site"] == "ALPHA-T2"
    assert set(ad["LarkPS_Partners"]) == {"BRAVO-T1", "CHARLIE-T2", "DELTA-T2"}
    for partner in ("BRAVO_2d_T1", "CHARLIE_2d_T2", "DELTA_2d_T2"):
        for direction in ("From", "To"):
            assert f"LarkPS_{direction}_{partner}_BandwidthLowMbps" in ad
    assert ad["LarkPS_UpdateTime"] <= now


def test_rank_orders_machines_as_the_advisor_table(views: list[PathView]):
    now = int(time.time())
    advice = advise(views, "ALPHA-T2", 50 * GB, now, STALE_AFTER, QUALITY)
    job = job_ad(submit_lines(advice))
    nodes = machines(views, now)
    ranked = [r.site for r in advice.rows if r.rank is not None]
    by_rank = sorted(nodes, key=lambda s: -rank_of(job, nodes[s]))
    assert by_rank == ranked
    assert all(nodes[s].matches(job) and job.matches(nodes[s]) for s in nodes)
    assert all(nodes[s].symmetricMatch(job) for s in nodes)
    expected = {r.site: r.lower_mbps for r in advice.rows if r.lower_mbps is not None}
    for site, lower in expected.items():
        assert rank_of(job, nodes[site]) == pytest.approx(lower, rel=1e-5)


def test_deadline_excludes_machines_that_cannot_make_it(views: list[PathView]):
    now = int(time.time())
    loose = advise(views, "ALPHA-T2", 50 * GB, now, STALE_AFTER, QUALITY)
    remote = sorted((r for r in loose.rows[1:] if r.transfer_s is not None), key=_transfer_s)
    assert len(remote) >= 2, loose.rows
    slowest, runner_up = _transfer_s(remote[-1]), _transfer_s(remote[-2])
    assert slowest > runner_up, remote
    # The day's figures can put the two slowest sites within a second of each other:
    # scale the input so they lie >= 4 s apart, and a whole-second deadline fits between.
    scale = max(1.0, 4.0 / (slowest - runner_up))
    size = math.ceil(50 * GB * scale)
    deadline = math.ceil(runner_up * size / (50 * GB)) + 1
    advice = advise(views, "ALPHA-T2", size, now, STALE_AFTER, QUALITY, deadline)
    job = job_ad(submit_lines(advice))
    nodes = machines(views, now)
    for row in advice.rows:
        assert nodes[row.site].matches(job) == (row.meets_deadline is not False), row
    missed = [r.site for r in advice.rows if r.meets_deadline is False]
    assert missed == [remote[-1].site], (deadline, advice.rows)


def _transfer_s(row: AdviceRow) -> float:
    assert row.transfer_s is not None
    return row.transfer_s


def test_machine_without_metrics_is_allowed_but_ranked_last_unless_strict(views):
    now = int(time.time())
    advice = advise(views, "ALPHA-T2", 50 * GB, now, STALE_AFTER, QUALITY, deadline_s=3600)
    bare = classad2.ClassAd({"MyType": "Machine", "Name": "slot1@bare", "Requirements": True})
    job = job_ad(submit_lines(advice))
    assert bare.matches(job)
    assert rank_of(job, bare) == 0
    assert not bare.matches(job_ad(submit_lines(advice, strict=True)))


def test_stale_metrics_are_not_trusted(views: list[PathView]):
    now = int(time.time())
    advice = advise(views, "ALPHA-T2", 50 * GB, now, STALE_AFTER, QUALITY)
    job = job_ad(submit_lines(advice))
    node = machines(views, now)["CHARLIE-T2"]
    assert rank_of(job, node) > 0
    node["LarkPS_UpdateTime"] = now - STALE_AFTER - 600
    assert rank_of(job, node) == 0
    assert node.matches(job)
    assert not node.matches(job_ad(submit_lines(advice, strict=True)))


def test_advisor_marks_stale_views_and_explains_why(views: list[PathView]):
    now = int(time.time())
    old = [
        dataclasses.replace(v, update_time=now - 2 * STALE_AFTER)
        if v.destination_site == "DELTA-T2"
        else v
        for v in views
    ]
    advice = advise(old, "ALPHA-T2", 50 * GB, now, STALE_AFTER, QUALITY)
    delta = next(r for r in advice.rows if r.site == "DELTA-T2")
    assert delta.rank is None and delta.reason.startswith("stale figures")
    table = advice_table(advice)
    assert table.splitlines()[0].startswith("rank  site")
    assert "DELTA-T2" in table.splitlines()[-1]


EVIL = [
    'A"; Requirements = true; X = "',
    "b\\",
    "new\nline",
    "sq]u[are;",
    "ünïcödé",
    "TRUE",
    "undefined",
]


def evil_views(now: int) -> list[PathView]:
    sites = ["HOME", *EVIL]
    return [
        PathView(
            s,
            d,
            "ipv4",
            now - 60,
            1000.0 + i,
            10.0,
            0.001,
            12.5,
            0.9,
            False,
            0.8,
            'forecast"; Evil = 1',
        )
        for i, (s, d) in enumerate((s, d) for s in sites for d in sites if s != d)
    ]


def test_startd_cron_output_cannot_be_injected():
    now = int(time.time())
    ad = startd_cron_ad(evil_views(now), "HOME", now, STALE_AFTER, QUALITY)
    text = startd_cron_text(ad)
    parsed = machine_ad(text, "m")
    assert set(parsed.keys()) - {"MyType", "Name", "Requirements"} == set(ad.keys())
    assert "Evil" not in parsed and "X" not in parsed
    assert parsed["LarkPS_Site"] == "HOME"
    partners = set(parsed["LarkPS_Partners"])
    assert partners == {s.replace("\n", "").replace("\\", "/") for s in EVIL}


def test_advice_lines_cannot_be_injected():
    now = int(time.time())
    for data_site in EVIL:
        advice = advise(evil_views(now), data_site, 10 * GB, now, STALE_AFTER, QUALITY, 3600)
        job = job_ad(submit_lines(advice))  # exactly Requirements and Rank, nothing else
        assert job.matches(classad2.ClassAd({"MyType": "Machine", "Requirements": True}))


def test_hook_writes_nothing_for_a_site_it_does_not_know(views: list[PathView], tmp_path: Path):
    ad = startd_cron_ad(views, "NOWHERE", int(time.time()), STALE_AFTER, QUALITY)
    assert ad["LarkPS_Partners"] == []
    assert ad["LarkPS_UpdateTime"] == 0


def test_advise_refuses_an_unknown_data_site_listing_the_known_ones(
    views: list[PathView], tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    from larkps.cli.app import main

    known = sorted({v.source_site for v in views})
    ads = tmp_path / "ads"
    result_dir = tmp_path / "cycle"
    run_cycle(demo_settings(result_dir), int(time.time()))
    ads.write_text((result_dir / "larkps.ads").read_text())
    for wrong in ("NOWHERE", known[0].lower()):
        code = main(["advise", "--ads", str(ads), "--data-site", wrong, "--input-size", "1GB"])
        captured = capsys.readouterr()
        assert code == 2 and captured.out == ""
        (line,) = captured.err.strip().splitlines()
        assert f"no paths from site {wrong!r}" in line
        assert all(repr(site) in line for site in known)
        assert ("did you mean" in line) == (wrong != "NOWHERE")
    assert main(["advise", "--ads", str(ads), "--data-site", known[0], "--input-size", "1GB"]) == 0
