"""Per-archive cadences: `interval` in [[archives]], honoured by daemon cycles only.

Two embedded archives on 127.0.0.1 with simulated clocks: "fast" (every cycle) and
"slow" (its own 15 min interval, a 5 min cycle). Requests are counted on the real
servers; the slow mesh has a site (DELTA-T2) the fast one lacks, so its paths in
the ads file show that skipped cycles still publish the stored figures.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import classad2
import pytest

from larkps.cli.commands.daemon import status_lines
from larkps.config.settings import settings_from_dict
from larkps.daemon.service import Daemon
from larkps.embedded import EmbeddedArchive, Mesh, MeshConfig
from larkps.errors import ConfigError
from larkps.ingest.cadence import is_due, not_due, slack_for
from larkps.pipeline import run_cycle
from larkps.store.db import Store
from larkps.store.points import IngestStore

STEP = 300  # the cycle interval, simulated seconds
SLOW = 900  # the slow archive's own interval
T0 = 1_700_000_100
TYPES = 'event_types = ["throughput", "histogram-owdelay"]'  # enough to see fetches
SLOW_ONLY_HOST = ".delta-t2.example.org"  # hosts are their own sites here


# -- the pure rule -----------------------------------------------------------------------
def test_due_rule():
    assert is_due(None, T0, T0)  # no own interval: every cycle
    assert is_due(SLOW, None, T0)  # never attempted
    assert not is_due(SLOW, T0, T0 + 600)
    assert is_due(SLOW, T0, T0 + 900)
    assert not is_due(SLOW, T0, T0 + 839, slack=60)
    assert is_due(SLOW, T0, T0 + 840, slack=60)  # a cycle that started late still counts
    assert is_due(SLOW, T0 + 3600, T0)  # the clock went back: due, never blocked


def test_not_due_keeps_order_and_slack_is_bounded():
    intervals = [("a", None), ("b", SLOW), ("c", 3600), ("d", SLOW)]
    attempts = {"a": T0, "b": T0, "c": T0 - 3600, "d": T0 - 900}
    assert not_due(intervals, attempts, T0 + 300) == ("b",)
    assert not_due(intervals, attempts, T0) == ("b",)
    assert slack_for(300, 60) == 60
    assert slack_for(60, 60) == 30  # at most half a cycle
    assert slack_for(300, 0) == 0


# -- configuration -----------------------------------------------------------------------
def document(**slow: Any) -> dict[str, Any]:
    return {
        "larkps": {"state_dir": "/tmp/larkps-cadence-unused", "interval": "5m"},
        "archives": [
            {"name": "fast", "kind": "esmond", "url": "https://a.example.org"},
            {"name": "slow", "kind": "esmond", "url": "https://b.example.org", **slow},
        ],
    }


def test_config_reads_an_own_interval():
    settings = settings_from_dict(document(interval="15m"))
    assert [a.fetch.interval for a in settings.archives] == [None, 900]
    assert settings_from_dict(document(interval="5m")).archives[1].fetch.interval == 300
    # a whole multiple of the cycle is not required
    assert settings_from_dict(document(interval=720)).archives[1].fetch.interval == 720


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("299s", "expected at least [larkps] interval (5m), got 299s"),
        ("soon", "expected a duration"),
        (True, "expected a duration"),
    ],
)
def test_config_rejects_bad_intervals(value: object, problem: str):
    with pytest.raises(ConfigError) as caught:
        settings_from_dict(document(interval=value), "cadence.toml")
    assert caught.value.key_path == "archives[1].interval"
    assert problem in caught.value.problem
    assert str(caught.value).startswith("cadence.toml")


# -- daemon cycles against real archives -----------------------------------------------------
@dataclass
class Rig:
    """Two archives, a simulated clock, and the config pointing at them."""

    state: Path
    config: Path
    fast: EmbeddedArchive
    slow: EmbeddedArchive
    clock: dict[str, float] = field(default_factory=lambda: {"now": float(T0)})

    def daemon(self) -> Daemon:
        return Daemon(self.config, clock=lambda: self.clock["now"])

    def counts(self) -> tuple[int, int]:
        return self.fast.requests_served, self.slow.requests_served

    def cycle(self, daemon: Daemon, at: int) -> tuple[dict[str, Any], int, int]:
        """One daemon cycle at ``at``; its document and the requests each archive served."""
        self.clock["now"] = float(at)
        before = self.counts()
        document = json.loads(json.dumps(daemon.run_one_cycle()))  # as recorded
        after = self.counts()
        return document, after[0] - before[0], after[1] - before[1]

    def attempts(self) -> dict[str, int]:
        with Store.in_directory(self.state) as store:
            return IngestStore(store).attempts()


def write_config(path: Path, state: Path, urls: tuple[str, str], slow_interval: str) -> None:
    path.write_text(
        f'[larkps]\nstate_dir = "{state}"\ninterval = "5m"\n\n'
        f'[[archives]]\nname = "fast"\nkind = "esmond"\nurl = "{urls[0]}"\nretries = 0\n{TYPES}\n\n'
        f'[[archives]]\nname = "slow"\nkind = "esmond"\nurl = "{urls[1]}"\nretries = 0\n{TYPES}\n'
        f'interval = "{slow_interval}"\n\n'
        '[windows]\nlist = ["1h"]\ndefault = "1h"\n\n'
        f'[publish.file]\npath = "{state}/larkps.ads"\n\n'
        '[fetch]\ndiscover_interval = "5m"\n'  # every cycle lists the series again
    )


@contextmanager
def rig(tmp_path: Path, slow_interval: str = "15m") -> Iterator[Rig]:
    clock = {"now": float(T0)}
    with ExitStack() as stack:
        fast = stack.enter_context(
            EmbeddedArchive(Mesh(MeshConfig(sites=3, seed=5)), clock=lambda: clock["now"])
        )
        slow = stack.enter_context(
            EmbeddedArchive(Mesh(MeshConfig(sites=4, seed=6)), clock=lambda: clock["now"])
        )
        state, config = tmp_path / "state", tmp_path / "larkps.toml"
        write_config(config, state, (fast.url, slow.url), slow_interval)
        yield Rig(state, config, fast, slow, clock)


def slow_only_latest(ads_file: Path) -> int:
    """Newest sample time among the paths only the slow archive measures."""
    latest = []
    for ad in classad2.parseAds(ads_file.read_text(), classad2.ParserType.Old):
        if ad.get("MyType") != "LarkPSPath":
            continue
        if SLOW_ONLY_HOST not in ad["Name"]:
            continue
        latest += [v for k, v in ad.items() if k.endswith("LatestTime") and isinstance(v, int)]
    assert latest, "the slow archive's paths must be in the ads"
    return max(latest)


def test_slow_archive_is_fetched_only_when_due_and_its_figures_are_kept(tmp_path: Path):
    with rig(tmp_path) as r:
        daemon = r.daemon()
        fetched_slow, newest = [], []
        for k in range(7):
            now = T0 + k * STEP
            doc, fast_requests, slow_requests = r.cycle(daemon, now)
            assert doc["ok"], doc
            assert fast_requests > 0, k  # no own interval: every cycle
            if slow_requests:
                fetched_slow.append(k)
            due = k % (SLOW // STEP) == 0
            assert doc["skipped"] == ([] if due else ["slow"]), (k, doc)
            assert ("slow" in doc["archives"]) == due
            assert r.attempts() == {"fast": now, "slow": T0 + (k - k % 3) * STEP}
            newest.append(slow_only_latest(r.state / "larkps.ads"))
        assert fetched_slow == [0, 3, 6]
        # Skipped cycles publish the stored figures, which age: no sample after the
        # last slow fetch appears until the next one.
        for k in (1, 2, 4, 5):
            assert newest[k] == newest[k - k % 3] <= T0 + (k - k % 3) * STEP
        assert newest[3] > newest[2] and newest[6] > newest[5]
        lines = status_lines([r.cycle(daemon, T0 + 7 * STEP)[0]], None)
        assert "not due in the last cycle (own interval): slow" in lines


def test_a_restart_does_not_fetch_the_slow_archive_early(tmp_path: Path):
    with rig(tmp_path) as r:
        first = r.daemon()
        for k in range(2):
            r.cycle(first, T0 + k * STEP)
        restarted = r.daemon()  # a new process on the same state directory
        doc, fast_requests, slow_requests = r.cycle(restarted, T0 + 2 * STEP)
        assert (doc["skipped"], slow_requests) == (["slow"], 0)
        assert fast_requests > 0
        doc, _, slow_requests = r.cycle(restarted, T0 + 3 * STEP)
        assert doc["skipped"] == [] and slow_requests > 0
        assert r.attempts()["slow"] == T0 + 3 * STEP


def test_a_clock_jump_back_does_not_block_the_slow_archive(tmp_path: Path):
    with rig(tmp_path, slow_interval="1h") as r:
        daemon = r.daemon()
        r.cycle(daemon, T0)
        doc, _, slow_requests = r.cycle(daemon, T0 + STEP)
        assert (doc["skipped"], slow_requests) == (["slow"], 0)
        back = T0 - 2 * 3600  # before the last attempt: due, not blocked for 3 hours
        doc, _, slow_requests = r.cycle(daemon, back)
        assert doc["skipped"] == [] and slow_requests > 0
        assert r.attempts()["slow"] == back
        doc, _, slow_requests = r.cycle(daemon, back + STEP)  # the interval counts anew
        assert (doc["skipped"], slow_requests) == (["slow"], 0)


def test_one_shot_cycles_ignore_own_intervals(tmp_path: Path):
    with rig(tmp_path) as r:
        settings = r.daemon().settings
        for k in range(2):  # what `larkps once` does: run_cycle without cadence
            before = r.counts()
            report = run_cycle(settings, T0 + k * STEP, publish=False).report
            assert report.skipped == () and "slow" in report.archives
            assert r.slow.requests_served > before[1]
        # ...but they count as attempts, so the daemon does not refetch at once
        doc, _, slow_requests = r.cycle(r.daemon(), T0 + 2 * STEP)
        assert (doc["skipped"], slow_requests) == (["slow"], 0)


def test_only_skipped_archives_left_still_makes_a_cycle(tmp_path: Path):
    """When every due archive fails, the skipped ones' stored figures still publish."""
    with rig(tmp_path) as r:
        daemon = r.daemon()
        r.cycle(daemon, T0)
        r.fast.stop()  # the fast archive goes down
        doc, _, slow_requests = r.cycle(daemon, T0 + STEP)
        assert doc["ok"] and doc["partial"], doc
        assert doc["skipped"] == ["slow"] and doc["archives"] == [] and slow_requests == 0
        assert any(p["archive"] == "fast" for p in doc["problems"])
        assert slow_only_latest(r.state / "larkps.ads") <= T0
