"""Search archives from config to cycle: keys, credentials, check-config, pipeline."""

from __future__ import annotations

import copy
import json
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from search_pages import hits, load, serve, serve_empty

from larkps.cli.app import main
from larkps.config.credentials import Secret
from larkps.config.settings import SEARCH_INDEX_KEYS, load_settings, settings_from_dict
from larkps.errors import ConfigError
from larkps.model import Family
from larkps.pipeline import open_sources, run_cycle
from larkps.sources import HttpOptions, JsonClient, OpenSearchSource, PsEsSource, search_source
from larkps.sources.search.learned import LearnedSites
from larkps.sources.search.specs import OPENSEARCH_INDICES, PSES_INDICES

CONFIGS = Path(__file__).parent / "fixtures" / "config"
PASSWORD = "n0t-in-any-output"
T0 = 1735725600  # 2025-01-01T10:00:00Z


@pytest.fixture(autouse=True)
def _fresh_learned_sites() -> Iterator[None]:
    LearnedSites.forget()
    yield
    LearnedSites.forget()


def archive(kind: str, url: str = "https://es.example.org:9200", **extra: Any) -> dict[str, Any]:
    return {"name": "a", "kind": kind, "url": url, **extra}


def test_index_families_in_config_match_the_sources():
    assert SEARCH_INDEX_KEYS["opensearch"] == tuple(s.name for s in OPENSEARCH_INDICES)
    assert SEARCH_INDEX_KEYS["ps-es"] == tuple(s.name for s in PSES_INDICES)


