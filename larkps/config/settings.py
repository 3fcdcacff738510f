"""Load a TOML configuration file once into a frozen, validated :class:`Settings`.

Every problem raises :class:`~larkps.errors.ConfigError` naming the file, the key
path (``archives[1].read_timeout``) and what was expected. Unknown keys are
errors. Relative paths are taken relative to the current working directory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from larkps.config.archives import (
    ArchiveFetch,
    FetchSettings,
    archive_fetch,
    check_intervals,
    fetch_settings,
)
from larkps.config.calibration import CalibrationSettings, calibration_settings
from larkps.config.credentials import (
    Credentials,
    password_from_environment,
    password_from_file,
)
from larkps.config.jobnet import NodeJobNet, jobnet_settings
from larkps.config.queries import SearchMode
from larkps.config.reader import Section, read_toml
from larkps.config.report import ReportSettings, report_settings
from larkps.config.sites import SiteMap, SiteRule
from larkps.config.stats import QualitySettings, stats_settings
from larkps.config.throttle import ThrottlePolicy
from larkps.errors import ConfigError
from larkps.model import EGRESS, INGRESS, AlarmPolicy, ModelPolicy

ARCHIVE_KINDS = ("esmond", "embedded", "opensearch", "ps-es")
#: Kinds read through a search API, and the index families each can rename.
SEARCH_INDEX_KEYS = {
    "opensearch": ("throughput", "latency", "latencybg", "rtt"),
    "ps-es": ("throughput", "owd", "packetloss", "retransmits", "trace"),
}
INDEX_PATTERN = re.compile(r"^(?!\.{1,2}$)[a-z0-9_.][a-z0-9_.*+,-]{0,254}$")
USERNAME_PATTERN = re.compile(r"^[^:\x00-\x1f\x7f]{1,256}$")
FLAVOURS = ("esmond", "elmond")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True, slots=True)
class EmbeddedSettings:
    """The in-process synthetic archive (kind = "embedded")."""

    sites: int = 4
    seed: int = 1
    flavour: str = "esmond"


@dataclass(frozen=True, slots=True)
class SearchSettings:
    """How an OpenSearch/Elasticsearch archive is read (kinds "opensearch", "ps-es")."""

    mode: SearchMode = SearchMode.RAW
    indices: tuple[tuple[str, str], ...] = ()  # (index family, index name), defaults filled
    production_only: bool = True  # ps-es: only hosts in production meshes


@dataclass(frozen=True, slots=True)
class ArchiveSettings:
    """One measurement archive to poll."""

    name: str
    kind: str
    url: str | None
    verify_tls: bool = True
    ca_bundle: str | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_connections: int = 8
    embedded: EmbeddedSettings | None = None
    credentials: Credentials | None = None  # HTTP basic auth; the password prints as <set>
    search: SearchSettings | None = None  # kinds "opensearch" and "ps-es"
    fetch: ArchiveFetch = field(default_factory=ArchiveFetch)  # retries, cap, esmond filters


@dataclass(frozen=True, slots=True)
class WindowSettings:
    """Statistics windows, in seconds."""

    default: int = 86400
    windows: tuple[int, ...] = (3600, 86400, 604800)
    stale_after: int = 6 * 3600


@dataclass(frozen=True, slots=True)
class FileTarget:
    """An old-syntax ads file for ``condor_advertise -multiple``."""

    path: Path


@dataclass(frozen=True, slots=True)
class CollectorTarget:
    """A collector to advertise generic ads to."""

    pool: str
    token_file: str | None = None
    batch_size: int = 500
    timeout: float = 10.0
    retries: int = 2  # tries per cycle; what fails stays in the spool for the next cycle


@dataclass(frozen=True, slots=True)
class PublishSettings:
    """Where ads go and how long they live."""

    ad_lifetime: int = 900
    file: FileTarget | None = None
    collector: CollectorTarget | None = None


@dataclass(frozen=True, slots=True)
class SiteCapacity:
    """A site's configured aggregate ingress/egress capacity, bits/s (None: measured)."""

    site: str
    ingress: float | None = None
    egress: float | None = None


@dataclass(frozen=True, slots=True)
class ThrottleSettings:
    """Policy for turning bandwidth into concurrency limits."""

    policy: ThrottlePolicy = field(default_factory=ThrottlePolicy)  # read straight in
    transfer_time: int = 600
    site_capacity: tuple[SiteCapacity, ...] = ()

    @property
    def capacities(self) -> dict[tuple[str, str], float]:
        """Configured capacities by (site, EGRESS | INGRESS), bits/s; measured ones are absent."""
        found = {}
        for entry in self.site_capacity:
            if entry.ingress is not None:
                found[(entry.site, INGRESS)] = entry.ingress
            if entry.egress is not None:
                found[(entry.site, EGRESS)] = entry.egress
        return found


