"""The throttle decision: N concurrent jobs at R bits/s each, with FTS-style guards.

Formula (docs/throttling.md): B = the smallest usable bandwidth among the
candidate bottlenecks (path lower bound = forecast - error, site aggregates,
configured capacities); share = target_utilisation x safety_factor x B /
consumers; target = floor(share / per-job rate); N = target stepped from the
previous N (at most +max_step_up / -max_step_down, unless the bottleneck
collapsed) and clamped to [min_jobs, max_jobs]; R = min(per-job rate, share / N).
Any untrusted candidate (stale, low quality, no figure) holds the previous N.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from larkps.decide.throttle.arithmetic import fitting_jobs
from larkps.decide.throttle.inputs import Capacity, Demand, ThrottlePolicy
from larkps.model import ThrottleDecision
from larkps.units import format_rate

Previous = ThrottleDecision | int | None
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def decide(
    capacities: Sequence[Capacity],
    demand: Demand,
    policy: ThrottlePolicy,
    previous: Previous = None,
) -> ThrottleDecision:
    """N and R for the tightest of `capacities`; `previous` is the last decision or its N."""
    if not capacities:
        raise ValueError("a throttle decision needs at least one candidate bottleneck")
    prev = previous.jobs if isinstance(previous, ThrottleDecision) else previous
    untrusted = [c for c in capacities if not c.usable]
    if untrusted:
        return _hold(capacities, untrusted[0], demand, policy, prev)
    bottleneck = min(capacities, key=_bps)
    share = _share(_bps(bottleneck), demand, policy)
    target = fitting_jobs(share, demand.rate_bps)
    stepped_jobs, step_text, collapsed = _step(target, prev, share, demand, policy)
    jobs, clamped = _clamp(stepped_jobs, policy)
    rate = _per_job(share, demand.rate_bps, jobs)
    parts = [
        f"bottleneck {bottleneck.describe()}",
        *_others(capacities, bottleneck),
        _share_text(_bps(bottleneck), share, demand, policy),
        f"target = floor({format_rate(share)} / {demand.describe()}) = {target}",
        step_text,
        _clamp_text(stepped_jobs, jobs, policy),
        f"R = min({format_rate(demand.rate_bps)}, share / N) = {format_rate(rate)}",
    ]
    return ThrottleDecision(
        jobs=jobs,
        per_job_bps=rate,
        bottleneck=bottleneck.name,
        bottleneck_bps=bottleneck.bps,
        target_jobs=target,
        clamped=clamped,
        stepped=stepped_jobs != target and not collapsed,
        collapsed=collapsed,
        rationale=_one_line(jobs, rate, parts),
    )


def _bps(capacity: Capacity) -> float:
    assert capacity.bps is not None
    return capacity.bps


def _share(bandwidth: float, demand: Demand, policy: ThrottlePolicy) -> float:
    return policy.target_utilisation * policy.safety_factor * bandwidth / demand.consumers


def _per_job(share: float, rate: float, jobs: int) -> float:
    return 0.0 if jobs <= 0 else min(rate, share / jobs)


def _step(
    target: int, prev: int | None, share: float, demand: Demand, policy: ThrottlePolicy
) -> tuple[int, str, bool]:
    """Bound the change from the previous N; skip the step-down bound on a collapse.

    The bottleneck collapsed when the share no longer gives the previous N jobs
    even collapse_fraction of their rate each.
    """
    if prev is None:
        return target, "no previous value", False
    if target > prev:
        jobs = min(target, prev + policy.max_step_up)
        return jobs, f"previous {prev}, step up at most {policy.max_step_up} -> {jobs}", False
    if target == prev:
        return target, f"previous {prev}, unchanged", False
    if share < policy.collapse_fraction * prev * demand.rate_bps:
        return (
            target,
            f"previous {prev}, collapsed (share < {policy.collapse_fraction:g} x {prev} x rate)"
            f" -> {target}",
            True,
        )
    jobs = max(target, prev - policy.max_step_down)
    return jobs, f"previous {prev}, step down at most {policy.max_step_down} -> {jobs}", False


def _clamp(jobs: int, policy: ThrottlePolicy) -> tuple[int, bool]:
    clamped = max(policy.min_jobs, min(policy.max_jobs, jobs))
    return clamped, clamped != jobs


def _clamp_text(before: int, after: int, policy: ThrottlePolicy) -> str:
    bounds = f"[{policy.min_jobs}, {policy.max_jobs}]"
    return f"clamp {bounds} -> {after}" if before != after else f"within {bounds}"


def _share_text(bandwidth: float, share: float, demand: Demand, policy: ThrottlePolicy) -> str:
    consumers = "consumer" if demand.consumers == 1 else "consumers"
    return (
        f"share = {policy.target_utilisation:g} utilisation x {policy.safety_factor:g} safety"
        f" x {format_rate(bandwidth)} / {demand.consumers} {consumers} = {format_rate(share)}"
    )


def _others(capacities: Sequence[Capacity], chosen: Capacity) -> list[str]:
    rest = [c for c in capacities if c is not chosen]
    if not rest:
        return []
    return ["also " + ", ".join(c.describe() for c in rest)]


def _hold(
    capacities: Sequence[Capacity],
    culprit: Capacity,
    demand: Demand,
    policy: ThrottlePolicy,
    prev: int | None,
) -> ThrottleDecision:
    """Untrusted input: keep the previous N (min_jobs without one); never raise it."""
    start, why = (
        (policy.min_jobs, "no previous value: min_jobs")
        if prev is None
        else (prev, f"hold previous {prev}")
    )
    jobs, clamped = _clamp(start, policy)
    known = [c.bps for c in capacities if c.bps is not None]
    rate = demand.rate_bps if jobs > 0 else 0.0
    if known:
        rate = _per_job(_share(min(known), demand, policy), demand.rate_bps, jobs)
    parts = [f"untrusted {culprit.describe()}", why, _clamp_text(start, jobs, policy)]
    parts.append(f"R = {format_rate(rate)}" + (" from the smallest known figure" if known else ""))
    return ThrottleDecision(
        jobs=jobs,
        per_job_bps=rate,
        bottleneck=culprit.name,
        bottleneck_bps=culprit.bps,
        target_jobs=jobs,
        held=True,
        clamped=clamped,
        rationale=_one_line(jobs, rate, parts),
    )


def _one_line(jobs: int, rate: float, parts: Sequence[str]) -> str:
    text = f"N={jobs} R={format_rate(rate)}: " + "; ".join(parts)
    return _CONTROL.sub("?", text)
