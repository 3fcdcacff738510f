"""Turn path statistics into HTCondor ClassAds (classad2) and write them out.

The only module that builds ClassAds. Untrusted text (site and host names from
archives) enters ads only as typed string values with control characters
removed, never as attribute names or expression text. Attribute names come from
fixed templates and are checked against ``^[A-Za-z_][A-Za-z0-9_]*$``.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from operator import attrgetter
from pathlib import Path

import classad2

from larkps import __version__
from larkps.errors import PublishError
from larkps.model import (
    PATH_AD_TYPE,
    SITE_AD_TYPE,
    BandwidthEstimate,
    LossSummary,
    PathKey,
    PathStats,
    Quality,
    SiteStats,
)
from larkps.units import format_duration

ATTRIBUTE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
SUMMARY_FIELDS = (  # (attribute suffix, Summary field): unscaled first, then scaled
    ("Count", "count"),
    ("LatestTime", "latest_ts"),
    ("Age", "age"),
    ("Median", "median"),
    ("P10", "p10"),
    ("P90", "p90"),
    ("Mean", "mean"),
    ("Min", "minimum"),
    ("Max", "maximum"),
    ("P95", "p95"),
    ("StdDev", "std"),
    ("LatestValue", "latest_value"),
)
_UNSCALED = 3  # the first three fields are counts and times, never scaled
_SUMMARY_VALUES = attrgetter(*(field_name for _, field_name in SUMMARY_FIELDS))
_SCALED_VALUES = attrgetter(*(field_name for _, field_name in SUMMARY_FIELDS[_UNSCALED:]))
_UNSCALED_VALUES = attrgetter(*(field_name for _, field_name in SUMMARY_FIELDS[:_UNSCALED]))


@lru_cache(maxsize=65536)
def clean_text(text: str, limit: int = 256) -> str:
    """Remove CR, LF and every other control character; bound the length.

    Backslashes become ``/``: old syntax does not escape them, and a string that
    ends in one inside a list makes classad2 drop the whole ad.
    """
    return _CONTROL.sub("", text).replace("\\", "/")[:limit]


@dataclass(frozen=True, slots=True)
class AdContext:
    """Per-cycle values every ad carries."""

    update_time: int
    lifetime: int
    sequence: int
    daemon_start: int


_CHECKED_NAMES: set[str] = set()  # attribute names already matched against ATTRIBUTE_NAME


class AdBuilder:
    """Collect attributes for one ad, validating names and cleaning strings."""

    def __init__(self) -> None:
        self.attributes: dict[str, str | int | float | bool | list[str]] = {}

    def set(self, name: str, value: str | int | float | bool | list[str] | None) -> None:
        if name not in _CHECKED_NAMES:
            if not ATTRIBUTE_NAME.match(name):
                raise PublishError(f"refusing attribute name {name!r}")
            _CHECKED_NAMES.add(name)
        if value is None:
            return
        kind = type(value)
        if kind is str:
            value = clean_text(value)  # type: ignore[arg-type]
        elif kind is list:
            value = [clean_text(v) for v in value]  # type: ignore[union-attr]
        self.attributes[name] = value

    def build(self) -> classad2.ClassAd:
        return classad2.ClassAd(self.attributes)


@dataclass(frozen=True, slots=True)
class PathExtras:
    """Per-path figures beyond PathStats for the path ad."""

    health: float | None = None
    alarms: tuple[str, ...] = ()
    estimate: BandwidthEstimate | None = None
    other_windows: tuple[PathStats, ...] = ()  # the same path over the other windows


def path_ad(
    stats: PathStats, context: AdContext, extras: PathExtras | None = None
) -> classad2.ClassAd:
    """One generic ad for one path: its main window, plus `extras`."""
    return classad2.ClassAd(path_attributes(stats, context, extras))


def path_attributes(
    stats: PathStats, context: AdContext, extras: PathExtras | None = None
) -> dict[str, object]:
    """The attributes of :func:`path_ad`, as the dict handed to ``classad2.ClassAd``."""
    name, source, destination, family = _path_identity(stats.path)
    attributes: dict[str, object] = {
        "MyType": PATH_AD_TYPE,
        "Name": name,
        "ClassAdLifetime": context.lifetime,
        "UpdateSequenceNumber": context.sequence,
        "DaemonStartTime": context.daemon_start,
        "LarkPS_UpdateTime": context.update_time,
        "LarkPS_Version": __version__,
        "LarkPS_SourceSite": source,
        "LarkPS_DestinationSite": destination,
        "LarkPS_AddressFamily": family,
        "LarkPS_Hosts": list(_clean_hosts(stats.hosts)),
        "LarkPS_Window": stats.window,
    }
    _add_window(attributes, stats)
    if extras is not None:
        _add_extras(attributes, extras)
    return attributes


def _add_window(attributes: dict[str, object], stats: PathStats) -> None:
    """Every figure of one window, under attribute names that carry its label.

    Names come from one cached tuple per window and values from one flat tuple, so an
    ad costs a few C-level calls per window rather than one Python step per attribute.
    """
    names = _window_names(stats.window)
    values = _window_values(stats)
    attributes.update({n: v for n, v in zip(names, values, strict=True) if v is not None})


def _window_values(stats: PathStats) -> tuple[object, ...]:
    """Values in the order of :func:`_window_names`; None where a figure is missing."""
    throughput, owdelay, rtt, loss = stats.throughput, stats.owdelay, stats.rtt, stats.loss
    scaled = _SCALED_VALUES(throughput)
    if None in scaled:
        scaled = tuple(None if v is None else v * 1e-6 for v in scaled)
    else:
        scaled = tuple([v * 1e-6 for v in scaled])
    delay_quality = owdelay.quality
    return (
        *_UNSCALED_VALUES(throughput),
        *scaled,
        *_quality_values(throughput.quality),
        *_SUMMARY_VALUES(owdelay),
        *_quality_values(delay_quality),
        None if delay_quality is None else delay_quality.clock_error,
        *_SUMMARY_VALUES(rtt),
        *_quality_values(rtt.quality),
        loss.count,
        loss.fraction,
        *_packet_totals(loss),
        loss.latest_ts,
        *_quality_values(loss.quality),
        stats.failures,
    )


def _packet_totals(loss: LossSummary) -> tuple[int | None, int | None]:
    """Packets sent and lost; none without a loss test or with per-test rates only."""
    if loss.count == 0 or loss.rate is not None:
        return (None, None)
    return (loss.packets_sent, loss.packets_lost)


def _quality_values(quality: Quality | None) -> tuple[float | bool | None, ...]:
    """Completeness (rounded), stale flag and low-quality flag of one figure."""
    if quality is None:
        return (None, None, None)
    completeness = quality.completeness
    return (
        None if completeness is None else round(completeness, 4),
        quality.stale,
        quality.low,
    )


@lru_cache(maxsize=64)
def _window_names(window: int) -> tuple[str, ...]:
    """Attribute names of one window's figures, in the order of :func:`_window_values`."""
    label = format_duration(window)
    quality = ("Completeness", "Stale", "LowQuality")
    summary = tuple(suffix for suffix, _ in SUMMARY_FIELDS)
    loss = ("Count", "Fraction", "PacketsSent", "PacketsLost", "LatestTime")
    parts = (
        (f"LarkPS_ThroughputMbps_{label}", summary + quality),
        (f"LarkPS_OneWayDelayMs_{label}", summary + quality + ("ClockError",)),
        (f"LarkPS_RttMs_{label}", summary + quality),
        (f"LarkPS_Loss_{label}", loss + quality),
        (f"LarkPS_Failures_{label}", ("Count",)),
    )
    return _checked(
        tuple(f"{prefix}_{suffix}" for prefix, suffixes in parts for suffix in suffixes)
    )


