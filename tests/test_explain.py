"""`larkps explain A->B`: each published figure with its inputs, quality and rule."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest

from larkps.cli.app import main
from larkps.embedded import Mesh, MeshConfig
from larkps.histogram import pack_histogram
from larkps.model import Endpoint, Family, Metric, ModelPolicy, Point, Series, SeriesKey
from larkps.report.explain import PathFacts, Rules, explain_path
from larkps.stats.aggregate import QualityPolicy
from larkps.stats.aggregate.paths import path_stats

MESH = {"sites": 3, "seed": 5}
NOW = 1_700_000_000


def write_config(path: Path) -> None:
    path.write_text(
        '[[archives]]\nname = "mesh"\nkind = "embedded"\n'
        f"[archives.embedded]\nsites = {MESH['sites']}\nseed = {MESH['seed']}\n"
        '[windows]\nlist = ["1h", "24h"]\ndefault = "24h"\n'
    )


@pytest.mark.slow
def test_explain_states_each_published_figure_against_the_mesh_truth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    config = tmp_path / "larkps.toml"
    write_config(config)
    mesh = Mesh(MeshConfig(**MESH))
    source, destination = mesh.sites[1].name, mesh.sites[2].name
    assert main(["explain", f"{source}->{destination}/ipv4", "--config", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    head = re.match(rf"{source}->{destination}/ipv4: cycle at (\S+), main window 24h", lines[0])
    assert head, lines[0]
    now = int(datetime.strptime(head.group(1), "%Y-%m-%dT%H:%M:%S%z").timestamp())
    text = "\n".join(lines)
    for label, seconds in (("1h", 3600), ("24h", 86400)):
        for metric, group, scale, unit in (
            ("throughput", "ThroughputMbps", 1e-6, "Mbps"),
            ("rtt", "RttMs", 1.0, "ms"),
        ):
            truth = mesh.truth(source, destination, "ipv4", metric, now - seconds, now)
            line = re.search(
                rf"^LarkPS_{group}_{label}_Median = (\S+).*\((\d+) tests?\)$", text, re.M
            )
            assert line, (group, label)
            assert int(line.group(2)) == truth.count
            if truth.count:
                assert float(line.group(1)) == pytest.approx(truth.median * scale, rel=1e-3)
            assert unit in line.group(0) or truth.count == 0
        assert f"LarkPS_Loss_{label}_Fraction = " in text
        assert f"LarkPS_Failures_{label}_Count = " in text
    assert re.search(r"^LarkPS_ExpectedLowerMbps = [\d.]+ Mbps$", text, re.M)
    assert re.search(r"^  figure: lower bound \S+ = ", text, re.M)
    assert re.search(r"^  rule: the NWS forecast while the throughput figure is fresh", text, re.M)
    assert re.search(r"^  trust: (trusted|untrusted)", text, re.M)
    assert text.count("  quality: ") == 2 * 4  # 2 windows x (throughput, delay, RTT, loss)
    assert re.search(r"^LarkPS_Health = [\d.]+$", text, re.M)
    assert re.search(r"^LarkPS_Alarms = \{", text, re.M)


def test_explain_refuses_a_path_it_did_not_measure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    config = tmp_path / "larkps.toml"
    write_config(config)
    assert main(["explain", "NOWHERE->ELSEWHERE", "--config", str(config)]) == 2
    assert "no measured path NOWHERE->ELSEWHERE" in capsys.readouterr().err
    with pytest.raises(SystemExit) as caught:
        main(["explain", "NOWHERE", "--config", str(config)])
    assert caught.value.code == 2


def series(metric: Metric, key: str) -> Series:
    event = {Metric.OWDELAY: "histogram-owdelay", Metric.RTT: "histogram-rtt"}[metric]
    return Series(
        key=SeriesKey("arch", key, event),
        source=Endpoint("ps.a.example", "192.0.2.1", "A"),
        destination=Endpoint("ps.b.example", "192.0.2.2", "B"),
        family=Family.IPV4,
        metric=metric,
        tool="pscheduler/test",
        data_uri="/x",
    )


def test_explain_names_the_clock_rule_that_fired():
    """No time-error estimates: a median one-way delay above the median RTT."""
    owd = [Point(NOW - 60 * i, histogram=pack_histogram([30.0], [600])) for i in range(5)]
    rtt = [Point(NOW - 60 * i, histogram=pack_histogram([24.0], [10])) for i in range(5)]
    data = [(series(Metric.OWDELAY, "o"), owd), (series(Metric.RTT, "r"), rtt)]
    (stats,) = path_stats(data, 3600, NOW, QualityPolicy())
    facts = PathFacts([stats], 3600, None, [], None, [])
    rules = Rules(6 * 3600, 0.5, 10.0, 0.5, ModelPolicy(), 10e9)
    lines = explain_path(facts, rules, NOW)
    (clock,) = [line for line in lines if line.startswith("  clock: ")]
    assert clock == (
        "  clock: ERROR (..._ClockError = true): median one-way delay 30 ms > median RTT 24 ms"
    )
    assert "LarkPS_ExpectedLowerMbps: none" in lines[1]
