"""Current throttle advice per path, for the report's detail panel.

Each path gets the decision ``larkps throttle`` would make for transfers over it
with no previous decision: the path (its bandwidth estimate), the source site's
egress and the destination site's ingress as candidate bottlenecks (configured capacities
from ``[throttle.site_capacity]`` win), and a demand of ``[report] bytes_per_job``
per job within ``[throttle] transfer_time``. Paths of one address family are
weighed against the sites' paths in the same family.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from larkps.config.settings import Settings
from larkps.decide.throttle import (
    Demand,
    decide,
    path_capacity,
    site_capacity,
)
from larkps.model import EGRESS, INGRESS, BandwidthEstimate, Family, PathKey, PathStats
from larkps.report.model import ReportAdvice
from larkps.stats.estimates import window_estimates


def path_advice(
    stats: Sequence[PathStats],
    settings: Settings,
    estimates: Mapping[PathKey, BandwidthEstimate] | None = None,
) -> dict[PathKey, ReportAdvice]:
    """Advice for every path between two different sites.

    ``estimates`` are the cycle's bandwidth estimates (forecast or modelled); a path
    without one is judged by its window median.
    """
    chosen = window_estimates(stats, (estimates or {}).values(), settings.windows.stale_after)
    by_family: dict[Family, list[BandwidthEstimate]] = defaultdict(list)
    for estimate in chosen.values():
        by_family[estimate.path.family].append(estimate)
    advice = {}
    for family in by_family.values():
        advice.update(_family_advice(family, settings))
    return advice


def _family_advice(
    estimates: list[BandwidthEstimate], settings: Settings
) -> dict[PathKey, ReportAdvice]:
    policy = settings.throttle.policy
    demand = Demand(
        bytes_per_job=settings.report.bytes_per_job,
        transfer_time=settings.throttle.transfer_time,
    )
    configured = settings.throttle.capacities
    sites = {e.path.source_site for e in estimates} | {e.path.destination_site for e in estimates}
    egress = {
        s: site_capacity(s, EGRESS, estimates, policy, configured.get((s, EGRESS))) for s in sites
    }
    ingress = {
        s: site_capacity(s, INGRESS, estimates, policy, configured.get((s, INGRESS))) for s in sites
    }
    advice = {}
    for estimate in estimates:
        path = estimate.path
        if path.source_site == path.destination_site:
            continue
        capacities = [
            path_capacity(estimate, policy),
            egress[path.source_site],
            ingress[path.destination_site],
        ]
        decision = decide(capacities, demand, policy)
        advice[path] = ReportAdvice(
            jobs=decision.jobs,
            per_job_bps=decision.per_job_bps,
            bottleneck=decision.bottleneck,
            held=decision.held,
            rationale=decision.rationale,
            demand=demand.describe(),
        )
    return advice
