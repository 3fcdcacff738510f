"""A cycle's calibration through the state store: stored transfers calibrate every
family of their site pair, the applied ratio steps from cycle to cycle, non-publishing
cycles show the kept ratio, and the ratio reaches the ads, their readers and the
stats document."""

from __future__ import annotations

import math
from pathlib import Path

import classad2
import pytest
from test_publish import stats

from larkps.config.calibration import CalibrationPolicy
from larkps.decide.views import view_from_ad
from larkps.model import BandwidthEstimate, Family, PathKey, Provenance
from larkps.publish.ads import AdContext, PathExtras, path_ad
from larkps.report.document import path_document
from larkps.stats.achieved import AchievedTransfer, End
from larkps.stats.achieved_state import load_ratios, record_transfers
from larkps.stats.calibration_cycle import calibrate_estimates, pair_calibrations

NOW = 1_800_000_000
POLICY = CalibrationPolicy(min_samples=5)


def estimate(src: str, dst: str, family: Family, low: float) -> BandwidthEstimate:
    path = PathKey(src, dst, family)
    return BandwidthEstimate(path, low + 1e8, 1e8, Provenance.FORECAST, False, 1.0, NOW, "nws")


ESTIMATES = (
    estimate("ALPHA", "BRAVO", Family.IPV4, 2e9),
    estimate("ALPHA", "BRAVO", Family.IPV6, 1e9),  # the pair's predicted figure: the lower
    estimate("CHARLIE", "DELTA", Family.IPV4, 3e9),
)


def transfers(count: int, rate_bps: float, start: int = 0) -> list[AchievedTransfer]:
    """Jobs from ALPHA (named) to a host of BRAVO, ``rate_bps`` each (10 s transfers)."""
    size = int(rate_bps * 10 / 8)
    return [
        AchievedTransfer(
            f"schedd#{start + i}.0#1", NOW - 60 - i, End(site="ALPHA"),
            End(host="wn1.bravo.example"), size, 10, "cedar",
        )
        for i in range(count)
    ]  # fmt: skip


def site_of(host: str) -> str | None:
    return "BRAVO" if host.endswith(".bravo.example") else None


def test_transfers_calibrate_their_pair_and_step_each_cycle(tmp_path: Path):
    from larkps.store.db import Store

    with Store(tmp_path / "s.sqlite") as store:
        record_transfers(store, "local", transfers(4, 0.3e9))
        found = pair_calibrations(store, ESTIMATES, NOW, POLICY, site_of)
        assert set(found) == {("ALPHA", "BRAVO")}
        assert not found["ALPHA", "BRAVO"].applied and found["ALPHA", "BRAVO"].count == 4
        assert load_ratios(store) == {}  # nothing applied, nothing kept

        record_transfers(store, "local", transfers(2, 0.3e9, start=10))
        first = pair_calibrations(store, ESTIMATES, NOW + 300, POLICY, site_of)["ALPHA", "BRAVO"]
        assert first.applied and first.count == 6
        assert first.ratio == pytest.approx(1 / 1.5)  # 0.3: one step from 1

        shown = pair_calibrations(store, ESTIMATES, NOW + 400, POLICY, site_of, commit=False)
        assert shown["ALPHA", "BRAVO"].ratio == pytest.approx(first.ratio)
        assert "as applied by the cycle of" in shown["ALPHA", "BRAVO"].note

        second = pair_calibrations(store, ESTIMATES, NOW + 600, POLICY, site_of)["ALPHA", "BRAVO"]
        assert second.ratio == pytest.approx(1 / 1.5**2)
        third = pair_calibrations(store, ESTIMATES, NOW + 900, POLICY, site_of)["ALPHA", "BRAVO"]
        assert third.ratio == pytest.approx(0.3, rel=1e-3)  # the mean, within one step

        expired = NOW + POLICY.max_age + 3600
        gone = pair_calibrations(store, ESTIMATES, expired, POLICY, site_of)
        assert gone == {} and load_ratios(store) == {}

    calibrated = calibrate_estimates(ESTIMATES, {("ALPHA", "BRAVO"): third})
    for before, after in zip(ESTIMATES, calibrated, strict=True):
        if before.path.source_site == "ALPHA":
            assert after.lower_bound_bps == pytest.approx(before.lower_bound_bps * third.ratio)
            assert after.calibration == third
        else:
            assert after == before


def test_the_calibration_reaches_the_ad_and_its_readers(tmp_path: Path):
    from larkps.store.db import Store

    with Store(tmp_path / "s.sqlite") as store:
        record_transfers(store, "local", transfers(5, 0.5e9))
        found = pair_calibrations(store, ESTIMATES, NOW, POLICY, site_of)
    chosen = calibrate_estimates(ESTIMATES, found)[1]
    context = AdContext(update_time=NOW, lifetime=900, sequence=0, daemon_start=NOW)
    main = stats("ALPHA", "BRAVO")
    ad = path_ad(main, context, PathExtras(estimate=chosen))
    parsed = classad2.parseOne(ad.printOld())
    assert parsed["LarkPS_CalibrationRatio"] == pytest.approx(1 / 1.5, abs=1e-4)
    assert parsed["LarkPS_CalibrationCount"] == 5 and parsed["LarkPS_CalibrationApplied"] is True
    assert math.isclose(parsed["LarkPS_ExpectedLowerMbps"], 1e3 / 1.5, rel_tol=1e-9)
    view = view_from_ad(parsed)
    assert view is not None and view.calibration is not None
    assert "calibrated x0.667" in view.rationale
    document = path_document(dict(parsed))
    assert document["calibration"]["Ratio"] == parsed["LarkPS_CalibrationRatio"]
