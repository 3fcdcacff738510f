"""Candidate bottlenecks from bandwidth estimates: one path, or a site's aggregate."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from larkps.decide.throttle.inputs import Capacity, ThrottlePolicy
from larkps.model import EGRESS, INGRESS, BandwidthEstimate
from larkps.stats.expected import conservative, rationale


def distrust(estimate: BandwidthEstimate, policy: ThrottlePolicy) -> str | None:
    """Why an estimate must not drive a decision, or None when it may."""
    if estimate.lower_bound_bps is None:
        return "no throughput figure"
    if estimate.stale:
        if estimate.latest_ts is None:
            return "stale: no recent test"
        latest = datetime.fromtimestamp(estimate.latest_ts, tz=UTC)
        return f"stale: latest test {latest:%Y-%m-%dT%H:%MZ}"
    if estimate.quality < policy.min_quality:
        return f"quality {estimate.quality:.2f} below {policy.min_quality:.2f}"
    return None


def estimate_rationale(estimate: BandwidthEstimate) -> str:
    """The words of larkps.stats.expected.rationale for one estimate."""
    return rationale(
        estimate.forecast_bps,
        estimate.error_bps,
        estimate.provenance.value,
        estimate.method,
        estimate.quality,
        estimate.calibration,
    )


def path_capacity(estimate: BandwidthEstimate, policy: ThrottlePolicy) -> Capacity:
    """The path's lower bound (forecast - error), usable only when fresh and trusted."""
    problem = distrust(estimate, policy)
    detail = estimate_rationale(estimate)
    if problem is not None:
        detail = f"{problem}; {detail}"
    return Capacity(f"path {estimate.path.name}", estimate.lower_bound_bps, problem is None, detail)


def given_capacity(bps: float, label: str = "given bandwidth") -> Capacity:
    """A figure the user typed in (what-if use, or no archive at hand)."""
    return Capacity(label, bps, True, "given on the command line")


def per_site_pair(
    estimates: Iterable[BandwidthEstimate], policy: ThrottlePolicy
) -> dict[tuple[str, str], BandwidthEstimate]:
    """One estimate per (source site, destination site) across address families.

    The trusted estimate with the lowest lower bound wins (the conservative
    choice); when none is trusted the first one seen stays, so its staleness shows.
    """
    return conservative(
        estimates,
        lambda e: (e.path.source_site, e.path.destination_site),
        lambda e: distrust(e, policy) is None,
        lambda e: e.lower_bound_bps,
    )


def site_capacity(
    site: str,
    direction: str,
    estimates: Iterable[BandwidthEstimate],
    policy: ThrottlePolicy,
    configured_bps: float | None = None,
) -> Capacity:
    """A site's aggregate egress or ingress: configured, or the sum over its partner paths.

    Untrusted partner paths are left out of the sum, which can only make it smaller.
    """
    name = f"site {site} {direction}"
    if configured_bps is not None:
        return Capacity(name, configured_bps, True, "configured capacity")
    end = 0 if direction == EGRESS else 1
    partners = [
        e
        for pair, e in per_site_pair(estimates, policy).items()
        if pair[end] == site and pair[0] != pair[1]
    ]
    trusted = [e.lower_bound_bps for e in partners if distrust(e, policy) is None]
    left_out = len(partners) - len(trusted)
    if not trusted:
        return Capacity(name, None, False, f"no trusted partner paths ({left_out} untrusted)")
    detail = f"sum of the lower bounds of {len(trusted)} partner path(s)"
    if left_out:
        detail += f", {left_out} untrusted left out"
    return Capacity(name, sum(b for b in trusted if b is not None), True, detail)


def candidates(
    estimates: Iterable[BandwidthEstimate],
    policy: ThrottlePolicy,
    source_site: str,
    destination_site: str | None = None,
    site_capacities: Mapping[tuple[str, str], float] | None = None,
) -> list[Capacity]:
    """Every bottleneck a transfer from source_site (to destination_site) crosses.

    site_capacities maps (site, INGRESS | EGRESS) to a configured capacity
    (``ThrottleSettings.capacities``).
    """
    estimates = list(estimates)
    configured = site_capacities or {}
    found = [
        site_capacity(source_site, EGRESS, estimates, policy, configured.get((source_site, EGRESS)))
    ]
    if destination_site is None:
        return found
    pair = per_site_pair(estimates, policy).get((source_site, destination_site))
    if pair is None:
        path = Capacity(f"path {source_site}->{destination_site}", None, False, "no measurements")
    else:
        path = path_capacity(pair, policy)
    ingress = site_capacity(
        destination_site, INGRESS, estimates, policy, configured.get((destination_site, INGRESS))
    )
    return [path, *found, ingress]
