"""State follows the config: a changed site map applies at the next cycle, in every window.

Random sequences of site maps (rename, merge, split, removal, restore of a site) run
cycle after cycle over one state directory, with the embedded archive (a host no
table names falls back to the mesh's own site) and with the same mesh served as a
plain esmond archive (such a host is its own site). After each cycle, what larkps
published is checked against ground truth computed here from the mesh's own hosts
and the map in force: the site names published (ads file, STARTD_CRON partners,
site statistics, host pairs, forecasts, estimates, alarms) are exactly those the
map gives the measured host pairs, and each path's test and packet counts in every
window (1 h, 24 h and 7 d, served from the rollups) are the sums over its host
pairs: nothing is lost when a site is removed and restored, or merged and split
again. The sequence's seed is printed; LARKPS_TEST_SEED replays one.
"""

from __future__ import annotations

import ipaddress
import os
import random
import shutil
import sqlite3
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import classad2
import pytest
from event_types import EVENTS

from larkps.config.settings import settings_from_dict
from larkps.config.sites import SiteMap, SiteRule
from larkps.decide.views import views_from_ads
from larkps.embedded import EmbeddedArchive, Mesh, MeshConfig
from larkps.histogram import histogram_of
from larkps.model import Endpoint, Family, Metric, PathStats, Point, Series, SeriesKey
from larkps.pipeline import CycleResult, run_cycle
from larkps.publish.startd import startd_cron_ad
from larkps.store.db import Store
from larkps.store.schema import SCHEMA_VERSION

pytestmark = pytest.mark.slow
MESH = {"sites": 3, "seed": 7}
WINDOWS = {"1h": 3600, "24h": 86400, "7d": 7 * 86400}
BACKFILL = 86400  # the first cycle fetches its own (default) window
CYCLES = 6
STEP = 2 * 3600 + 17 * 60  # off the hour, so windows start inside an hour
METRICS = {"throughput": "throughput", "owdelay": "latencybg", "rtt": "rtt"}
OPERATIONS = ("rename", "merge", "split", "remove", "restore")
FIXTURE = Path(__file__).parent / "fixtures" / "state" / "v1-store.sqlite"