def _add_extras(attributes: dict[str, object], extras: PathExtras) -> None:
    for other in extras.other_windows:
        _add_window(attributes, other)
    if extras.health is not None:
        attributes["LarkPS_Health"] = extras.health
    attributes["LarkPS_Alarms"] = list(extras.alarms)
    estimate = extras.estimate
    if estimate is None or estimate.forecast_bps is None:
        return
    attributes["LarkPS_ExpectedMbps"] = estimate.forecast_bps * 1e-6
    attributes["LarkPS_ExpectedErrorMbps"] = estimate.error_bps * 1e-6
    lower = estimate.lower_bound_bps
    if lower is not None:
        attributes["LarkPS_ExpectedLowerMbps"] = lower * 1e-6
    attributes["LarkPS_ExpectedProvenance"] = estimate.provenance.value
    attributes["LarkPS_ExpectedMethod"] = clean_text(estimate.method)
    attributes["LarkPS_ExpectedStale"] = estimate.stale
    attributes["LarkPS_ExpectedQuality"] = round(estimate.quality, 4)
    calibration = estimate.calibration
    if calibration is not None:
        attributes["LarkPS_CalibrationRatio"] = round(calibration.ratio, 4)
        attributes["LarkPS_CalibrationCount"] = calibration.count
        attributes["LarkPS_CalibrationSpread"] = round(calibration.spread, 4)
        attributes["LarkPS_CalibrationApplied"] = calibration.applied
        attributes["LarkPS_CalibrationProvenance"] = clean_text(calibration.note)


def path_ad_name(stats: PathStats) -> str:
    """Stable unique Name: one ad per path (the window is part of the attributes)."""
    return _path_identity(stats.path)[0]


