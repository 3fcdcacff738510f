"""Configuration loading: one fixture file per failure mode."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from larkps.cli.app import main
from larkps.config.settings import adhoc_settings, load_settings
from larkps.errors import ConfigError

CONFIGS = Path(__file__).parent / "fixtures" / "config"
REPO = Path(__file__).resolve().parents[1]

FAILURES = [
    ("unknown_key", "archives[0].colour", "unknown key"),
    ("unknown_section", "logging", "unknown key"),
    ("missing_archives", "archives", "at least one [[archives]]"),
    ("bad_kind", "archives[0].kind", 'expected one of "esmond", "embedded"'),
    ("bad_url", "archives[0].url", "http:// or https:// URL"),
    ("missing_url", "archives[0].url", "required key is missing"),
    ("bad_duration", "archives[0].read_timeout", "duration"),
    ("bad_type", "archives[0].max_connections", "expected an integer, got a string"),
    ("bad_network", "sites.UNL.networks[1]", "IPv4 or IPv6 network"),
    ("empty_site", "sites.UNL", "at least one of hosts, domains or networks"),
    ("duplicate_archive", "archives[1].name", "duplicate archive name"),
    ("bad_default_window", "windows.default", "one of windows.list"),
    ("not_toml", "", "not valid TOML"),
    ("bad_fraction", "throttle.target_utilisation", "fraction"),
    ("min_over_max", "throttle.min_jobs", "must not exceed"),
    ("embedded_with_url", "archives[0].url", "no url"),
    ("missing_ca_bundle", "archives[0].ca_bundle", "file not found"),
    ("bad_site_name", "sites.UNL; Requirements = true", "site name"),
    ("bad_bool", "archives[0].verify_tls", "true or false"),
    ("bad_window_list", "windows.list[1]", "duration"),
    ("embedded_bad_flavour", "archives[0].embedded.flavour", '"esmond", "elmond"'),
    ("unknown_publish_key", "publish.file.mode", "unknown key"),
    ("throttle_bad_min_quality", "throttle.min_quality", "fraction"),
    ("throttle_bad_collapse_fraction", "throttle.collapse_fraction", "fraction"),
    ("throttle_bad_transfer_time", "throttle.transfer_time", "duration"),
    ("throttle_bad_site_rate", "throttle.site_capacity.UNL.ingress", "expected a rate"),
    ("throttle_bad_capacity_site", "throttle.site_capacity.UNL; rm -rf", "site name"),
    ("throttle_empty_site_capacity", "throttle.site_capacity.UNL", "ingress and/or egress"),
    ("bad_metrics_port", "daemon.metrics_port", "integer <= 65535"),
    ("search_bad_mode", "archives[0].search.mode", 'expected one of "raw", "summary"'),
    ("search_on_esmond", "archives[0].search", 'only archives of kind "opensearch" or "ps-es"'),
    ("search_bad_index", "archives[0].search.indices.owd", "an index name"),
    ("search_unknown_index", "archives[0].search.indices.owd", "unknown key"),
    ("search_production_on_opensearch", "archives[0].search.production_only", '"ps-es"'),
    ("credentials_missing_password_file", "archives[0].password_file", "file not found"),
    ("credentials_unset_env", "archives[0].password_env", "is not set"),
    ("credentials_both_sources", "archives[0].password_env", "not both"),
    ("credentials_no_username", "archives[0].username", "a password needs a username"),
    ("credentials_no_password", "archives[0].username", "needs password_file or password_env"),
    ("credentials_in_url", "archives[0].url", "credentials in the url"),
    ("credentials_on_embedded", "archives[0].username", "takes no credentials"),
    ("credentials_bad_env_name", "archives[0].password_env", "environment variable name"),
    ("credentials_bad_username", "archives[0].username", "without ':'"),
    ("fetch_bad_event_type", "archives[0].event_types[1]", "expected one of failures"),
    ("fetch_bad_dns_match_rule", "archives[0].filters.dns_match_rule", '"only-v6"'),
    ("fetch_bad_family", "archives[0].filters.families[0]", '"ipv4" or "ipv6"'),
    ("fetch_bad_response_size", "archives[0].max_response_size", "size such as"),
    ("fetch_bad_backoff", "archives[0].retry_backoff", "a number from 0.0 to 60.0"),
    ("fetch_big_page", "archives[0].page_size", "<= 10000"),
    ("fetch_event_types_on_search", "archives[0].event_types", 'only archives of kind "esmond"'),
    ("fetch_short_retention", "fetch.retention", "longest of windows.list"),
    ("fetch_bad_writer", "fetch.writer", 'expected one of "auto", "process", "thread"'),
    ("cadence_shorter_than_cycle", "archives[1].interval", "at least [larkps] interval (5m)"),
    ("cadence_bad_duration", "archives[0].interval", "duration"),
    ("cadence_not_incremental", "archives[0].interval", "needs incremental fetching"),
    ("cadence_on_summary_mode", "archives[0].interval", "a summary-mode archive keeps nothing"),
    ("report_bad_rate", "report.bandwidth_warning", "expected a rate"),
    ("report_bad_loss", "report.loss_warning", "fraction"),
    ("report_bad_delay", "report.delay_critical_ms", "a number from 0.0"),
    ("report_critical_above_warning", "report.bandwidth_critical", "not be above"),
    ("report_loss_order", "report.loss_critical", "not be below loss_warning"),
    ("report_delay_order", "report.delay_critical_ms", "not be below delay_warning_ms"),
    ("report_bad_bytes_per_job", "report.bytes_per_job", "size such as"),
    ("report_bad_colour", "report.colours.ok", "a colour such as"),
    ("report_unknown_colour", "report.colours.background", "unknown key"),
    ("report_unknown_key", "report.threshold", "unknown key"),
    ("quality_bad_min_completeness", "quality.min_completeness", "fraction"),
    ("quality_bad_clock_error", "quality.clock_error_ms", "a number from 0.0"),
    ("alarms_bad_loss", "alarms.loss", "fraction"),
    ("alarms_bad_z", "alarms.bandwidth_z", "a number from -100.0 to 0.0"),
    ("alarms_bad_clear_after", "alarms.clear_after", ">= 1"),
    ("alarms_window_order", "alarms.delay_window", "shorter than delay_baseline"),
    ("alarms_bad_window", "alarms.loss_window", "duration"),
    ("model_bad_capacity", "model.path_capacity", "expected a rate"),
    ("model_bad_mss", "model.mss", ">= 500"),
    ("model_bad_constant", "model.mathis_constant", "a number from 0.1"),
]


@pytest.mark.parametrize(("name", "key_path", "problem"), FAILURES)
def test_each_failure_names_file_key_and_expectation(name: str, key_path: str, problem: str):
    path = CONFIGS / f"{name}.toml"
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    error = caught.value
    assert error.source == str(path)
    assert error.key_path == key_path
    assert problem in error.problem
    message = str(error)
    assert message.startswith(str(path))
    assert "\n" not in message


def test_every_fixture_file_is_covered():
    covered = {name for name, _, _ in FAILURES} | {"minimal"}
    assert {p.stem for p in CONFIGS.glob("*.toml")} == covered


def test_missing_file_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "nope.toml")


def test_minimal_config_gets_documented_defaults():
    settings = load_settings(CONFIGS / "minimal.toml")
    (archive,) = settings.archives
    assert (archive.name, archive.kind, archive.url) == ("ma", "esmond", "https://ps.example.org")
    assert archive.verify_tls is True
    assert (archive.connect_timeout, archive.read_timeout) == (5.0, 30.0)
    assert settings.windows.windows == (3600, 86400, 604800)
    assert settings.windows.default == 86400
    assert settings.publish.ad_lifetime == 900
    assert settings.publish.file is None
    assert not settings.sites


def test_example_config_is_valid_and_maps_sites():
    settings = load_settings(REPO / "config" / "larkps.example.toml")
    assert settings.archives[0].url == "https://ps-archive.example.org"
    assert settings.interval == 300
    sites = settings.sites
    assert sites.site_for("perfsonar-lat.unl.edu", "") == "UNL"
    assert sites.site_for("ps.chtc.wisc.edu", "") == "WISC"
    assert sites.site_for("unknown.example.net", "128.104.3.4") == "WISC"
    assert sites.site_for("unknown.example.net", "2600:900:1::5") == "UNL"
    assert sites.site_for("unknown.example.net", "192.0.2.1") == "unknown.example.net"


def test_demo_config_in_repo_is_the_packaged_one():
    repo_copy = (REPO / "config" / "demo.toml").read_bytes()
    packaged = (REPO / "larkps" / "data" / "demo.toml").read_bytes()
    assert repo_copy == packaged
    settings = load_settings(REPO / "config" / "demo.toml")
    assert settings.archives[0].kind == "embedded"


def test_settings_are_frozen():
    settings = load_settings(CONFIGS / "minimal.toml")
    with pytest.raises(AttributeError):
        settings.interval = 1  # type: ignore[misc]


def test_adhoc_settings_for_one_archive_have_no_site_map():
    settings = adhoc_settings("https://ps.example.org/esmond/perfsonar/archive/", 3600)
    assert settings.windows.default == 3600
    assert not settings.sites
    assert settings.sites.site_for("a.example.org", "192.0.2.1") == "a.example.org"


def test_site_map_prefers_name_then_domain_then_longest_network():
    from larkps.config.settings import settings_from_dict

    document = {
        "archives": [{"name": "a", "kind": "esmond", "url": "https://x.example"}],
        "sites": {
            "WIDE": {"networks": ["192.0.2.0/24"]},
            "NARROW": {"networks": ["192.0.2.128/25"]},
            "BYNAME": {"hosts": ["special.site.example"]},
            "BYDOMAIN": {"domains": ["site.example"]},
        },
    }
    sites = settings_from_dict(document).sites
    assert sites.site_for("special.site.example", "192.0.2.200") == "BYNAME"
    assert sites.site_for("other.site.example", "192.0.2.200") == "BYDOMAIN"
    assert sites.site_for("notsite.example", "192.0.2.200") == "NARROW"
    assert sites.site_for("x.other", "192.0.2.5") == "WIDE"
    assert sites.site_for("evilsite.example", "") == "evilsite.example"
    wide = next(r for r in sites.rules if r.site == "WIDE")
    assert wide.networks == (ipaddress.ip_network("192.0.2.0/24"),)


@pytest.mark.parametrize("table", ["sites", "throttle.site_capacity"])
def test_site_names_that_differ_only_in_case_are_a_config_error(tmp_path: Path, table: str):
    """ClassAd attribute names ignore case: CERN and cern would share one (classads.md)."""
    body = 'domains = ["cern.ch"]' if table == "sites" else 'ingress = "10Gbit"'
    config = tmp_path / "larkps.toml"
    config.write_text(
        '[[archives]]\nname = "a"\nkind = "embedded"\n'
        f"[{table}.CERN]\n{body}\n[{table}.cern]\n{body}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert f"{table}.cern" in str(caught.value) and "only in letter case" in str(caught.value)
    assert main(["check-config", str(config)]) == 2


def test_configured_site_capacities_are_one_map_for_the_model_cap():
    from larkps.config.settings import settings_from_dict
    from larkps.model import Family, PathKey
    from larkps.stats.analysis import Policies

    document = {
        "archives": [{"name": "a", "kind": "esmond", "url": "https://x.example"}],
        "throttle": {
            "site_capacity": {
                "A": {"egress": "1Gbit"},
                "B": {"ingress": "500Mbit", "egress": "3Gbit"},
            }
        },
    }
    settings = settings_from_dict(document)
    assert settings.throttle.capacities == {
        ("A", "egress"): 1e9,
        ("B", "ingress"): 500e6,
        ("B", "egress"): 3e9,
    }
    policies = Policies.from_settings(settings)
    assert policies.capacity(PathKey("A", "B", Family.IPV4)) == 500e6  # B's ingress is smaller
    assert policies.capacity(PathKey("B", "A", Family.IPV4)) == 3e9
    assert policies.capacity(PathKey("C", "D", Family.IPV6)) == settings.model.path_capacity_bps
