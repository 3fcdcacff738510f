"""One answer per question: every consumer of a path's expected bandwidth uses one figure.

One cycle on the embedded mesh, published to an ads file; then the throttle's
candidates, the advisor, the STARTD_CRON attributes, the report's advice and the
path ads are asked about each path and site pair. The figure is the cycle's
estimate's lower bound (forecast - error, from the ad's own forecast and error),
and every rationale states that figure in the same words.
"""

from __future__ import annotations

import time
from pathlib import Path

import classad2
import pytest

from larkps.cli.commands.core import demo_settings
from larkps.decide.advise import advise
from larkps.decide.throttle import Demand, candidates, decide
from larkps.decide.views import PathView, views_from_ads
from larkps.pipeline import CycleResult, run_cycle
from larkps.publish.identifiers import site_fragment
from larkps.publish.startd import startd_cron_ad
from larkps.report.adapter import report_input
from larkps.stats.estimates import window_estimates
from larkps.units import format_rate

pytestmark = pytest.mark.slow
GB = 10**9


@pytest.fixture(scope="module")
def cycle(tmp_path_factory: pytest.TempPathFactory) -> tuple[CycleResult, list[dict], int]:
    out: Path = tmp_path_factory.mktemp("cycle")
    now = int(time.time())
    settings = demo_settings(out)
    result = run_cycle(settings, now)
    text = (out / "larkps.ads").read_text()
    ads = [dict(ad) for ad in classad2.parseAds(text, classad2.ParserType.Old)]
    return result, ads, now


def test_each_path_ad_carries_the_estimates_lower_bound(cycle):
    result, ads, _ = cycle
    by_name = {ad["Name"]: ad for ad in ads if ad["MyType"] == "LarkPSPath"}
    assert len(by_name) == len(result.estimates)
    for estimate in result.estimates:
        ad = by_name[f"{estimate.path.name}@larkps"]
        expected, error = ad["LarkPS_ExpectedMbps"], ad["LarkPS_ExpectedErrorMbps"]
        assert ad["LarkPS_ExpectedLowerMbps"] == pytest.approx(max(0.0, expected - error))
        assert ad["LarkPS_ExpectedLowerMbps"] == pytest.approx(estimate.lower_bound_bps * 1e-6)
        assert ad["LarkPS_ExpectedProvenance"] == estimate.provenance.value


def _views(ads: list[dict]) -> list[PathView]:
    return views_from_ads(ads)


def test_throttle_advise_startd_cron_and_report_agree_on_every_pair(cycle):
    result, ads, now = cycle
    settings = demo_settings(Path("unused"))
    policy = settings.throttle.policy
    stale, quality = settings.windows.stale_after, policy.min_quality
    estimates = list(window_estimates(result.stats, result.estimates, stale).values())
    views = _views(ads)
    report = report_input(result, settings, now)
    report_advice = {v.path: v.advice for v in report.paths}
    sites = sorted({e.path.source_site for e in estimates})
    compared = 0
    for source in sites:
        advice = {r.site: r for r in advise(views, source, 10 * GB, now, stale, quality).rows}
        for destination in sites:
            if destination == source:
                continue
            path, *_ = candidates(estimates, policy, source, destination)
            row = advice[destination]
            hook = startd_cron_ad(views, destination, now, stale, quality)
            low = hook.get(f"LarkPS_From_{site_fragment(source)}_BandwidthLowMbps")
            if not path.usable:  # untrusted: neither ranks nor throttles on it
                assert row.rank is None
                continue
            assert path.bps is not None and path.bps > 0
            assert row.rank is not None and row.lower_mbps == pytest.approx(path.bps * 1e-6)
            assert low == pytest.approx(path.bps * 1e-6, abs=1e-6)
            words = f"lower bound {format_rate(path.bps)} = "
            assert path.detail.startswith(words) and row.reason.startswith(words)
            decision = decide([path], Demand(per_job_bps=1e8), policy)
            assert f"{path.name} = {format_rate(path.bps)} ({words}" in decision.rationale
            compared += 1
    assert compared >= len(sites)  # most pairs are trusted in a fresh demo cycle
    for estimate in estimates:
        given = report_advice.get(estimate.path)
        if given is None or estimate.lower_bound_bps is None:
            continue
        figure = format_rate(estimate.lower_bound_bps)
        assert f"path {estimate.path.name} = {figure} (lower bound {figure} = " in (given.rationale)
