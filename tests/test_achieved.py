"""History ads -> achieved transfers, and transfers in the state store.

The base ad is a real one: a job of the mini pool (HTCondor 25.13.2) with a 50 MB
input, as ``schedd.history()`` returned it (tests/fixtures/history/pool-cedar.ad).
Edge cases are that ad with attributes changed or removed as the named situation
leaves them.
"""

from __future__ import annotations

import copy
from pathlib import Path

import classad2
import pytest

from larkps.config.sites import SiteMap, SiteRule
from larkps.publish.schedd_history import parse_ads
from larkps.stats.achieved import AchievedTransfer, End, Skipped, parse_history_ad
from larkps.stats.achieved_state import (
    fill_predictions,
    latest_completion,
    prune_transfers,
    record_transfers,
    samples_by_pair,
    stored_transfers,
)
from larkps.store.db import Store

FIXTURE = Path(__file__).parent / "fixtures" / "history" / "pool-cedar.ad"


@pytest.fixture()
def ad() -> classad2.ClassAd:
    return classad2.parseOne(FIXTURE.read_text())


def test_the_recorded_pool_ad(ad: classad2.ClassAd):
    parsed = parse_history_ad(ad)
    assert isinstance(parsed, AchievedTransfer)
    # TransferInputStats: CedarSizeBytesLastRun = 50000054; dates 1796236750 -> 1796236752
    assert parsed.bytes == 50_000_054 and parsed.seconds == 2
    assert parsed.rate_bps == pytest.approx(50_000_054 * 8 / 2)
    assert parsed.source == End(site="BRAVO-T1")  # +LarkPSSourceSite
    assert parsed.destination == End(site=None, host="vm")  # LastRemoteHost slot2@vm
    assert parsed.job == "vm#1.1#1796236748" and parsed.completed == 1796236753
    assert parsed.method == "cedar"


def skip_reason(ad: classad2.ClassAd) -> str:
    parsed = parse_history_ad(ad)
    assert isinstance(parsed, Skipped), parsed
    return parsed.reason


def test_no_transfer(ad: classad2.ClassAd):
    for name in ("TransferInputStats", "TransferInputSizeMB"):
        del ad[name]
    assert skip_reason(ad) == "no input transfer recorded"


def test_zero_bytes(ad: classad2.ClassAd):
    ad["TransferInputStats"] = classad2.ClassAd({"CedarSizeBytesLastRun": 0})
    assert skip_reason(ad) == "no input bytes transferred"


def test_zero_duration(ad: classad2.ClassAd):
    ad["JobCurrentStartTransferInputDate"] = ad["JobCurrentFinishTransferInputDate"]
    assert skip_reason(ad) == "input transfer too short to time (whole seconds)"
    ad["JobCurrentStartTransferInputDate"] = ad["JobCurrentFinishTransferInputDate"] + 5
    assert skip_reason(ad) == "input transfer too short to time (whole seconds)"


@pytest.mark.parametrize(
    ("missing", "reason"),
    [
        ("JobCurrentStartTransferInputDate", "no input transfer dates"),
        ("JobCurrentFinishTransferInputDate", "no input transfer dates"),
        ("JobStatus", "not completed"),
    ],
)
def test_missing_attributes(ad: classad2.ClassAd, missing: str, reason: str):
    del ad[missing]
    assert skip_reason(ad) == reason


def test_no_completion_date_and_no_execute_host(ad: classad2.ClassAd):
    second = copy.deepcopy(ad)
    del ad["CompletionDate"]
    del ad["EnteredCurrentStatus"]
    assert skip_reason(ad) == "no CompletionDate"
    del second["LastRemoteHost"]
    assert skip_reason(second) == "no execute site or host"


def test_not_completed(ad: classad2.ClassAd):
    ad["JobStatus"] = 3  # removed
    assert skip_reason(ad) == "not completed"


def test_statistics_missing_fall_back_to_the_submit_size(ad: classad2.ClassAd):
    del ad["TransferInputStats"]
    parsed = parse_history_ad(ad)
    assert isinstance(parsed, AchievedTransfer)
    assert parsed.bytes == 48 * 2**20 and parsed.method == "size-estimate"


def test_url_transfers_add_up_and_name_the_source_host(ad: classad2.ClassAd):
    del ad["LarkPSSourceSite"]
    ad["TransferInput"] = "input.bin, https://Data.Example.org:8443/store/x.root"
    ad["TransferInputStats"] = classad2.ClassAd(
        {"CedarSizeBytesLastRun": 1000, "HttpsSizeBytesLastRun": 4_000_000_000,
         "HttpsFilesCountLastRun": 1}
    )  # fmt: skip
    ad["JobCurrentFinishTransferInputDate"] = ad["JobCurrentStartTransferInputDate"] + 40
    parsed = parse_history_ad(ad)
    assert isinstance(parsed, AchievedTransfer)
    assert parsed.bytes == 4_000_001_000 and parsed.method == "cedar+https"
    assert parsed.source == End(host="data.example.org")
    assert parsed.rate_bps == pytest.approx(4_000_001_000 * 8 / 40)


