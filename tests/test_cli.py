"""The command-line contract: exit codes, one-line errors, no half-written output."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from larkps import __version__
from larkps.cli.app import build_parser, main
from larkps.daemon.logs import JsonFormatter

CONFIGS = Path(__file__).parent / "fixtures" / "config"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_version_via_python_m():
    done = subprocess.run(
        [sys.executable, "-m", "larkps", "--version"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"larkps {__version__}"


def test_every_command_has_help_and_an_example():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    commands = subparsers.choices  # type: ignore[attr-defined]
    assert {"demo", "once", "stats", "ads", "check-config"} <= set(commands)
    for name, sub in commands.items():
        assert sub.description, name
        assert sub.epilog and sub.epilog.startswith("example: larkps "), name


def test_check_config_prints_resolved_settings(capsys: pytest.CaptureFixture[str]):
    assert main(["check-config", str(CONFIGS / "minimal.toml")]) == 0
    resolved = json.loads(capsys.readouterr().out)
    assert resolved["archives"][0]["read_timeout"] == 30.0
    assert resolved["windows"]["default"] == 86400


def key_paths(table: object, prefix: str = "") -> set[str]:
    """Every key of a TOML document or JSON object, as dotted paths (arrays by index)."""
    if isinstance(table, list) and table and all(isinstance(t, dict) for t in table):
        return {p for i, t in enumerate(table) for p in key_paths(t, f"{prefix}[{i}]")}
    if not isinstance(table, dict):
        return set()
    paths = set()
    for key, value in table.items():
        path = f"{prefix}.{key}" if prefix else key
        paths |= {path} | key_paths(value, path)
    return paths


def test_check_config_prints_every_key_of_the_file_under_its_name(
    capsys: pytest.CaptureFixture[str],
):
    example = Path(__file__).parent.parent / "config" / "larkps.example.toml"
    assert main(["check-config", str(example)]) == 0
    resolved = json.loads(capsys.readouterr().out)
    written = key_paths(tomllib.loads(example.read_text()))
    assert written and written <= key_paths(resolved), written - key_paths(resolved)


def test_check_config_prints_sections_the_file_leaves_out(capsys: pytest.CaptureFixture[str]):
    assert main(["check-config", str(CONFIGS / "minimal.toml")]) == 0
    resolved = json.loads(capsys.readouterr().out)
    assert "daemon" not in tomllib.loads((CONFIGS / "minimal.toml").read_text())
    assert resolved["daemon"] == {
        "metrics_address": "127.0.0.1",
        "metrics_port": 0,
        "shutdown_timeout": 30,
        "misfire_grace": 60,
    }
    for section in ("larkps", "windows", "publish", "throttle", "fetch", "quality", "alarms"):
        assert resolved[section], section
    assert resolved["model"]["path_capacity"] == 10e9
    assert resolved["archives"][0]["max_response_size"] == 64 * 2**20


def test_sites_help_lists_only_what_exists(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit):
        main(["sites", "--help"])
    out = capsys.readouterr().out
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices  # type: ignore[attr-defined]
    actions = next(a for a in commands["sites"]._actions if a.dest == "sites_action").choices
    assert set(actions) == {"import-psconfig"}
    assert "inspect" not in out and "import-psconfig" in out


def test_bad_config_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]):
    assert main(["check-config", str(CONFIGS / "bad_kind.toml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "bad_kind.toml: archives[0].kind: expected one of" in err
    assert "Traceback" not in err


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as caught:
        main(["stats", "--archive", "ps.example.org", "--window", "forever"])
    assert caught.value.code == 2
    assert "--window" in capsys.readouterr().err


def test_bad_archive_url_is_a_usage_error(capsys: pytest.CaptureFixture[str]):
    assert main(["stats", "--archive", "ftp://ps.example.org"]) == 2
    assert "--archive" in capsys.readouterr().err


def test_unreachable_archive_exits_1_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    port = closed_port()
    ads = tmp_path / "larkps.ads"
    config = tmp_path / "larkps.toml"
    config.write_text(
        f'[[archives]]\nname = "down"\nkind = "esmond"\nurl = "http://127.0.0.1:{port}"\n'
        f'connect_timeout = "2s"\n[publish.file]\npath = "{ads}"\n'
    )
    assert main(["once", "--config", str(config)]) == 1
    err = capsys.readouterr().err.strip()
    assert (
        err == f"larkps: error: archive down: cannot connect to http://127.0.0.1:{port}"
        "/esmond/perfsonar/archive/: connection refused"
    )
    assert not ads.exists()
    assert list(tmp_path.iterdir()) == [config]


def test_traceback_only_with_verbose():
    url = f"http://127.0.0.1:{closed_port()}"
    for flags, shown in (([], False), (["-v"], True)):
        done = subprocess.run(
            [sys.executable, "-m", "larkps", *flags, "stats", "--archive", url],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 1
        assert ("Traceback" in done.stderr) is shown
        assert done.stderr.strip().endswith(
            f"cannot connect to {url}/esmond/perfsonar/archive/: connection refused"
        )


@pytest.mark.parametrize(
    ("argv", "level", "json_lines"),
    [
        (["check-config", "CONFIG", "--log-format", "json", "-v"], logging.INFO, True),
        (["--log-format", "json", "check-config", "CONFIG"], logging.WARNING, True),
        (["-v", "check-config", "CONFIG", "--verbose"], logging.DEBUG, False),
        (["check-config", "CONFIG"], logging.WARNING, False),
    ],
)
def test_global_options_also_after_the_subcommand(
    argv: list[str], level: int, json_lines: bool, capsys: pytest.CaptureFixture[str]
):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        config = str(CONFIGS / "minimal.toml")
        assert main([config if word == "CONFIG" else word for word in argv]) == 0
        assert root.level == level
        formatter = root.handlers[-1].formatter
        assert isinstance(formatter, JsonFormatter) is json_lines
    finally:
        root.handlers, root.level = saved[0], saved[1]
    capsys.readouterr()


def test_a_bad_global_option_after_the_subcommand_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
):
    with pytest.raises(SystemExit) as caught:
        main(["check-config", str(CONFIGS / "minimal.toml"), "--log-format", "xml"])
    assert caught.value.code == 2
    assert "--log-format: invalid choice: 'xml'" in capsys.readouterr().err


def test_verbose_after_the_subcommand_shows_the_traceback():
    url = f"http://127.0.0.1:{closed_port()}"
    done = subprocess.run(
        [sys.executable, "-m", "larkps", "stats", "--archive", url, "-v"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "Traceback" in done.stderr
