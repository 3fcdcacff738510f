"""Pure: can V bytes move from site A to site B by a deadline, on the throttle model?

The throttle decision (:func:`larkps.decide.throttle.decide` with no previous N, as for a
new DAG's first MAXJOBS) gives N jobs at R bits/s each on the tightest bottleneck's
lower bound (forecast - error, larkps.stats.expected). The plan adds the job count, the
completion time in waves of N jobs, its range over the forecast's error bar, and,
when the deadline is missed, the largest volume that fits and the deadline that
would work. docs/planning.md states the model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from larkps.decide.throttle import Capacity, Demand, ThrottlePolicy, candidates, decide
from larkps.decide.throttle.capacity import distrust, per_site_pair
from larkps.errors import FieldError
from larkps.model import EGRESS, INGRESS, BandwidthEstimate, ThrottleDecision
from larkps.units import format_duration, format_rate, format_size

DEFAULT_BYTES_PER_JOB = 2 * 10**9
Configured = Mapping[tuple[str, str], float]


@dataclass(frozen=True, slots=True)
class Request:
    """What the workflow author asks: a volume, a deadline and how the data splits.

    At most one of ``files`` (the job count) and ``bytes_per_job``; with neither,
    jobs of :data:`DEFAULT_BYTES_PER_JOB`.
    """

    source_site: str
    total_bytes: int
    deadline_s: int
    now: int
    files: int | None = None
    bytes_per_job: int | None = None
    transfer_time: int = 600
    consumers: int = 1

    def __post_init__(self) -> None:
        if self.total_bytes <= 0:
            raise FieldError("bytes", "expected a positive size")
        if self.deadline_s <= 0:
            raise FieldError("deadline", "expected a positive duration")
        if self.files is not None and self.bytes_per_job is not None:
            raise FieldError("files", "give --files or --bytes-per-job, not both")
        if self.files is not None and self.files < 1:
            raise FieldError("files", "expected at least one file")
        if self.bytes_per_job is not None and self.bytes_per_job <= 0:
            raise FieldError("bytes_per_job", "expected a positive size")
        if self.transfer_time <= 0:
            raise FieldError("transfer_time", "expected a positive duration")
        if self.consumers < 1:
            raise FieldError("consumers", "expected at least one consumer")

    def split(self, total: int) -> tuple[int, int, int]:
        """(jobs, bytes of each job, bytes of the last job) for `total` bytes."""
        if self.files is not None:
            each = -(-total // self.files)
            return self.files, each, each
        each = self.bytes_per_job or DEFAULT_BYTES_PER_JOB
        jobs = max(1, -(-total // each))
        return jobs, each, total - (jobs - 1) * each

    def split_text(self) -> str:
        if self.files is not None:
            return f"{self.files} files (--files)"
        if self.bytes_per_job is not None:
            return f"{format_size(self.bytes_per_job)} per job (--bytes-per-job)"
        return f"{format_size(DEFAULT_BYTES_PER_JOB)} per job (default; --files or --bytes-per-job)"


@dataclass(frozen=True, slots=True)
class Bound:
    """One candidate bottleneck across the forecast's error bar.

    ``capacity.bps`` is the lower bound throttles use; ``centre_bps`` the forecast,
    ``upper_bps`` forecast + error (a configured capacity is the same at all three).
    """

    capacity: Capacity
    centre_bps: float | None
    upper_bps: float | None
    quality: float | None  # the path's, the weakest partner's of a site sum; None: configured


@dataclass(frozen=True, slots=True)
class Plan:
    """The answer for one destination site."""

    source_site: str
    destination_site: str
    total_bytes: int
    deadline_s: int
    jobs_total: int
    bytes_per_job: int
    decision: ThrottleDecision
    bottleneck: Bound
    candidates: tuple[Bound, ...]
    trusted: bool
    job_s: float  # one full job at R
    waves: int
    completion_s: float  # at the lower bound: what the plan promises
    expected_s: float  # at the forecast
    earliest_s: float  # at forecast + error
    feasible: bool
    largest_bytes: int | None  # the most that fits the deadline (None: untrusted)
    deadline_needed_s: int | None  # the shortest deadline that works
    finish_ts: int | None
    rationale: Mapping[str, str]

    @property
    def parallel(self) -> int:
        """Jobs running at once: N, or fewer when there are fewer jobs."""
        return min(self.decision.jobs, self.jobs_total)

    @property
    def aggregate_bps(self) -> float:
        return self.parallel * self.decision.per_job_bps


def bounds(
    estimates: Sequence[BandwidthEstimate],
    policy: ThrottlePolicy,
    source: str,
    destination: str,
    configured: Configured,
) -> list[Bound]:
    """The throttle's candidate bottlenecks, with their centre and upper figures."""
    pairs = per_site_pair(estimates, policy)
    levels = {f"site {source} {EGRESS}": _site(source, EGRESS, pairs, policy, configured)}
    levels[f"site {destination} {INGRESS}"] = _site(destination, INGRESS, pairs, policy, configured)
    pair = pairs.get((source, destination))
    if pair is not None and pair.forecast_bps is not None:
        levels[f"path {pair.path.name}"] = (
            pair.forecast_bps,
            pair.forecast_bps + pair.error_bps,
            pair.quality,
        )
    found = candidates(estimates, policy, source, destination, configured)
    return [Bound(c, *levels.get(c.name, (None, None, None))) for c in found]