def test_the_submit_host_is_the_last_resort_source(ad: classad2.ClassAd):
    del ad["LarkPSSourceSite"]
    assert parse_history_ad(ad).source == End(host="vm")  # type: ignore[union-attr]
    ad["LarkNetworkDataSite"] = "CHARLIE-T2"
    assert parse_history_ad(ad).source == End(site="CHARLIE-T2")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "value", [2**62, 1e300, float("inf"), float("nan"), -5, True, "50000054", 1.5]
)
def test_huge_or_bad_numbers_are_not_taken(ad: classad2.ClassAd, value: object):
    del ad["TransferInputSizeMB"]
    ad["TransferInputStats"] = classad2.ClassAd({"CedarSizeBytesLastRun": value})
    assert skip_reason(ad) == "no input transfer recorded"


def test_large_valid_values_are_exact(ad: classad2.ClassAd):
    size = 2**62 - 1
    ad["TransferInputStats"] = classad2.ClassAd({"CedarSizeBytesLastRun": size})
    parsed = parse_history_ad(ad)
    assert isinstance(parsed, AchievedTransfer) and parsed.bytes == size


@pytest.mark.parametrize("bad", ["a b", "x;rm -rf /", "", "-lead", "é-site", "a" * 65, "SITE\n"])
def test_untrusted_site_names_are_refused(ad: classad2.ClassAd, bad: str):
    ad["LarkPSSourceSite"] = bad
    ad["MachineAttrLarkPS_Site0"] = bad
    parsed = parse_history_ad(ad)
    assert isinstance(parsed, AchievedTransfer)
    assert parsed.source.site is None and parsed.destination.site is None
    ad["LastRemoteHost"] = f"slot1@{bad}"
    parsed = parse_history_ad(ad)
    assert isinstance(parsed, AchievedTransfer) or parsed.reason == "no execute site or host"


def test_the_rate_limit_and_network_accounting_are_kept(ad: classad2.ClassAd):
    ad["LarkNetworkRateLimitMbps"] = 99.5
    ad["LarkNetworkBytesReceived"] = 3400
    ad["LarkNetworkBytesSent"] = 1200
    parsed = parse_history_ad(ad)
    assert isinstance(parsed, AchievedTransfer)
    assert parsed.rate_limit_bps == pytest.approx(99.5e6)
    assert (parsed.network_received, parsed.network_sent) == (3400, 1200)


def test_transfers_in_the_store_map_by_todays_site_map(ad: classad2.ClassAd, tmp_path: Path):
    unknown = copy.deepcopy(ad)
    unknown["GlobalJobId"] = "vm#1.2#1796236748"
    unknown["LastRemoteHost"] = "slot1@elsewhere.example"
    transfers, skipped = parse_ads([ad, unknown, classad2.ClassAd({"JobStatus": 2})])
    assert len(transfers) == 2 and [s.reason for s in skipped] == ["not completed"]
    sites = SiteMap((SiteRule(site="ALPHA-T2", hosts=("vm",)),))

    def site_of(host: str) -> str | None:
        found = sites.site_for(host)
        return None if found == host else found

    with Store(tmp_path / "s.sqlite") as store:
        assert record_transfers(store, "local", transfers) == 2
        assert record_transfers(store, "local", transfers) == 0  # once per job
        assert latest_completion(store, "local") == 1796236753
        stored = stored_transfers(store, site_of, 0)
        assert [s.pair for s in stored] == [("BRAVO-T1", "ALPHA-T2"), None]
        filled = fill_predictions(store, stored, {("BRAVO-T1", "ALPHA-T2"): 1e9}, 1796240000)
        assert [s.predicted_bps for s in filled] == [1e9, None]
        again = fill_predictions(
            store, stored_transfers(store, site_of, 0), {("BRAVO-T1", "ALPHA-T2"): 5e9}, 1
        )
        assert again[0].predicted_bps == 1e9  # the first cycle's figure is kept
        samples = samples_by_pair(again)
        assert list(samples) == [("BRAVO-T1", "ALPHA-T2")]
        assert samples[("BRAVO-T1", "ALPHA-T2")][0].ratio == pytest.approx(200.000216e6 / 1e9)
        assert prune_transfers(store, 1796236753) == 2
        assert stored_transfers(store, site_of, 0) == []
