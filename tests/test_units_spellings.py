"""Rates and sizes: every documented spelling parses (docs/units.md); bad ones name their option."""

from __future__ import annotations

import pytest

from larkps.cli.app import main
from larkps.units import format_rate, parse_rate, parse_size

MEGA, GIGA = 10**6, 10**9

RATES = [
    ("100Mbit", 100 * MEGA),
    ("100Mbps", 100 * MEGA),
    ("100mbit", 100 * MEGA),
    ("100 Mbit/s", 100 * MEGA),
    ("100Mb/s", 100 * MEGA),
    ("1Gbit", GIGA),
    ("1.5Gbps", 1.5 * GIGA),
    ("12.5MB/s", 12.5 * MEGA * 8),
    ("12.5MBps", 12.5 * MEGA * 8),
    ("1.25GByte/s", 1.25 * GIGA * 8),
    ("800kbit", 800_000),
    ("1Mibit", 2**20),
    ("10Gbit/s", 10 * GIGA),
]
SIZES = [
    ("2GB", 2 * GIGA),
    ("500MiB", 500 * 2**20),
    ("1.5TB", 1_500_000_000_000),
    ("2gb", 2 * GIGA),
    ("800Mbit", 100 * MEGA),
    ("4096", 4096),
    ("1KiB", 1024),
]


@pytest.mark.parametrize(("text", "bits_per_second"), RATES)
def test_rate_spellings(text: str, bits_per_second: float):
    assert parse_rate(text) == pytest.approx(bits_per_second)


@pytest.mark.parametrize(("text", "size"), SIZES)
def test_size_spellings(text: str, size: int):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "fast", "100", "100M", "2GB", "-5Mbit", "1e9bit", "5Mbit/h"])
def test_malformed_rates(text: str):
    with pytest.raises(ValueError, match="expected a rate"):
        parse_rate(text)


@pytest.mark.parametrize("text", ["", "big", "2GB/s", "-1GB", "2 parsecs"])
def test_malformed_sizes(text: str):
    with pytest.raises(ValueError, match="expected a size"):
        parse_size(text)


def test_format_rate_round_trips():
    for text, value in RATES:
        assert parse_rate(format_rate(value)) == pytest.approx(value, rel=1e-3), text


DAG_ARGS = ["throttle", "dag", "x.dag", "--category", "xfer", "--source-site", "A"]
BAD_VALUES = [
    ([*DAG_ARGS, "--bytes-per-job", "2 parsecs", "--bandwidth", "1Gbit"], "--bytes-per-job"),
    ([*DAG_ARGS, "--bytes-per-job", "0GB", "--bandwidth", "1Gbit"], "--bytes-per-job"),
    ([*DAG_ARGS, "--per-job-rate", "fast", "--bandwidth", "1Gbit"], "--per-job-rate"),
    ([*DAG_ARGS, "--per-job-rate", "1Mbit", "--bandwidth", "1GB"], "--bandwidth"),
    (["ratelimit", "apply", "--netns", "j", "--dev", "v", "--rate", "100"], "--rate"),
]


@pytest.mark.parametrize(("argv", "option"), BAD_VALUES, ids=[o for _, o in BAD_VALUES])
def test_malformed_option_values_are_usage_errors_naming_the_option(
    argv: list[str], option: str, capsys: pytest.CaptureFixture[str]
):
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert f"argument {option}:" in capsys.readouterr().err