def _site(
    site: str,
    direction: str,
    pairs: Mapping[tuple[str, str], BandwidthEstimate],
    policy: ThrottlePolicy,
    configured: Configured,
) -> tuple[float | None, float | None, float | None]:
    """A site aggregate's centre, upper and quality, over the same partners as its lower bound."""
    given = configured.get((site, direction))
    if given is not None:
        return given, given, None
    end = 0 if direction == EGRESS else 1
    partners = [
        e
        for key, e in pairs.items()
        if key[end] == site and key[0] != key[1] and distrust(e, policy) is None
    ]
    if not partners:
        return None, None, None
    centre = sum(e.forecast_bps or 0.0 for e in partners)
    upper = centre + sum(e.error_bps for e in partners)
    return centre, upper, min(e.quality for e in partners)


@dataclass(frozen=True, slots=True)
class _Schedule:
    decision: ThrottleDecision
    jobs: int
    each: int
    job_s: float
    waves: int
    completion_s: float


def _schedule(
    request: Request, total: int, found: Sequence[Bound], policy: ThrottlePolicy
) -> _Schedule:
    jobs, each, last = request.split(total)
    demand = Demand(
        bytes_per_job=each, transfer_time=request.transfer_time, consumers=request.consumers
    )
    decision = decide([b.capacity for b in found], demand, policy, None)
    rate, slots = decision.per_job_bps, decision.jobs
    if rate <= 0 or slots <= 0:
        return _Schedule(decision, jobs, each, math.inf, 0, math.inf)
    full = each * 8.0 / rate
    waves = -(-jobs // slots)
    in_last_wave = jobs - (waves - 1) * slots
    final = last * 8.0 / rate if in_last_wave == 1 else full
    completion = round((waves - 1) * full + final, 9)  # no float noise across job sizes
    return _Schedule(decision, jobs, each, round(full, 9), waves, completion)


def plan_path(
    request: Request,
    destination: str,
    estimates: Sequence[BandwidthEstimate],
    policy: ThrottlePolicy,
    configured: Configured | None = None,
) -> Plan:
    """The plan for moving the request's volume from its source site to `destination`."""
    found = bounds(estimates, policy, request.source_site, destination, configured or {})
    done = _schedule(request, request.total_bytes, found, policy)
    trusted = not done.decision.held
    chosen = next(b for b in found if b.capacity.name == done.decision.bottleneck)
    expected, earliest = _range(done, found) if trusted else (math.inf, math.inf)
    feasible = trusted and done.completion_s <= request.deadline_s
    largest = _largest(request, found, policy) if trusted else None
    needed = math.ceil(done.completion_s) if trusted and math.isfinite(done.completion_s) else None
    finish = request.now + needed if needed is not None else None
    plan = Plan(
        source_site=request.source_site,
        destination_site=destination,
        total_bytes=request.total_bytes,
        deadline_s=request.deadline_s,
        jobs_total=done.jobs,
        bytes_per_job=done.each,
        decision=done.decision,
        bottleneck=chosen,
        candidates=tuple(found),
        trusted=trusted,
        job_s=done.job_s,
        waves=done.waves,
        completion_s=done.completion_s,
        expected_s=expected,
        earliest_s=earliest,
        feasible=feasible,
        largest_bytes=largest,
        deadline_needed_s=needed,
        finish_ts=finish,
        rationale={},
    )
    return replace(plan, rationale=explain(plan, request))


def _range(done: _Schedule, found: Sequence[Bound]) -> tuple[float, float]:
    """Completion at the forecast and at forecast + error: the rate scales with the bottleneck."""
    low = done.decision.bottleneck_bps
    centre = _tightest(b.centre_bps for b in found)
    upper = _tightest(b.upper_bps for b in found)
    if not low or centre is None or upper is None or not math.isfinite(done.completion_s):
        return done.completion_s, done.completion_s
    return done.completion_s * low / centre, done.completion_s * low / upper


def _tightest(figures: Iterable[float | None]) -> float | None:
    known = list(figures)
    if any(f is None for f in known):
        return None
    return min(f for f in known if f is not None)


def _largest(request: Request, found: Sequence[Bound], policy: ThrottlePolicy) -> int:
    """The most bytes whose completion still meets the deadline (bisection: it is monotone)."""

    def fits(total: int) -> bool:
        return _schedule(request, total, found, policy).completion_s <= request.deadline_s

    if fits(request.total_bytes):
        return request.total_bytes
    low, high = 0, request.total_bytes  # fits(low) (or low == 0), not fits(high)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


def plan_all(
    request: Request,
    estimates: Sequence[BandwidthEstimate],
    policy: ThrottlePolicy,
    configured: Configured | None = None,
) -> list[Plan]:
    """A plan for every destination with a measured path from the source, best first.

    Trusted plans come first, by completion time (ties: the larger aggregate rate
    first), then the untrusted ones by name.
    """
    sites = sorted(
        {
            e.path.destination_site
            for e in estimates
            if e.path.source_site == request.source_site
            and e.path.destination_site != request.source_site
        }
    )
    plans = [plan_path(request, site, estimates, policy, configured) for site in sites]
    return sorted(plans, key=_rank_key)


def _rank_key(plan: Plan) -> tuple[bool, float, float, str]:
    return (not plan.trusted, plan.completion_s, -plan.aggregate_bps, plan.destination_site)


def explain(plan: Plan, request: Request) -> dict[str, str]:
    """One line of rationale per number of the plan."""
    d = plan.decision
    low = d.bottleneck_bps
    lines = {
        "feasible": _feasible_text(plan),
        "jobs": f"{format_size(plan.total_bytes)} in {request.split_text()}"
        f" = {plan.jobs_total} job(s) of up to {format_size(plan.bytes_per_job)}",
        "parallel": d.rationale,
        "per_job": f"R = {format_rate(d.per_job_bps)}: min(rate a job needs to move"
        f" {format_size(plan.bytes_per_job)} in {format_duration(request.transfer_time)},"
        " share / N) (the throttle's R)",
        "completion": f"{plan.waves} wave(s) of at most N={d.jobs} jobs, each"
        f" {_hours(plan.job_s)} at R: {_hours(plan.completion_s)} at the lower bound"
        f" {_rate(low)}",
        "range": _range_text(plan),
        "bottleneck": f"{plan.bottleneck.capacity.describe()}",
        "quality": _quality_text(plan.bottleneck),
    }
    if not plan.feasible and plan.largest_bytes is not None:
        lines["largest"] = (
            f"{format_size(plan.largest_bytes)} fits {_hours(request.deadline_s)}"
            " with the same split and throttle (the largest volume found by bisection)"
        )
        lines["deadline_needed"] = f"{_hours(plan.completion_s)}: the completion at the lower bound"
    return lines


def _feasible_text(plan: Plan) -> str:
    if not plan.trusted:
        return f"unknown: {plan.decision.rationale.split(': ', 1)[-1]}"
    verdict = "<=" if plan.feasible else ">"
    return (
        f"completion {_hours(plan.completion_s)} {verdict} deadline {_hours(plan.deadline_s)}"
        " (at the lower bound, the figure throttles use)"
    )


def _range_text(plan: Plan) -> str:
    b = plan.bottleneck
    if not plan.trusted:
        return "none: the figures are not trusted"
    if b.centre_bps is None:
        return "none: no forecast behind the bottleneck"
    return (
        f"{_hours(plan.earliest_s)} .. {_hours(plan.completion_s)}, expected"
        f" {_hours(plan.expected_s)}: the jobs' rate scaled by the tightest candidate at forecast"
        f" + error, forecast and lower bound (this one: {_rate(b.upper_bps)},"
        f" {_rate(b.centre_bps)}, {_rate(b.capacity.bps)})"
    )


def _quality_text(bound: Bound) -> str:
    if bound.quality is None:
        return f"{bound.capacity.detail}: no measured quality"
    state = "trusted" if bound.capacity.usable else "untrusted"
    return f"quality {bound.quality:.2f} (fraction of expected tests present), {state}"


def _hours(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "never"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _rate(bps: float | None) -> str:
    return "no figure" if bps is None else format_rate(bps)