@dataclass(frozen=True, slots=True)
class DaemonSettings:
    """How `larkps run` behaves."""

    metrics_address: str = "127.0.0.1"
    metrics_port: int = 0  # 0: no /metrics endpoint
    shutdown_timeout: int = 30  # seconds a SIGTERM waits for the running cycle
    misfire_grace: int = 60  # seconds a late cycle may still start


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything larkps needs, read once from one file."""

    source: str
    state_dir: Path
    interval: int
    archives: tuple[ArchiveSettings, ...]
    sites: SiteMap
    windows: WindowSettings
    publish: PublishSettings
    throttle: ThrottleSettings
    daemon: DaemonSettings = DaemonSettings()
    fetch: FetchSettings = field(default_factory=FetchSettings)  # incremental, deadline
    quality: QualitySettings = field(default_factory=QualitySettings)  # [quality]
    alarms: AlarmPolicy = field(default_factory=AlarmPolicy)  # [alarms]
    model: ModelPolicy = field(default_factory=ModelPolicy)  # [model]
    report: ReportSettings = field(default_factory=ReportSettings)  # larkps report
    calibration: CalibrationSettings = field(default_factory=CalibrationSettings)
    jobnet: NodeJobNet = field(default_factory=NodeJobNet)  # [jobnet], execute nodes


def load_settings(path: str | Path) -> Settings:
    """Read and validate one TOML file."""
    return settings_from_dict(read_toml(path), str(path))


def settings_from_dict(data: dict[str, Any], source: str = "<config>") -> Settings:
    """Validate an already-parsed TOML document."""
    return _settings(Section(data, source, ""))


def resolved_config(path: str | Path) -> dict[str, Any]:
    """Every section and key of the configuration as larkps reads it, under the
    file's key names, defaults filled in (durations in seconds, rates in bits/s,
    sizes in bytes); validated as :func:`load_settings` does."""
    root = Section(read_toml(path), str(path), "")
    _settings(root)
    return root.resolved


def _settings(root: Section) -> Settings:
    general = root.section("larkps")
    state_dir_given = "state_dir" in general.data
    state_dir = Path(general.string("state_dir", "/var/lib/larkps"))
    interval = general.duration("interval", "5m")
    general.finish()
    settings = Settings(
        source=root.source,
        state_dir=state_dir,
        interval=interval,
        archives=_archives(root, interval),
        sites=_sites(root.section("sites")),
        windows=_windows(root.section("windows")),
        publish=_publish(root.section("publish"), state_dir),
        throttle=_throttle(root.section("throttle")),
        daemon=_daemon(root.section("daemon")),
        report=report_settings(root.section("report")),
        calibration=calibration_settings(root.section("calibration")),
        jobnet=jobnet_settings(root.section("jobnet")),
    )
    longest = max(settings.windows.windows)
    fetch = fetch_settings(root.section("fetch"), state_dir_given, interval, longest)
    intervals = [(a.fetch.interval, _summary(a)) for a in settings.archives]
    check_intervals(root.source, intervals, fetch)
    settings = replace(settings, fetch=fetch)
    settings = replace(settings, **stats_settings(root))
    root.finish()
    return settings


def _archives(root: Section, interval: int) -> tuple[ArchiveSettings, ...]:
    sections = root.section_list("archives", required=True)
    archives = tuple(_archive(s, interval) for s in sections)
    seen: set[str] = set()
    for index, archive in enumerate(archives):
        if archive.name in seen:
            raise ConfigError(
                root.source, f"archives[{index}].name", f"duplicate archive name {archive.name!r}"
            )
        seen.add(archive.name)
    return archives


def _archive(section: Section, interval: int) -> ArchiveSettings:
    kind = section.choice("kind", ARCHIVE_KINDS)
    name = section.pattern("name", NAME_PATTERN, "a name of letters, digits, '.', '_' or '-'")
    url = section.url("url", required=kind != "embedded")
    if kind == "embedded" and url is not None:
        raise section.error("url", "an embedded archive has no url (it starts in-process)")
    embedded_section = section.section("embedded")
    embedded = _embedded(embedded_section) if kind == "embedded" else None
    if kind != "embedded" and embedded_section.data:
        raise section.error("embedded", 'only archives of kind "embedded" take this section')
    embedded_section.finish()
    archive = ArchiveSettings(
        name=name,
        kind=kind,
        url=url,
        verify_tls=section.boolean("verify_tls", True),
        ca_bundle=section.existing_file("ca_bundle"),
        connect_timeout=float(section.duration("connect_timeout", "5s")),
        read_timeout=float(section.duration("read_timeout", "30s")),
        max_connections=section.integer("max_connections", 8, minimum=1, maximum=256),
        embedded=embedded,
        credentials=_credentials(section, kind, url),
        search=_search(section, kind),
        fetch=archive_fetch(section, kind, interval),  # also the archive's own interval
    )
    section.finish()
    return archive


def _summary(archive: ArchiveSettings) -> bool:
    return archive.search is not None and archive.search.mode == SearchMode.SUMMARY


def _credentials(section: Section, kind: str, url: str | None) -> Credentials | None:
    """Basic-auth credentials; the password comes from a file or the environment."""
    if url is not None and "@" in urlsplit(url).netloc:
        raise section.error(
            "url",
            "credentials in the url would be shown and logged; "
            "use username with password_file or password_env",
        )
    keys = [k for k in ("username", "password_file", "password_env") if k in section.data]
    if not keys:
        return None
    if kind == "embedded":
        raise section.error(keys[0], "an embedded archive takes no credentials")
    if "password_file" in keys and "password_env" in keys:
        raise section.error("password_env", "set password_file or password_env, not both")
    if keys[0] != "username":
        raise section.error("username", "required key is missing (a password needs a username)")
    if len(keys) == 1:
        raise section.error("username", "a username needs password_file or password_env")
    username = section.pattern("username", USERNAME_PATTERN, "a user name without ':'")
    try:
        if keys[1] == "password_file":
            path = section.existing_file("password_file")
            assert path is not None
            return Credentials(username, password_from_file(path), "file")
        name = section.string("password_env")
        return Credentials(username, password_from_environment(name), "environment")
    except ValueError as exc:
        raise section.error(keys[1], str(exc)) from None


def _search(section: Section, kind: str) -> SearchSettings | None:
    """The [archives.search] table of the search kinds."""
    table = section.section("search")
    if kind not in SEARCH_INDEX_KEYS:
        if table.data:
            raise section.error(
                "search", 'only archives of kind "opensearch" or "ps-es" take this section'
            )
        return None
    if kind != "ps-es" and "production_only" in table.data:
        raise table.error("production_only", 'only archives of kind "ps-es" have production flags')
    indices = table.section("indices")
    what = "an index name such as ps_owd or pscheduler_*"
    names = tuple(
        (family, indices.pattern(family, INDEX_PATTERN, what))
        for family in SEARCH_INDEX_KEYS[kind]
        if family in indices.data
    )
    indices.finish()
    result = SearchSettings(
        mode=SearchMode(table.choice("mode", tuple(SearchMode), SearchMode.RAW.value)),
        indices=names,
        production_only=table.boolean("production_only", True),
    )
    table.finish()
    return result


def _embedded(section: Section) -> EmbeddedSettings:
    return EmbeddedSettings(
        sites=section.integer("sites", 4, minimum=3, maximum=200),
        seed=section.integer("seed", 1, minimum=0),
        flavour=section.choice("flavour", FLAVOURS, "esmond"),
    )


def _sites(section: Section) -> SiteMap:
    rules = []
    _refuse_case_twins(section)
    for site in sorted(section.data):
        if not NAME_PATTERN.match(site):
            raise section.error(site, "a site name of letters, digits, '.', '_' or '-'")
        rules.append(_site_rule(site, section.section(site)))
    section.data.clear()
    return SiteMap(tuple(rules))


def _refuse_case_twins(section: Section) -> None:
    """Site names that differ only in letter case would share one ClassAd attribute
    name (ClassAd names ignore case; docs/classads.md): refuse them."""
    seen: dict[str, str] = {}
    for site in sorted(section.data):
        folded = site.casefold()
        if folded in seen:
            raise section.error(
                site, f"differs from site {seen[folded]!r} only in letter case; use one name"
            )
        seen[folded] = site


def _site_rule(site: str, section: Section) -> SiteRule:
    networks = section.network_list("networks", "an IPv4 or IPv6 network")
    rule = SiteRule(
        site=site,
        hosts=tuple(section.string_list("hosts")),
        domains=tuple(section.string_list("domains")),
        networks=tuple(networks),
    )
    section.finish()
    if not (rule.hosts or rule.domains or rule.networks):
        raise section.error("", "a site needs at least one of hosts, domains or networks")
    return rule


def _windows(section: Section) -> WindowSettings:
    windows = tuple(section.duration_list("list", ["1h", "24h", "7d"]))
    default = section.duration("default", "24h")
    if default not in windows:
        raise section.error("default", "the default window must be one of windows.list")
    result = WindowSettings(
        default=default,
        windows=windows,
        stale_after=section.duration("stale_after", "6h"),
    )
    section.finish()
    return result


def _publish(section: Section, state_dir: Path) -> PublishSettings:
    file_section = section.section("file")
    file_target = None
    if file_section.present:
        file_target = FileTarget(Path(file_section.string("path", str(state_dir / "larkps.ads"))))
    file_section.finish()
    collector_section = section.section("collector")
    collector = _collector(collector_section) if collector_section.present else None
    collector_section.finish()
    result = PublishSettings(
        ad_lifetime=section.duration("ad_lifetime", "15m"),
        file=file_target,
        collector=collector,
    )
    section.finish()
    return result


def _collector(section: Section) -> CollectorTarget:
    return CollectorTarget(
        pool=section.pattern(
            "pool", re.compile(r"^[A-Za-z0-9_.:\[\]-]+$"), "a collector address such as cm:9618"
        ),
        token_file=section.existing_file("token_file"),
        batch_size=section.integer("batch_size", 500, minimum=1, maximum=100000),
        timeout=float(section.duration("timeout", "10s")),
        retries=section.integer("retries", 2, minimum=1, maximum=10),
    )


def _daemon(section: Section) -> DaemonSettings:
    result = DaemonSettings(
        metrics_address=section.pattern(
            "metrics_address",
            re.compile(r"^[0-9A-Fa-f.:]+$"),
            "an IP address such as 127.0.0.1",
            "127.0.0.1",
        ),
        metrics_port=section.integer("metrics_port", 0, minimum=0, maximum=65535),
        shutdown_timeout=section.duration("shutdown_timeout", "30s"),
        misfire_grace=section.duration("misfire_grace", "60s"),
    )
    section.finish()
    return result


def _throttle(section: Section) -> ThrottleSettings:
    min_jobs = section.integer("min_jobs", 1, minimum=0)
    max_jobs = section.integer("max_jobs", 200, minimum=1)
    if min_jobs > max_jobs:
        raise section.error("min_jobs", "min_jobs must not exceed max_jobs")
    policy = ThrottlePolicy(
        target_utilisation=section.fraction("target_utilisation", 0.8),
        safety_factor=section.fraction("safety_factor", 0.9),
        min_jobs=min_jobs,
        max_jobs=max_jobs,
        max_step_up=section.integer("max_step_up", 2, minimum=1),
        max_step_down=section.integer("max_step_down", 1, minimum=1),
        min_quality=section.fraction("min_quality", 0.5),
        collapse_fraction=section.fraction("collapse_fraction", 0.5),
    )
    result = ThrottleSettings(
        policy=policy,
        transfer_time=section.duration("transfer_time", "10m"),
        site_capacity=_site_capacities(section.section("site_capacity")),
    )
    section.finish()
    return result


def _site_capacities(section: Section) -> tuple[SiteCapacity, ...]:
    found = []
    _refuse_case_twins(section)
    for site in sorted(section.data):
        if not NAME_PATTERN.match(site):
            raise section.error(site, "a site name of letters, digits, '.', '_' or '-'")
        entry = section.section(site)
        capacity = SiteCapacity(site, entry.rate(INGRESS), entry.rate(EGRESS))
        entry.finish()
        if capacity.ingress is None and capacity.egress is None:
            raise section.error(site, 'expected ingress and/or egress rates such as "10Gbit"')
        found.append(capacity)
    section.data.clear()
    return tuple(found)


def adhoc_settings(
    url: str, window: int, verify_tls: bool = True, ca_bundle: str | None = None
) -> Settings:
    """Settings for one esmond/elmond archive named on the command line.

    Without a site map every host counts as its own site.
    """
    archive: dict[str, Any] = {
        "name": "cli",
        "kind": "esmond",
        "url": url,
        "verify_tls": verify_tls,
    }
    if ca_bundle:
        archive["ca_bundle"] = ca_bundle
    label = f"{window}s"
    document = {"archives": [archive], "windows": {"list": [label], "default": label}}
    return settings_from_dict(document, "<command line>")
