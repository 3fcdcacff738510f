"""ClassAds built, printed and parsed back with the real classad2 library."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import classad2
import pytest

from larkps.errors import PublishError
from larkps.model import Family, LossSummary, PathKey, PathStats, Summary
from larkps.publish.ads import (
    ATTRIBUTE_NAME,
    AdBuilder,
    AdContext,
    FilePublisher,
    path_ad,
    render,
    write_atomically,
)

CONTEXT = AdContext(update_time=1_700_000_000, lifetime=900, sequence=3, daemon_start=1_699_000_000)
EVIL = 'x"\nRequirements = true\nInjected = "y\\ ; ] [ \x01 \u00e9'


def stats(src: str = "ALPHA", dst: str = "BRAVO", hosts: tuple[str, ...] = ()) -> PathStats:
    return PathStats(
        path=PathKey(src, dst, Family.IPV6),
        window=86400,
        window_end=CONTEXT.update_time,
        throughput=Summary(
            count=12,
            median=9.4e9,
            p10=8e9,
            p90=9.5e9,
            mean=9e9,
            minimum=7e9,
            maximum=9.6e9,
            latest_ts=1_699_999_000,
        ),
        owdelay=Summary(count=1440, median=12.34, p10=12.3, p90=12.5, latest_ts=1_699_999_960),
        rtt=Summary(count=0),
        loss=LossSummary(count=1440, packets_sent=864000, packets_lost=86, latest_ts=1_699_999_960),
        failures=1,
        hosts=hosts,
    )


def parse_old(text: str) -> list[classad2.ClassAd]:
    return list(classad2.parseAds(text, classad2.ParserType.Old))


def test_path_ad_has_required_generic_ad_attributes_and_units():
    ad = path_ad(stats(), CONTEXT)
    assert ad["MyType"] == "LarkPSPath"
    assert ad["Name"] == "ALPHA->BRAVO/ipv6@larkps"
    assert ad["ClassAdLifetime"] == 900
    assert ad["UpdateSequenceNumber"] == 3
    assert ad["DaemonStartTime"] == 1_699_000_000
    assert ad["LarkPS_UpdateTime"] == CONTEXT.update_time
    assert ad["LarkPS_ThroughputMbps_24h_Median"] == pytest.approx(9400.0)
    assert ad["LarkPS_ThroughputMbps_24h_Count"] == 12
    assert ad["LarkPS_OneWayDelayMs_24h_Median"] == pytest.approx(12.34)
    assert ad["LarkPS_Loss_24h_Fraction"] == pytest.approx(86 / 864000)
    assert "LarkPS_RttMs_24h_Median" not in ad  # no data: absent, hence undefined
    assert classad2.ExprTree("LarkPS_RttMs_24h_Median").eval(ad) == classad2.Value.Undefined
    assert all(ATTRIBUTE_NAME.match(name) for name in ad)
    assert (ad["LarkPS_Loss_24h_PacketsSent"], ad["LarkPS_Loss_24h_PacketsLost"]) == (864000, 86)


def test_a_window_without_loss_tests_has_no_packet_totals():
    """No loss test in the window (an outage): no totals, like every other missing figure."""
    quiet = dataclasses.replace(stats(), loss=LossSummary(count=0))
    ad = path_ad(quiet, CONTEXT)
    assert ad["LarkPS_Loss_24h_Count"] == 0
    for absent in ("PacketsSent", "PacketsLost", "Fraction", "LatestTime"):
        assert f"LarkPS_Loss_24h_{absent}" not in ad


@pytest.mark.parametrize("fmt", ["old", "new", "json"])
def test_untrusted_names_round_trip_exactly_in_every_format(fmt: str):
    evil = stats(src=EVIL, dst="BRAVO]", hosts=(EVIL, "ends-in-backslash\\", "ps.bravo.example"))
    ads = [path_ad(evil, CONTEXT), path_ad(stats(), CONTEXT)]
    text = render(ads, fmt, CONTEXT.update_time)
    if fmt == "old":
        parsed = parse_old(text)
    elif fmt == "new":
        parsed = [classad2.ClassAd(line) for line in text.splitlines()]
    else:
        parsed = [
            classad2.parseOne(json.dumps(o, ensure_ascii=False), classad2.ParserType.JSON)
            for o in json.loads(text)
        ]
    assert len(parsed) == 2
    for original, back in zip(ads, parsed, strict=True):
        assert set(back.keys()) == set(original.keys())
        assert "Injected" not in back and "Requirements" not in back
        for key in original:
            assert back[key] == pytest.approx(original[key])
    cleaned = parsed[0]["LarkPS_SourceSite"]
    assert "\n" not in cleaned and "\x01" not in cleaned
    assert cleaned == EVIL.replace("\n", "").replace("\x01", "").replace("\\", "/")
    assert "ends-in-backslash/" in parsed[0]["LarkPS_Hosts"]


def test_attribute_names_are_whitelisted():
    builder = AdBuilder()
    with pytest.raises(PublishError, match="refusing attribute name"):
        builder.set("X = 1; Requirements", 1)


def test_old_syntax_file_has_header_and_blank_line_separated_ads(tmp_path: Path):
    target = tmp_path / "out" / "larkps.ads"
    ads = [path_ad(stats(), CONTEXT), path_ad(stats("BRAVO", "ALPHA"), CONTEXT)]
    FilePublisher(target).publish(ads, CONTEXT.update_time)
    text = target.read_text()
    assert text.startswith("# larkps ")
    assert "condor_advertise -multiple UPDATE_AD_GENERIC" in text
    assert len(text.split("\n\n")) == 2  # blank-line separated, for -multiple
    names = [ad["Name"] for ad in parse_old(text)]
    assert names == ["ALPHA->BRAVO/ipv6@larkps", "BRAVO->ALPHA/ipv6@larkps"]


def test_atomic_write_replaces_whole_file_or_nothing(tmp_path: Path):
    target = tmp_path / "larkps.ads"
    target.write_text("old content\n")
    write_atomically(target, "new content\n")
    assert target.read_text() == "new content\n"
    blocked = tmp_path / "not-a-dir" / "larkps.ads"
    blocked.parent.write_text("a file where the directory should be")
    with pytest.raises(PublishError, match="cannot write"):
        write_atomically(blocked, "x")
    assert target.read_text() == "new content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["larkps.ads", "not-a-dir"]


def test_atomic_write_into_a_file_path_that_is_a_directory_fails_cleanly(tmp_path: Path):
    target = tmp_path / "ads"
    target.mkdir()
    with pytest.raises(PublishError, match="cannot write"):
        write_atomically(target, "x")
    assert target.is_dir()
    assert [p.name for p in tmp_path.iterdir()] == ["ads"]  # no temporary file left behind
