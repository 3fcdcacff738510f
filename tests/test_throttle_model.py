"""The throttle model: golden cases worked by hand, and properties that must always hold."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from larkps.decide.throttle import (
    Capacity,
    Demand,
    ThrottlePolicy,
    candidates,
    concurrency_for,
    decide,
    path_capacity,
    per_site_pair,
    site_capacity,
)
from larkps.model import BandwidthEstimate, Family, PathKey, Provenance, ThrottleDecision

POLICY = ThrottlePolicy()  # u 0.8, safety 0.9, [1, 200], +2/-1, quality 0.5, collapse 0.5
RATE = Demand(per_job_bps=100e6)


def cap(bps: float | None, usable: bool = True, name: str = "path A->B/ipv4") -> Capacity:
    return Capacity(name, bps, usable, "test figure")


# name, capacities, demand, policy, previous -> jobs, per-job rate, bottleneck, flags
# Arithmetic in the comments: share = u x safety x B / consumers, target = floor(share / rate).
GOLDEN = [
    # share = 0.72 x 1.2G = 864M; 864M / 100M = 8.64 -> 8; R = 100M
    ("first decision", [cap(1.2e9)], RATE, POLICY, None, 8, 100e6, "path A->B/ipv4", ""),
    # 2GB in 600 s = 26.67M per job; 864M / 26.67M = 32.4 -> 32
    (
        "per-job volume",
        [cap(1.2e9)],
        Demand(bytes_per_job=2_000_000_000, transfer_time=600),
        POLICY,
        None,
        32,
        2e9 * 8 / 600,
        "path A->B/ipv4",
        "",
    ),
    # target 8, previous 3: at most +2 -> 5
    ("step up bounded", [cap(1.2e9)], RATE, POLICY, 3, 5, 100e6, "path A->B/ipv4", "stepped"),
    # target 8, previous 10: 864M >= 0.5 x 10 x 100M, no collapse; -1 -> 9; R = 864M / 9 = 96M
    ("step down bounded", [cap(1.2e9)], RATE, POLICY, 10, 9, 96e6, "path A->B/ipv4", "stepped"),
    # B 0.5G: share 360M < 0.5 x 10 x 100M = 500M -> collapse straight to 3
    ("collapse", [cap(0.5e9)], RATE, POLICY, 10, 3, 100e6, "path A->B/ipv4", "collapsed"),
    # target 8 > max 5
    (
        "clamp to max",
        [cap(1.2e9)],
        RATE,
        replace(POLICY, max_jobs=5),
        None,
        5,
        100e6,
        "path A->B/ipv4",
        "clamped",
    ),
    # B 10M: share 7.2M, target 0 -> min 1; R = 7.2M / 1
    ("clamp to min", [cap(10e6)], RATE, POLICY, None, 1, 7.2e6, "path A->B/ipv4", "clamped"),
    # the site egress (2G) is tighter than the path (10G): share 1.44G -> 14
    (
        "site aggregate bottleneck",
        [cap(10e9), cap(2e9, name="site A egress")],
        RATE,
        POLICY,
        None,
        14,
        100e6,
        "site A egress",
        "",
    ),
    # 4 consumers: 864M / 4 = 216M -> 2
    (
        "competing consumers",
        [cap(1.2e9)],
        Demand(per_job_bps=100e6, consumers=4),
        POLICY,
        None,
        2,
        100e6,
        "path A->B/ipv4",
        "",
    ),
    # 0.72 x 1G / 72M is 10 in exact arithmetic (float gives 9.999...)
    (
        "exact boundary",
        [cap(1e9)],
        Demand(per_job_bps=72e6),
        POLICY,
        None,
        10,
        72e6,
        "path A->B/ipv4",
        "",
    ),
    # stale: hold 7; R from the stale figure: min(100M, 864M / 7)
    (
        "stale holds",
        [cap(1.2e9, usable=False)],
        RATE,
        POLICY,
        7,
        7,
        100e6,
        "path A->B/ipv4",
        "held",
    ),
    # stale without a previous value: min_jobs
    (
        "stale, no previous",
        [cap(None, usable=False)],
        RATE,
        POLICY,
        None,
        1,
        100e6,
        "path A->B/ipv4",
        "held",
    ),
    # held value above a lowered max_jobs is cut to it
    (
        "held above max",
        [cap(None, usable=False)],
        RATE,
        replace(POLICY, max_jobs=4),
        9,
        4,
        100e6,
        "path A->B/ipv4",
        "held clamped",
    ),
    # no bandwidth at all and min_jobs 0: nothing runs
    (
        "zero bandwidth",
        [cap(0.0)],
        RATE,
        replace(POLICY, min_jobs=0),
        None,
        0,
        0.0,
        "path A->B/ipv4",
        "",
    ),
]


@pytest.mark.parametrize(
    ("name", "capacities", "demand", "policy", "previous", "jobs", "rate", "bottleneck", "flags"),
    GOLDEN,
    ids=[case[0] for case in GOLDEN],
)
def test_golden_decisions(
    name: str,
    capacities: list[Capacity],
    demand: Demand,
    policy: ThrottlePolicy,
    previous: int | None,
    jobs: int,
    rate: float,
    bottleneck: str,
    flags: str,
):
    decision = decide(capacities, demand, policy, previous)
    assert decision.jobs == jobs
    assert decision.per_job_bps == pytest.approx(rate)
    assert decision.bottleneck == bottleneck
    raised = {f for f in ("held", "clamped", "stepped", "collapsed") if getattr(decision, f)}
    assert raised == set(flags.split())
    assert f"N={jobs} " in decision.rationale
    assert "\n" not in decision.rationale


def test_previous_may_be_a_decision():
    first = decide([cap(1.2e9)], RATE, POLICY, 3)
    second = decide([cap(1.2e9)], RATE, POLICY, first)
    assert (first.jobs, second.jobs) == (5, 7)


def test_rationale_names_inputs_formula_and_result():
    decision = decide([cap(1.2e9), cap(5e9, name="site A egress")], RATE, POLICY, 6)
    text = decision.rationale
    for piece in ("path A->B/ipv4 = 1.2Gbit/s", "site A egress", "0.8 utilisation", "0.9 safety"):
        assert piece in text
    assert "floor(864Mbit/s / per-job rate 100Mbit/s) = 8" in text
    assert "previous 6" in text and text.startswith("N=8 R=100Mbit/s")


def test_rationale_cannot_be_split_by_hostile_names():
    hostile = Capacity("path evil\nN=9999->B/ipv4", 1e9, True, "x\ry")
    assert "\n" not in decide([hostile], RATE, POLICY).rationale


def test_concurrency_for_still_clamps():
    assert concurrency_for(10e9, 1e9, 0.8, 1, 100) == 8
    assert concurrency_for(0.0, 1e9, 0.8, 2, 100) == 2


# --- capacities from bandwidth estimates -------------------------------------------


def estimate(
    src: str,
    dst: str,
    forecast: float | None,
    error: float = 0.0,
    family: Family = Family.IPV4,
    stale: bool = False,
    quality: float = 1.0,
) -> BandwidthEstimate:
    return BandwidthEstimate(
        PathKey(src, dst, family), forecast, error, Provenance.MEASURED, stale, quality, 1000
    )


def test_path_capacity_is_the_lower_bound_and_gated():
    good = path_capacity(estimate("A", "B", 1.5e9, 0.3e9), POLICY)
    assert (good.bps, good.usable) == (1.2e9, True)
    assert not path_capacity(estimate("A", "B", 1.5e9, stale=True), POLICY).usable
    low = path_capacity(estimate("A", "B", 1.5e9, quality=0.2), POLICY)
    assert not low.usable and "quality 0.20 below 0.50" in low.detail
    assert not path_capacity(estimate("A", "B", None), POLICY).usable


def test_families_reduce_to_the_trusted_lower_one():
    v4 = estimate("A", "B", 2e9)
    v6 = estimate("A", "B", 1e9, family=Family.IPV6)
    stale_v6 = replace(v6, forecast_bps=0.5e9, stale=True)
    assert per_site_pair([v4, v6], POLICY)[("A", "B")] is v6
    assert per_site_pair([v4, stale_v6], POLICY)[("A", "B")] is v4


def test_site_aggregate_sums_trusted_partner_paths():
    paths = [
        estimate("A", "B", 1e9, 0.2e9),
        estimate("A", "C", 3e9, 1e9),
        estimate("A", "D", 9e9, stale=True),
        estimate("B", "A", 7e9),
        estimate("A", "A", 40e9),
    ]
    egress = site_capacity("A", "egress", paths, POLICY)
    assert egress.bps == pytest.approx(0.8e9 + 2e9)
    assert "1 untrusted left out" in egress.detail
    assert site_capacity("A", "ingress", paths, POLICY).bps == pytest.approx(7e9)
    configured = site_capacity("A", "egress", paths, POLICY, configured_bps=1e9)
    assert (configured.bps, configured.detail) == (1e9, "configured capacity")
    assert not site_capacity("Z", "egress", paths, POLICY).usable


def test_candidates_cover_path_and_both_sites():
    paths = [estimate("A", "B", 1e9), estimate("A", "C", 1e9), estimate("C", "B", 1e9)]
    names = [c.name for c in candidates(paths, POLICY, "A", "B")]
    assert names == ["path A->B/ipv4", "site A egress", "site B ingress"]
    assert [c.name for c in candidates(paths, POLICY, "A")] == ["site A egress"]
    missing = candidates(paths, POLICY, "B", "C")[0]
    assert (missing.usable, missing.detail) == (False, "no measurements")
    configured = candidates(paths, POLICY, "A", "B", {("B", "ingress"): 0.1e9})
    assert decide(configured, RATE, POLICY).bottleneck == "site B ingress"


# --- properties -------------------------------------------------------------------


@st.composite
def policies(draw: st.DrawFn) -> ThrottlePolicy:
    low = draw(st.integers(0, 20))
    return ThrottlePolicy(
        target_utilisation=draw(st.floats(0.05, 1.0)),
        safety_factor=draw(st.floats(0.05, 1.0)),
        min_jobs=low,
        max_jobs=draw(st.integers(max(low, 1), 500)),
        max_step_up=draw(st.integers(1, 5)),
        max_step_down=draw(st.integers(1, 5)),
        collapse_fraction=draw(st.floats(0.05, 1.0)),
    )


capacity_lists = st.lists(
    st.builds(
        Capacity,
        name=st.sampled_from(["path A->B/ipv4", "site A egress", "site B ingress"]),
        bps=st.floats(0.0, 1e11),
        usable=st.booleans(),
        detail=st.just("generated"),
    ),
    min_size=1,
    max_size=3,
)
demands = st.builds(
    Demand, per_job_bps=st.floats(1e3, 1e10), consumers=st.integers(1, 8)
) | st.builds(
    Demand,
    bytes_per_job=st.integers(1, 10**12),
    transfer_time=st.integers(1, 86400),
    consumers=st.integers(1, 8),
)


@st.composite
def situations(draw: st.DrawFn) -> tuple[list[Capacity], Demand, ThrottlePolicy, int | None]:
    policy = draw(policies())
    previous = draw(st.none() | st.integers(policy.min_jobs, policy.max_jobs))
    return draw(capacity_lists), draw(demands), policy, previous


@settings(max_examples=400, deadline=None)
@given(situations())
def test_jobs_stay_within_min_and_max(
    case: tuple[list[Capacity], Demand, ThrottlePolicy, int | None],
):
    capacities, demand, policy, previous = case
    decision = decide(capacities, demand, policy, previous)
    assert policy.min_jobs <= decision.jobs <= policy.max_jobs


@settings(max_examples=400, deadline=None)
@given(situations())
def test_jobs_move_at_most_one_step_unless_collapsed(
    case: tuple[list[Capacity], Demand, ThrottlePolicy, int | None],
):
    capacities, demand, policy, previous = case
    decision = decide(capacities, demand, policy, previous)
    if previous is None or decision.collapsed:
        return
    assert previous - policy.max_step_down <= decision.jobs <= previous + policy.max_step_up


@settings(max_examples=400, deadline=None)
@given(situations())
def test_rate_times_jobs_fits_in_the_target_share(
    case: tuple[list[Capacity], Demand, ThrottlePolicy, int | None],
):
    capacities, demand, policy, previous = case
    decision = decide(capacities, demand, policy, previous)
    assert 0.0 <= decision.per_job_bps <= demand.rate_bps
    if decision.bottleneck_bps is not None:
        budget = policy.target_utilisation * decision.bottleneck_bps
        assert decision.per_job_bps * decision.jobs <= budget * (1 + 1e-9) + 1e-9
    if not decision.held:
        assert decision.bottleneck_bps == min(c.bps for c in capacities if c.bps is not None)


@settings(max_examples=400, deadline=None)
@given(situations())
def test_untrusted_input_never_raises_jobs(
    case: tuple[list[Capacity], Demand, ThrottlePolicy, int | None],
):
    capacities, demand, policy, previous = case
    stale = [replace(capacities[0], usable=False), *capacities[1:]]
    decision = decide(stale, demand, policy, previous)
    assert decision.held
    assert decision.jobs == (policy.min_jobs if previous is None else previous)


@settings(max_examples=200, deadline=None)
@given(
    forecast=st.floats(0.0, 1e11),
    error=st.floats(0.0, 1e10),
    previous=st.integers(1, 200),
    policy=policies(),
)
def test_stale_estimates_never_raise_jobs(
    forecast: float, error: float, previous: int, policy: ThrottlePolicy
):
    previous = max(policy.min_jobs, min(policy.max_jobs, previous))
    paths = [estimate("A", "B", forecast, error, stale=True), estimate("A", "C", 1e12)]
    decision = decide(candidates(paths, policy, "A", "B"), RATE, policy, previous)
    assert decision.jobs <= previous and decision.held


def test_decision_is_a_frozen_model_type():
    decision = decide([cap(1e9)], RATE, POLICY)
    assert isinstance(decision, ThrottleDecision)
    with pytest.raises(AttributeError):
        decision.jobs = 3  # type: ignore[misc]


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="exactly one"):
        Demand()
    with pytest.raises(ValueError, match="positive"):
        Demand(per_job_bps=math.nan)
    with pytest.raises(ValueError, match="min_jobs"):
        ThrottlePolicy(min_jobs=5, max_jobs=2)
    with pytest.raises(ValueError, match="at least one"):
        decide([], RATE, POLICY)