@lru_cache(maxsize=65536)
def _clean_hosts(hosts: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(clean_text(h) for h in hosts)


@lru_cache(maxsize=65536)
def _path_identity(path: PathKey) -> tuple[str, str, str, str]:
    """Cleaned Name, source site, destination site and family of one path's ad."""
    return (
        clean_text(f"{path.name}@larkps", limit=512),
        clean_text(path.source_site),
        clean_text(path.destination_site),
        path.family.value,
    )


def _checked(names: tuple[str, ...]) -> tuple[str, ...]:
    for name in names:
        if not ATTRIBUTE_NAME.match(name):
            raise PublishError(f"refusing attribute name {name!r}")
    return names


def site_ad(windows: Sequence[SiteStats], context: AdContext) -> classad2.ClassAd:
    """One generic ad per site: its figures over every window (first = main window)."""
    main = windows[0]
    attributes: dict[str, object] = {
        "MyType": SITE_AD_TYPE,
        "Name": clean_text(f"{main.site}@larkps", limit=512),
        "ClassAdLifetime": context.lifetime,
        "UpdateSequenceNumber": context.sequence,
        "DaemonStartTime": context.daemon_start,
        "LarkPS_UpdateTime": context.update_time,
        "LarkPS_Version": __version__,
        "LarkPS_Site": clean_text(main.site),
        "LarkPS_Window": main.window,
        "LarkPS_Health": round(main.health, 4),
        "LarkPS_Alarms": [kind.value for kind in main.alarms],
    }
    for stats in windows:
        _add_site_window(attributes, stats)
    return classad2.ClassAd(attributes)


def _add_site_window(attributes: dict[str, object], stats: SiteStats) -> None:
    label = format_duration(stats.window)
    figures = {
        "OutboundMbps": None if stats.outbound_bps is None else stats.outbound_bps * 1e-6,
        "InboundMbps": None if stats.inbound_bps is None else stats.inbound_bps * 1e-6,
        "OutboundLoss": stats.outbound_loss,
        "InboundLoss": stats.inbound_loss,
        "OutboundDelayMs": stats.outbound_owdelay_ms,
        "InboundDelayMs": stats.inbound_owdelay_ms,
        "Partners": stats.partners,
        "FreshPartners": stats.fresh_partners,
        "Health": round(stats.health, 4),
    }
    for name, value in figures.items():
        if value is not None:
            attributes[f"LarkPS_{name}_{label}"] = value


def site_ads(
    sites: Iterable[SiteStats], context: AdContext, main_window: int
) -> list[classad2.ClassAd]:
    """Site ads, the main window's figures first in each."""
    by_site: dict[str, list[SiteStats]] = {}
    for stats in sites:
        by_site.setdefault(stats.site, []).append(stats)
    ads = []
    for site in sorted(by_site):
        windows = sorted(by_site[site], key=lambda s: (s.window != main_window, s.window))
        if windows[0].window == main_window:
            ads.append(site_ad(windows, context))
    return ads


def path_ads(
    stats: Iterable[PathStats],
    context: AdContext,
    extras: Mapping[PathKey, PathExtras] | None = None,
) -> list[classad2.ClassAd]:
    extras = extras or {}
    return [path_ad(s, context, extras.get(s.path)) for s in stats]


def render_old(ads: Iterable[classad2.ClassAd], generated: int) -> str:
    """Old syntax, blank-line separated, for ``condor_advertise -multiple``.

    `ads` may be a generator: each ad is printed and can be freed before the next is
    built, which is cheaper than holding thousands of ads at once.
    """
    texts = [ad.printOld() for ad in ads]
    stamp = datetime.fromtimestamp(generated, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    header = (
        f"# larkps {__version__}: {len(texts)} ads generated {stamp}\n"
        "# send with: condor_advertise -multiple UPDATE_AD_GENERIC <this file>\n"
    )
    # No blank line after the header: classad2 then reads an empty first ad.
    return header + "\n".join(texts)


def render_new(ads: Sequence[classad2.ClassAd]) -> str:
    """New syntax, one ad per line."""
    return "".join(repr(ad) + "\n" for ad in ads)


def render_json(ads: Sequence[classad2.ClassAd]) -> str:
    """A JSON array of ads, in HTCondor's JSON encoding."""
    # Raw UTF-8, not \\u escapes: classad2's JSON parser mangles \\u00e9 and the like.
    documents = [json.loads(ad.printJson()) for ad in ads]
    return json.dumps(documents, indent=1, ensure_ascii=False) + "\n"


AD_FORMATS = ("old", "new", "json")


def render(ads: Sequence[classad2.ClassAd], fmt: str, generated: int) -> str:
    if fmt == "old":
        return render_old(ads, generated)
    if fmt == "new":
        return render_new(ads)
    if fmt == "json":
        return render_json(ads)
    raise PublishError(f"unknown ad format {fmt!r}")


def parse_old(text: str) -> list[classad2.ClassAd]:
    """The ads of an ads file (old ClassAd syntax, blank-line separated)."""
    return list(classad2.parseAds(text, classad2.ParserType.Old))


def write_atomically(path: Path, text: str) -> None:
    """Write text to path so readers see the old file or the new one, never a part."""
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    except OSError as exc:
        raise PublishError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        _fsync_directory(directory)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise PublishError(f"cannot write {path}: {exc.strerror}") from None


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FilePublisher:
    """Write the cycle's ads as one old-syntax file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def publish(self, ads: Sequence[classad2.ClassAd], generated: int) -> str:
        return self.publish_text(render_old(ads, generated))

    def publish_text(self, text: str) -> str:
        """Write ads already rendered by :func:`render_old`."""
        write_atomically(self.path, text)
        return str(self.path)