def test_search_keys_reach_the_sources(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LARKPS_TEST_ES_PASSWORD", PASSWORD)
    document = {
        "archives": [
            archive(
                "ps-es",
                username="reader",
                password_env="LARKPS_TEST_ES_PASSWORD",
                search={"mode": "summary", "production_only": False, "indices": {"owd": "ps_owd*"}},
            ),
            archive("opensearch", "https://ps.example.org/opensearch/", name="b"),
        ]
    }
    wlcg, perfsonar = settings_from_dict(document).archives
    assert wlcg.credentials is not None and wlcg.credentials.password == Secret(PASSWORD)
    assert wlcg.credentials.as_auth() == ("reader", PASSWORD)
    made = search_source(wlcg, JsonClient("a", HttpOptions()), settings_from_dict(document).sites)
    assert isinstance(made, PsEsSource)
    assert (made.mode, made.production_only) == ("summary", False)
    assert {s.name: i for s, i in made.indices}["owd"] == "ps_owd*"
    other = search_source(
        perfsonar, JsonClient("b", HttpOptions()), settings_from_dict(document).sites
    )
    assert isinstance(other, OpenSearchSource) and other.mode == "raw"
    assert [i for _, i in other.indices] == [s.default_index for s in OPENSEARCH_INDICES]
    assert perfsonar.credentials is None


def test_password_file_is_read_once_without_its_newline(tmp_path: Path):
    secret = tmp_path / "es.password"
    secret.write_text(PASSWORD + "\n")
    document = {"archives": [archive("opensearch", username="u", password_file=str(secret))]}
    (one,) = settings_from_dict(document).archives
    assert one.credentials is not None and one.credentials.password.reveal() == PASSWORD
    secret.write_text("\n")
    with pytest.raises(ConfigError, match="is empty") as caught:
        settings_from_dict(document)
    assert caught.value.key_path == "archives[0].password_file"


def test_credentials_in_a_url_are_refused_without_echoing_them():
    with pytest.raises(ConfigError) as caught:
        load_settings(CONFIGS / "credentials_in_url.toml")
    assert "hunter2" not in str(caught.value)


def test_check_config_shows_set_instead_of_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setenv("LARKPS_TEST_ES_PASSWORD", PASSWORD)
    config = tmp_path / "larkps.toml"
    config.write_text(
        '[[archives]]\nname = "wlcg"\nkind = "ps-es"\nurl = "https://es.example.org:9200"\n'
        'username = "reader"\npassword_env = "LARKPS_TEST_ES_PASSWORD"\n'
        '[archives.search]\nmode = "summary"\n'
    )
    assert main(["check-config", str(config)]) == 0
    out = capsys.readouterr().out
    assert PASSWORD not in out
    resolved = json.loads(out)["archives"][0]
    assert resolved["username"] == "reader"
    assert resolved["password_env"] == "LARKPS_TEST_ES_PASSWORD"  # where it is, not what
    assert resolved["search"]["mode"] == "summary"


def throughput_discovery(answer: dict[str, Any]) -> dict[str, Any]:
    """The composite bucket a cluster would return for the documents of one pair."""
    documents = [h["_source"] for h in hits(answer)]
    newest = copy.deepcopy(hits(answer)[-1])
    bucket = {
        "key": {"src": documents[0]["src"], "dest": documents[0]["dest"]},
        "doc_count": len(documents),
        "newest": {"hits": {"hits": [newest]}},
        "throughput__n": {"value": len(documents)},
        "packet-retransmits__n": {"value": len(documents)},
    }
    return {"hits": {"hits": []}, "aggregations": {"pairs": {"buckets": [bucket]}}}


def test_a_cycle_reads_a_wlcg_datastore_with_basic_auth(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("LARKPS_TEST_ES_PASSWORD", PASSWORD)
    answer = load("pses", "search_throughput.json")
    documents = [h["_source"] for h in hits(answer)]
    route = serve(httpserver, "ps_throughput", [answer], [throughput_discovery(answer)])
    others = serve_empty(httpserver, "ps_owd", "ps_packetloss", "ps_retransmits")
    document = {
        "archives": [
            archive(
                "ps-es",
                httpserver.url_for("/"),
                username="reader",
                password_env="LARKPS_TEST_ES_PASSWORD",
                retries=0,
            )
        ],
        "windows": {"list": ["1d"], "default": "1d"},
    }
    settings = settings_from_dict(document)
    result = run_cycle(settings, T0 + 86400 - 1, publish=False)  # window (now - 1d, now]
    (stats,) = result.stats
    assert (stats.path.source_site, stats.path.destination_site) == ("SITE-A", "SITE-B")
    assert stats.path.family is Family.IPV4
    values = [d["throughput"] for d in documents]
    assert stats.throughput.count == len(values)
    assert stats.throughput.median == pytest.approx(statistics.median(values))
    assert not result.report.problems
    authorised = route.auth + [a for o in others for a in o.auth]
    assert authorised and all(a and a.startswith("Basic ") for a in authorised)
    with open_sources(settings) as sources:
        assert [type(s).__name__ for s in sources] == ["PsEsSource"]


def test_an_incremental_cycle_stores_search_points_and_fetches_only_new_ones(
    httpserver: HTTPServer, tmp_path: Path
):
    answer = load("pses", "search_throughput.json")
    documents = [h["_source"] for h in hits(answer)]
    route = serve(httpserver, "ps_throughput", [answer], [throughput_discovery(answer)])
    serve_empty(httpserver, "ps_owd", "ps_packetloss", "ps_retransmits")
    document = {
        "larkps": {"state_dir": str(tmp_path)},
        "fetch": {"incremental": True},
        "archives": [archive("ps-es", httpserver.url_for("/"), retries=0)],
        "windows": {"list": ["1d"], "default": "1d"},
    }
    settings = settings_from_dict(document)
    now = T0 + 86400 - 1
    first = run_cycle(settings, now, publish=False)
    assert first.stats[0].throughput.count == len(documents)
    searched = len(route.bodies)
    later = now + 60
    second = run_cycle(settings, later, publish=False)
    (stats,) = second.stats  # read back from the store, with the documents' site names
    assert (stats.path.source_site, stats.path.destination_site) == ("SITE-A", "SITE-B")
    in_window = [d for d in documents if d["timestamp"] // 1000 > later - 86400]
    assert stats.throughput.count == len(in_window)
    newest_ms = max(d["timestamp"] for d in documents)
    for body in route.bodies[searched:]:  # only what is newer than the stored points
        (window,) = [
            f["range"]["timestamp"] for f in body["query"]["bool"]["filter"] if "range" in f
        ]
        assert window["gte"] > newest_ms
