"""STARTD_CRON output: this execute node's site's figures to and from every other site.

For a node at site S and each partner site T (attribute fragment F, see
:mod:`larkps.publish.identifiers`), ``LarkPS_From_F_*`` describe the path T -> S (data
coming to this node, e.g. input staging) and ``LarkPS_To_F_*`` the path S -> T.
Values are rendered by classad2 itself, so untrusted text can only ever become a
string literal. The block ends with ``- update:true`` so the startd publishes it at
once.
"""

from __future__ import annotations

from collections.abc import Iterable

import classad2

from larkps.decide.views import PathView, best_family
from larkps.publish.ads import clean_text
from larkps.publish.identifiers import identifier_map


def _path_attributes(prefix: str, view: PathView, trusted: bool) -> dict[str, object]:
    attributes: dict[str, object] = {
        f"{prefix}_Trusted": trusted,
        f"{prefix}_Quality": round(view.quality, 4),
        f"{prefix}_Provenance": clean_text(view.provenance),
        f"{prefix}_Family": view.family,
        f"{prefix}_UpdateTime": view.update_time,
    }
    optional = {
        "BandwidthMbps": view.expected_mbps,
        "BandwidthLowMbps": view.lower_mbps,
        "BandwidthErrorMbps": view.error_mbps if view.expected_mbps is not None else None,
        "LossFraction": view.loss_fraction,
        "DelayMs": view.delay_ms,
        "Health": view.health,
    }
    for name, value in optional.items():
        if value is not None:
            attributes[f"{prefix}_{name}"] = round(value, 6)
    return attributes


def startd_cron_ad(
    views: Iterable[PathView], site: str, now: int, stale_after: int, min_quality: float
) -> classad2.ClassAd:
    """The machine attributes for a node at `site`."""
    chosen = best_family(views, now, stale_after, min_quality)
    partners = {d for s, d in chosen if s == site} | {s for s, d in chosen if d == site}
    fragments = identifier_map(partners | {site})
    attributes: dict[str, object] = {
        "LarkPS_Site": clean_text(site),
        "LarkPS_Partners": sorted(clean_text(p) for p in partners),
    }
    times = []
    for (source, destination), view in sorted(chosen.items()):
        if site not in (source, destination) or source == destination:
            continue
        direction, partner = ("To", destination) if source == site else ("From", source)
        trusted = view.trusted(now, stale_after, min_quality)
        attributes.update(
            _path_attributes(f"LarkPS_{direction}_{fragments[partner]}", view, trusted)
        )
        times.append(view.update_time)
    attributes["LarkPS_UpdateTime"] = min(times) if times else 0
    return classad2.ClassAd(attributes)


def startd_cron_text(ad: classad2.ClassAd) -> str:
    """``Attr = value`` lines, sorted, ended by ``- update:true``."""
    lines = sorted(ad.printOld().splitlines())
    return "\n".join(lines) + "\n- update:true\n"
