"""Pure: the figures of one path as a scheduler sees them, read from a path ad.

Works on anything mapping attribute names to values (a parsed ``classad2.ClassAd``
is a Mapping), so STARTD_CRON and the advisor read the same figures whether the ads
come from the local ads file, the spool or the collector.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from larkps.model import PATH_AD_TYPE, Calibration, lower_bound
from larkps.stats.expected import conservative, rationale
from larkps.units import format_duration


@dataclass(frozen=True, slots=True)
class PathView:
    """Expected bandwidth (Mbps), loss, delay and trust of one directed site path."""

    source_site: str
    destination_site: str
    family: str
    update_time: int
    expected_mbps: float | None
    error_mbps: float
    loss_fraction: float | None
    delay_ms: float | None
    quality: float
    stale: bool
    health: float | None
    provenance: str
    method: str = ""
    published_lower_mbps: float | None = None  # the ad's LarkPS_ExpectedLowerMbps
    calibration: Calibration | None = None  # the ad's LarkPS_Calibration* (already applied)

    @property
    def lower_mbps(self) -> float | None:
        """Forecast minus its error bar, never negative: the figure the ad publishes,
        else the same formula over its expected figure (larkps.stats.expected)."""
        if self.published_lower_mbps is not None:
            return self.published_lower_mbps
        return lower_bound(self.expected_mbps, self.error_mbps)

    @property
    def rationale(self) -> str:
        """The figure in words, as throttle and explain word it (larkps.stats.expected)."""
        expected = None if self.expected_mbps is None else self.expected_mbps * 1e6
        return rationale(
            expected,
            self.error_mbps * 1e6,
            self.provenance,
            self.method,
            self.quality,
            self.calibration,
        )

    def trusted(self, now: int, stale_after: int, min_quality: float) -> bool:
        """Fresh, good enough and with a figure at all."""
        return (
            self.lower_mbps is not None
            and not self.stale
            and now - self.update_time <= stale_after
            and self.quality >= min_quality
        )


def _number(ad: Mapping[str, Any], name: str) -> float | None:
    value = ad.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def view_from_ad(ad: Mapping[str, Any]) -> PathView | None:
    """A PathView from one LarkPSPath ad, or None for other ads."""
    if ad.get("MyType") != PATH_AD_TYPE:
        return None
    expected = _number(ad, "LarkPS_ExpectedMbps")
    if expected is None:  # no estimate in the ad: the window median, never trusted
        expected = _by_prefix(ad, "LarkPS_ThroughputMbps_", "_Median")
    return PathView(
        source_site=str(ad.get("LarkPS_SourceSite", "")),
        destination_site=str(ad.get("LarkPS_DestinationSite", "")),
        family=str(ad.get("LarkPS_AddressFamily", "")),
        update_time=int(_number(ad, "LarkPS_UpdateTime") or 0),
        expected_mbps=expected,
        error_mbps=_number(ad, "LarkPS_ExpectedErrorMbps") or 0.0,
        loss_fraction=_by_prefix(ad, "LarkPS_Loss_", "_Fraction"),
        delay_ms=None if _clock_error(ad) else _by_prefix(ad, "LarkPS_OneWayDelayMs_", "_Median"),
        quality=_number(ad, "LarkPS_ExpectedQuality") or 0.0,
        stale=bool(ad.get("LarkPS_ExpectedStale", True)),
        health=_number(ad, "LarkPS_Health"),
        provenance=str(ad.get("LarkPS_ExpectedProvenance", "none")),
        method=str(ad.get("LarkPS_ExpectedMethod", "")),
        published_lower_mbps=_number(ad, "LarkPS_ExpectedLowerMbps"),
        calibration=_calibration(ad),
    )


def _calibration(ad: Mapping[str, Any]) -> Calibration | None:
    ratio = _number(ad, "LarkPS_CalibrationRatio")
    if ratio is None:
        return None
    return Calibration(
        ratio=ratio,
        count=int(_number(ad, "LarkPS_CalibrationCount") or 0),
        spread=_number(ad, "LarkPS_CalibrationSpread") or 0.0,
        applied=ad.get("LarkPS_CalibrationApplied") is True,
        note=str(ad.get("LarkPS_CalibrationProvenance", "")),
    )


def _by_prefix(ad: Mapping[str, Any], prefix: str, suffix: str) -> float | None:
    """`<prefix><window label><suffix>` for the ad's own window."""
    window = ad.get("LarkPS_Window")
    if not isinstance(window, int):
        return None
    return _number(ad, f"{prefix}{format_duration(window)}{suffix}")


def _clock_error(ad: Mapping[str, Any]) -> bool:
    """One-way delays of a path with a clock problem are not a delay figure."""
    window = ad.get("LarkPS_Window")
    if not isinstance(window, int):
        return False
    return ad.get(f"LarkPS_OneWayDelayMs_{format_duration(window)}_ClockError") is True


def views_from_ads(ads: Iterable[Mapping[str, Any]]) -> list[PathView]:
    return [v for v in (view_from_ad(ad) for ad in ads) if v is not None]


def best_family(
    views: Iterable[PathView], now: int, stale_after: int, min_quality: float
) -> dict[tuple[str, str], PathView]:
    """Per (source, destination) site pair, the family throttles use too: the trusted
    one with the lower lower bound; untrusted views only where no trusted one exists."""
    return conservative(
        views,
        lambda v: (v.source_site, v.destination_site),
        lambda v: v.trusted(now, stale_after, min_quality),
        lambda v: v.lower_mbps,
    )