@dataclass
class SiteTables:
    """The [sites.NAME] tables of one configuration: name -> exact host names.

    A host in no table falls back to the embedded mesh's own site (configured rules
    come first, the mesh's after them), or for a plain esmond archive is a site of
    its own.
    """

    mesh_site: dict[str, str]  # host -> its site when no table names it
    tables: dict[str, set[str]] = field(default_factory=dict)
    removed: list[tuple[str, set[str]]] = field(default_factory=list)
    made: int = 0

    def site(self, host: str) -> str:
        for name, hosts in self.tables.items():
            if host in hosts:
                return name
        return self.mesh_site[host]

    def effective(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = defaultdict(set)
        for host in self.mesh_site:
            out[self.site(host)].add(host)
        return dict(out)

    def fresh_name(self) -> str:
        self.made += 1
        return f"SITE-{self.made}"

    def assign(self, name: str, hosts: set[str]) -> None:
        for other in self.tables.values():
            other -= hosts
        self.tables[name] = set(hosts)
        self.tables = {n: h for n, h in self.tables.items() if h}

    def possible(self) -> list[str]:
        """The operations that would change something now."""
        sites = self.effective()
        can = {
            "rename": True,
            "merge": len(sites) >= 2,
            "split": any(len(hosts) >= 2 for hosts in sites.values()),
            "remove": bool(self.tables),
            "restore": bool(self.removed),
        }
        return [operation for operation in OPERATIONS if can[operation]]

    def apply(self, rng: random.Random, operation: str) -> str:
        """Change the tables by ``operation``; returns what was done."""
        sites = self.effective()
        names = sorted(sites)
        if operation == "rename":
            old = rng.choice(names)
            new = self.fresh_name()
            self.tables.pop(old, None)
            self.assign(new, sites[old])
            return f"rename {old} -> {new}"
        if operation == "merge" and len(names) >= 2:
            a, b = rng.sample(names, 2)
            into = rng.choice([a, self.fresh_name()])
            self.tables.pop(a, None)
            self.tables.pop(b, None)
            self.assign(into, sites[a] | sites[b])
            return f"merge {a} + {b} -> {into}"
        if operation == "split":
            big = [n for n in names if len(sites[n]) >= 2]
            if big:
                name = rng.choice(big)
                hosts = sorted(sites[name])
                rng.shuffle(hosts)
                cut = rng.randint(1, len(hosts) - 1)
                self.tables.pop(name, None)
                first, second = self.fresh_name(), self.fresh_name()
                self.assign(first, set(hosts[:cut]))
                self.assign(second, set(hosts[cut:]))
                return f"split {name} -> {first} {sorted(hosts[:cut])}, {second}"
        if operation == "remove" and self.tables:
            name = rng.choice(sorted(self.tables))
            self.removed.append((name, self.tables.pop(name)))
            return f"remove {name}"
        if operation == "restore" and self.removed:
            name, hosts = self.removed.pop()
            self.assign(name, hosts)
            return f"restore {name}"
        return "unchanged"

    def document(self) -> dict[str, dict[str, list[str]]]:
        return {name: {"hosts": sorted(hosts)} for name, hosts in sorted(self.tables.items())}


def settings(tmp_path: Path, tables: SiteTables, url: str | None = None):
    """An embedded archive, or (``url``) the same mesh served as a plain esmond archive."""
    archive: dict[str, object] = {"name": "mesh", "kind": "embedded", "embedded": MESH}
    if url is not None:
        archive = {"name": "mesh", "kind": "esmond", "url": url}
    return settings_from_dict(
        {
            "larkps": {"state_dir": str(tmp_path / "state")},
            "archives": [archive],
            "sites": tables.document(),
            "windows": {"list": list(WINDOWS), "default": "24h"},
            "publish": {"file": {"path": str(tmp_path / "larkps.ads")}},
        }
    )


Path3 = tuple[str, str, str]


def truth(
    mesh: Mesh, tables: SiteTables, now: int, origin: int
) -> dict[int, dict[Path3, Counter[str]]]:
    """Per window and (source site, destination site, family): tests per metric, summed
    over the mesh's series whose hosts the tables map to that path; nothing before
    ``origin`` (what the first cycle's backfill reached, esmond's ``time-start``,
    which is inclusive) was ever fetched."""
    out: dict[int, dict[Path3, Counter[str]]] = {}
    for length in WINDOWS.values():
        begin = max(now - length, origin - 1)  # truth windows are (begin, now]
        paths: dict[Path3, Counter[str]] = defaultdict(Counter)
        for series in mesh.series:
            for metric, kind in METRICS.items():
                if series.kind != kind:
                    continue
                got = mesh.truth(
                    series.src.name, series.dst.name, series.family, metric, begin, now
                )
                path = (tables.site(series.src_host.name), tables.site(series.dst_host.name))
                paths[(*path, series.family)][metric] += got.count
                if metric == "owdelay":  # one-way packet counts come with the delays
                    lost = mesh.truth(
                        series.src.name, series.dst.name, series.family, "loss", begin, now
                    )
                    paths[(*path, series.family)]["sent"] += lost.packets_sent or 0
        out[length] = dict(paths)
    return out


def published_sites(ads_file: Path) -> tuple[set[str], set[str]]:
    """(sites of the site ads, sites named by the path ads) in the ads file."""
    ads = list(classad2.parseAds(ads_file.read_text(), classad2.ParserType.Old))
    site_ads = {str(ad["LarkPS_Site"]) for ad in ads if ad.get("MyType") == "LarkPSSite"}
    path_ads = {
        str(ad[name])
        for ad in ads
        if ad.get("MyType") == "LarkPSPath"
        for name in ("LarkPS_SourceSite", "LarkPS_DestinationSite")
    }
    return site_ads, path_ads


def check_cycle(result: CycleResult, expected: dict[int, dict[Path3, Counter[str]]], ads: Path):
    longest = max(WINDOWS.values())
    measured = {p for p, counts in expected[longest].items() if sum(counts.values())}
    assert all(sum(c[m] for c in expected[longest].values()) for m in (*METRICS, "sent"))
    names = {site for p in measured for site in p[:2]}
    for length, paths in expected.items():
        got = {
            (s.path.source_site, s.path.destination_site, s.path.family.value): s
            for s in result.windows
            if s.window == length
        }
        assert set(got) == measured, length
        for path, counts in paths.items():
            stats = got.get(path)
            for metric in METRICS:
                have = 0 if stats is None else getattr(stats, metric).count
                assert have == counts[metric], (path, length, metric)
            sent = 0 if stats is None else stats.loss.packets_sent
            assert sent == counts["sent"], (path, length, "packets sent")
    assert {s.site for s in result.site_stats} == names
    assert {h.path.source_site for h in result.host_pairs} <= names
    assert {h.path.destination_site for h in result.host_pairs} <= names
    assert {f.path.source_site for f in result.forecasts} <= names
    assert {e.path.destination_site for e in result.estimates} <= names
    assert {a.site for a in result.alarms} <= names
    path_names = {f"{s}->{d}/{family}" for s, d, family in measured}
    assert {a.subject for a in result.alarms} <= names | path_names
    site_ads, path_ads = published_sites(ads)
    assert site_ads == names and path_ads == names
    views = views_from_ads(classad2.parseAds(ads.read_text(), classad2.ParserType.Old))
    for site in names:  # what STARTD_CRON gives a node of each site, from the ads file
        node = startd_cron_ad(views, site, int(time.time()), 10**9, 0.0)
        ends = {p[:2] for p in measured}
        partners = {d for s, d in ends if s == site} | {s for s, d in ends if d == site}
        # (a merged site's own intra-site path makes it its own partner)
        assert set(node["LarkPS_Partners"]) == partners, site


def seed() -> int:
    chosen = int(os.environ.get("LARKPS_TEST_SEED", random.randrange(2**32)))
    print(f"LARKPS_TEST_SEED={chosen}")
    return chosen


def fallback_sites(mesh: Mesh, plain: bool) -> dict[str, str]:
    """Each mesh host's site when no table names it: the mesh's own map (embedded
    archive), or the host itself (plain esmond archive: no map at all)."""
    return {h: h if plain else site for site, e in mesh.site_map().items() for h in e["hosts"]}


@pytest.mark.parametrize("plain", [False, True], ids=["embedded", "esmond"])
def test_random_site_maps_over_one_state_directory(tmp_path: Path, plain: bool):
    rng = random.Random(seed())
    mesh = Mesh(MeshConfig(**MESH))
    tables = SiteTables(fallback_sites(mesh, plain))
    with EmbeddedArchive(mesh) as server:
        url = server.url if plain else None
        start = int(os.environ.get("LARKPS_TEST_START", time.time() - CYCLES * STEP - 60))
        print(f"LARKPS_TEST_START={start}")
        for cycle in range(CYCLES):
            done = "first" if cycle == 0 else tables.apply(rng, rng.choice(tables.possible()))
            now = start + cycle * STEP
            print(f"cycle {cycle} at {now}: {done}; tables {tables.document()}")
            result = run_cycle(settings(tmp_path, tables, url), now)
            check_cycle(result, truth(mesh, tables, now, start - BACKFILL), tmp_path / "larkps.ads")


def test_a_renamed_site_is_published_under_its_new_name_only(tmp_path: Path):
    """The defect as met: a cycle, a rename, a cycle with no new tests of some streams."""
    mesh = Mesh(MeshConfig(**MESH))
    tables = SiteTables(fallback_sites(mesh, plain=False))
    now = int(time.time()) - 600
    run_cycle(settings(tmp_path, tables), now)
    old = sorted(tables.effective())[0]
    tables.assign("RENAMED", tables.effective()[old])
    result = run_cycle(settings(tmp_path, tables), now + 60)
    check_cycle(result, truth(mesh, tables, now + 60, now - BACKFILL), tmp_path / "larkps.ads")
    site_ads, _ = published_sites(tmp_path / "larkps.ads")
    assert "RENAMED" in site_ads and old not in site_ads


# -- a store written before rollups kept endpoints instead of site names ---------------
NOW = 1_700_000_000 // 3600 * 3600
WINDOW_LENGTHS = (3600, 86400, 2 * 86400)
HOSTS = {  # host -> IP; site A only by its network, B by name, C by domain
    "ps.a1.example": "192.0.2.1",
    "ps.a2.example": "192.0.2.2",
    "ps.b1.example": "192.0.2.17",
    "ps.c1.example": "192.0.2.33",
}
V1_SITES = SiteMap(
    (
        SiteRule("A", networks=(ipaddress.ip_network("192.0.2.0/28"),)),
        SiteRule("B", hosts=("ps.b1.example",)),
        SiteRule("C", domains=("c1.example",)),
    )
)
#: the same hosts after A was renamed ALPHA and B merged into C
RENAMED = SiteMap(
    (
        SiteRule("ALPHA", networks=(ipaddress.ip_network("192.0.2.0/28"),)),
        SiteRule("C", hosts=("ps.b1.example",), domains=("c1.example",)),
    )
)
LINKS = [  # (source host, destination host, metric, key, seconds between tests)
    ("ps.a1.example", "ps.b1.example", Metric.THROUGHPUT, "k1", 1200),
    ("ps.b1.example", "ps.a1.example", Metric.THROUGHPUT, "k2", 1200),
    ("ps.c1.example", "ps.b1.example", Metric.THROUGHPUT, "k3", 1200),
    ("ps.a2.example", "ps.c1.example", Metric.OWDELAY, "k4", 1800),
    ("ps.b1.example", "ps.c1.example", Metric.OWDELAY, "k5", 1800),
]


def upgrade_data(sites: SiteMap) -> list[tuple[Series, list[Point]]]:
    """Two days of tests on LINKS up to NOW, endpoints mapped by ``sites``."""
    rng = random.Random(14)
    out = []
    for source, destination, metric, key, every in LINKS:
        series = Series(
            key=SeriesKey("mesh", key, EVENTS[metric]),
            source=Endpoint(source, HOSTS[source], sites.site_for(source, HOSTS[source])),
            destination=Endpoint(
                destination, HOSTS[destination], sites.site_for(destination, HOSTS[destination])
            ),
            family=Family.IPV4,
            metric=metric,
            tool="pscheduler/test",
            data_uri=f"/{key}",
        )
        stamps = range(NOW - 2 * 86400 + every // 3, NOW + 1, every)
        if metric is Metric.THROUGHPUT:
            points = [Point(ts, value=rng.uniform(1e8, 1e10)) for ts in stamps]
        else:
            points = [
                Point(
                    ts,
                    histogram=histogram_of((rng.uniform(5, 50), rng.randint(1, 9)) for _ in "abc"),
                )
                for ts in stamps
            ]
        out.append((series, points))
    return out


def figures(stats: list[PathStats]) -> dict[tuple[str, int], tuple[object, ...]]:
    return {
        (s.path.name, s.window): (
            s.throughput.count,
            s.throughput.median,
            s.owdelay.count,
            s.owdelay.median,
        )
        for s in stats
    }


def table_rows(path: Path) -> dict[str, int]:
    db = sqlite3.connect(path)
    try:
        tables = ("points", "series", "rollup_streams", "rollup_hours", "rollup_windows")
        return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
    finally:
        db.close()


def test_a_store_written_before_the_change_opens_and_keeps_every_point(tmp_path: Path):
    from larkps.stats.rollups.store import update_rollups
    from larkps.stats.rollups.views import sites_of, window_stats

    old = tmp_path / "old.sqlite"
    shutil.copyfile(FIXTURE, old)
    before = table_rows(old)
    assert before["rollup_streams"] == len(LINKS) and before["rollup_hours"] > 0
    with Store(old) as store:
        upgraded = window_stats(store, WINDOW_LENGTHS, NOW, sites=sites_of({}, V1_SITES))
        renamed = window_stats(store, WINDOW_LENGTHS, NOW, sites=sites_of({}, RENAMED))
        version = store.connection.execute("PRAGMA user_version").fetchone()[0]
        ips = store.connection.execute(
            "SELECT source_host, source_ip, destination_host, destination_ip FROM rollup_streams"
        ).fetchall()
    assert version == SCHEMA_VERSION
    assert table_rows(old) == before  # every stream, hour, window and point kept
    assert all(ip == HOSTS[host] for row in ips for host, ip in (row[:2], row[2:]))
    with Store(tmp_path / "fresh.sqlite") as store:  # the same tests, taken in today
        update_rollups(store, upgrade_data(V1_SITES), NOW, WINDOW_LENGTHS)
        fresh = window_stats(store, WINDOW_LENGTHS, NOW, sites=sites_of({}, V1_SITES))
    assert figures(upgraded) == figures(fresh)
    assert {s.path.source_site for s in upgraded} == {"A", "B", "C"}
    assert {site for s in renamed for site in (s.path.source_site, s.path.destination_site)} == {
        "ALPHA",
        "C",
    }
    for length in WINDOW_LENGTHS:
        for metric in ("throughput", "owdelay"):
            total = [
                sum(getattr(s, metric).count for s in got if s.window == length)
                for got in (upgraded, renamed)
            ]
            assert total[0] == total[1] > 0, (length, metric)


def test_alarm_state_of_a_dropped_site_name_is_not_carried_over():
    from larkps.model import AlarmKind
    from larkps.stats.alarms import AlarmRecord
    from larkps.stats.analysis import current_alarms

    def record(kind: AlarmKind, subject: str, site: str, peer: str = "") -> AlarmRecord:
        return AlarmRecord(kind, subject, site, 0, 0, 1.0, 0.5, 0, peer=peer)

    kept = record(AlarmKind.LOSS, "A->B/ipv4", "A", "B")
    records = [
        kept,
        record(AlarmKind.LOSS, "OLD->B/ipv4", "OLD", "B"),  # source renamed
        record(AlarmKind.LOSS, "A->OLD/ipv4", "A", "OLD"),  # destination merged away
        record(AlarmKind.SITE_PATHS, "OLD", "OLD"),
        record(AlarmKind.CLOCK_OFFSET, "B", "B"),
    ]
    got = current_alarms({r.key: r for r in records}, {"A", "B"})
    assert set(got) == {kept.key, ("clock_offset", "B")}
