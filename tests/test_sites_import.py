"""``larkps sites import-psconfig``: pSConfig template -> site map larkps accepts."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from larkps.cli.app import main
from larkps.config.psconfig import import_psconfig, render_toml
from larkps.config.settings import settings_from_dict
from larkps.config.sites import SiteMap

MESH = Path(__file__).parent / "fixtures" / "psconfig" / "mesh.json"


def site_map(text: str) -> SiteMap:
    archive = {"name": "a", "kind": "esmond", "url": "https://a.example"}
    return settings_from_dict({"archives": [archive], "sites": tomllib.loads(text)["sites"]}).sites


def test_template_sites_become_a_site_map_larkps_accepts():
    result = import_psconfig(json.loads(MESH.read_text()))
    sites = site_map(render_toml(result, "mesh.json"))
    assert [r.site for r in sites.rules] == ["CERN-PROD", "KEK.JP", "SITE-D", "UNL", "WISC"]
    assert sites.site_for("ps-bw.unl.edu") == "UNL"  # host object's site
    assert sites.site_for("ps-lat.unl.edu") == "UNL"  # case and trailing dot normalised
    assert sites.site_for("elsewhere.example", "2600:900:6:1::10") == "UNL"  # a label's address
    assert sites.site_for("elsewhere.example", "128.104.1.5") == "WISC"  # host _meta.site
    assert sites.site_for("elsewhere.example", "2001:1458:301:1::100") == "CERN-PROD"
    assert sites.site_for("ps.kek.jp") == "KEK.JP"  # a dotted name stays one site
    assert sites.site_for("ps.site-d.example") == "SITE-D"  # display-name fallback
    assert sites.site_for("evil.example.org") == "evil.example.org"  # skipped: its own site


def test_untrusted_names_are_reported_and_never_written():
    result = import_psconfig(json.loads(MESH.read_text()))
    text = render_toml(result, "mesh.json")
    assert "Requirements" not in text and "bad host" not in text and "OTHER" not in text
    reasons = "\n".join(result.skipped)
    assert 'address "evil": site name "X; Requirements = true" is not usable' in reasons
    assert 'address "nosite": no site' in reasons
    assert '"bad host name!" is neither a host name nor an IP' in reasons
    assert 'address "dup": ps-bw.unl.edu is already in site UNL' in reasons
    assert len(result.skipped) == 4


def test_command_prints_toml_and_reports_skips(capsys: pytest.CaptureFixture[str]):
    assert main(["sites", "import-psconfig", str(MESH)]) == 0
    captured = capsys.readouterr()
    assert site_map(captured.out).site_for("ps.cern.ch") == "CERN-PROD"
    assert captured.err.count("larkps: skipped ") == 4


def test_command_writes_the_output_atomically(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    output = tmp_path / "conf" / "sites.toml"
    assert main(["sites", "import-psconfig", str(MESH), "--output", str(output)]) == 0
    assert site_map(output.read_text()).site_for("ps-bw.unl.edu") == "UNL"
    assert capsys.readouterr().out == ""
    assert [p.name for p in output.parent.iterdir()] == ["sites.toml"]  # no temporary left


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not JSON"),
        ('{"groups": {}}', "not a pSConfig document"),
        ('{"addresses": {"x": {"address": "a.example"}}}', "no usable site"),
    ],
)
def test_bad_templates_exit_2_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, problem: str
):
    template = tmp_path / "mesh.json"
    template.write_text(content)
    output = tmp_path / "sites.toml"
    assert main(["sites", "import-psconfig", str(template), "--output", str(output)]) == 2
    err = capsys.readouterr().err
    assert problem in err and err.strip().splitlines()[-1].startswith("larkps: error: ")
    assert not output.exists()


def test_missing_template_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["sites", "import-psconfig", str(tmp_path / "nope.json")]) == 2
    assert "cannot read" in capsys.readouterr().err
