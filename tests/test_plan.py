"""The planner on hand-made estimates: golden figures worked out by hand, and properties."""

from __future__ import annotations

import math
import time

import classad2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from larkps.cli.commands.plan import ready_lines
from larkps.decide.plan import Request, plan_all, plan_path
from larkps.decide.throttle import ThrottlePolicy
from larkps.errors import FieldError
from larkps.model import BandwidthEstimate, Family, PathKey, Provenance

POLICY = ThrottlePolicy()  # u = 0.8, s = 0.9, jobs in [1, 200]
NOW = 1_800_000_000
TB, GB = 10**12, 10**9


def estimate(
    src: str, dst: str, forecast: float, error: float = 0.0, stale: bool = False
) -> BandwidthEstimate:
    return BandwidthEstimate(
        PathKey(src, dst, Family.IPV4), forecast, error, Provenance.FORECAST, stale, 0.9, NOW, "x"
    )


# Lower bounds: A->B 4G, A->C 2.5G, C->B 2G; A->D stale.
MESH = [
    estimate("A", "B", 5e9, 1e9),
    estimate("A", "C", 3e9, 0.5e9),
    estimate("C", "B", 2e9),
    estimate("A", "D", 9e9, stale=True),
]


def request(total: int = 2 * TB, deadline: int = 6 * 3600, **extra: int) -> Request:
    return Request(
        "A", total, deadline, NOW, bytes_per_job=extra.pop("bytes_per_job", 2 * GB), **extra
    )


def test_feasible_plan_by_hand():
    plan = plan_path(request(), "B", MESH, POLICY)
    # share = 0.8 x 0.9 x 4G = 2.88G; a job needs 2GB in 600 s = 26.67M; N = 108
    assert plan.decision.jobs == 108
    assert plan.decision.per_job_bps == pytest.approx(16e9 / 600)
    assert plan.decision.bottleneck == "path A->B/ipv4"
    assert plan.jobs_total == 1000 and plan.waves == 10  # ceil(1000 / 108)
    assert plan.completion_s == pytest.approx(6000)
    assert plan.feasible and plan.largest_bytes == 2 * TB
    # forecast: path 5G (egress 8G, ingress 7G); forecast + error: path 6G
    assert plan.expected_s == pytest.approx(6000 * 4 / 5)
    assert plan.earliest_s == pytest.approx(6000 * 4 / 6)
    assert plan.finish_ts == NOW + 6000
    assert plan.bottleneck.quality == pytest.approx(0.9)
    assert set(plan.rationale) >= {"feasible", "jobs", "parallel", "per_job", "completion"}


def test_infeasible_plan_gives_largest_volume_and_needed_deadline():
    plan = plan_path(request(deadline=3600), "B", MESH, POLICY)
    assert not plan.feasible
    # six waves of 108 jobs of 2GB fit an hour exactly; any more byte starts a seventh
    assert plan.largest_bytes == 6 * 108 * 2 * GB
    assert plan.deadline_needed_s == 6000
    assert plan_path(request(plan.largest_bytes, 3600), "B", MESH, POLICY).feasible
    assert not plan_path(request(plan.largest_bytes + 1, 3600), "B", MESH, POLICY).feasible
    assert "largest" in plan.rationale and "deadline_needed" in plan.rationale


def test_site_ingress_can_be_the_bottleneck():
    plan = plan_path(request(), "B", MESH, POLICY, {("B", "ingress"): 1e9})
    assert plan.decision.bottleneck == "site B ingress"
    assert plan.decision.jobs == math.floor(0.72e9 / (16e9 / 600))
    assert plan.bottleneck.quality is None  # a configured capacity has no error bar
    assert plan.expected_s == plan.earliest_s == plan.completion_s


def test_any_destination_ranks_trusted_sites_by_completion_then_untrusted():
    ranked = plan_all(request(), MESH, POLICY)
    assert [p.destination_site for p in ranked] == ["B", "C", "D"]
    c = ranked[1]
    # C: path 2.5G, its ingress the same single partner: share 1.8G, N = 67, 15 waves
    assert (c.decision.jobs, c.waves, c.completion_s) == (67, 15, pytest.approx(9000))
    assert not ranked[2].trusted and not ranked[2].feasible and ranked[2].largest_bytes is None


def test_files_split_the_volume_evenly():
    plan = plan_path(Request("A", 2 * TB, 6 * 3600, NOW, files=10), "B", MESH, POLICY)
    assert plan.jobs_total == 10 and plan.bytes_per_job == 200 * GB
    # a job needs 200GB in 600 s = 2.667G > share / 1 ... N = floor(2.88G / 2.667G) = 1
    assert plan.decision.jobs == 1 and plan.waves == 10


@pytest.mark.parametrize(
    ("field", "extra"),
    [
        ("bytes", {"total_bytes": 0}),
        ("deadline", {"deadline_s": 0}),
        ("files", {"files": 0}),
        ("files", {"files": 3, "bytes_per_job": 5}),
    ],
)
def test_bad_requests_name_their_field(field: str, extra: dict[str, int]):
    base = {"source_site": "A", "total_bytes": 10, "deadline_s": 10, "now": NOW} | extra
    with pytest.raises(FieldError) as caught:
        Request(**base)  # type: ignore[arg-type]
    assert caught.value.field == field


# --- properties -------------------------------------------------------------------

meshes = st.builds(
    lambda f, e, g, h: [
        estimate("A", "B", f, e),
        estimate("A", "C", g),
        estimate("C", "B", h),
    ],
    st.floats(1e6, 1e11),
    st.floats(0, 1e10),
    st.floats(1e6, 1e11),
    st.floats(1e6, 1e11),
)
policies = st.builds(
    ThrottlePolicy,
    target_utilisation=st.floats(0.1, 1.0),
    safety_factor=st.floats(0.1, 1.0),
    min_jobs=st.integers(1, 5),
    max_jobs=st.integers(5, 300),
)
splits = st.one_of(
    st.fixed_dictionaries({"files": st.integers(1, 5000)}),
    st.fixed_dictionaries({"bytes_per_job": st.integers(10**6, 10**12)}),
    st.just({}),
)


@settings(max_examples=300)
@given(
    meshes,
    policies,
    splits,
    st.integers(1, 10**15),
    st.integers(1, 10**15),
    st.integers(60, 86400),
)
def test_more_bytes_never_finish_earlier(mesh, policy, split, a, b, transfer_time):
    small, large = sorted((a, b))
    plans = [
        plan_path(
            Request("A", v, 3600, NOW, transfer_time=transfer_time, **split), "B", mesh, policy
        )
        for v in (small, large)
    ]
    # never earlier beyond the rounding of the float sums (found: 1 ulp at 4.2e6 s)
    assert plans[0].completion_s <= plans[1].completion_s * (1 + 1e-12)


@settings(max_examples=300)
@given(
    meshes, policies, splits, st.integers(1, 10**14), st.integers(1, 10**6), st.integers(1, 10**6)
)
def test_a_later_deadline_never_makes_a_feasible_plan_infeasible(mesh, policy, split, v, d1, d2):
    early, late = sorted((d1, d2))
    first, second = (
        plan_path(Request("A", v, d, NOW, **split), "B", mesh, policy) for d in (early, late)
    )
    if first.feasible:
        assert second.feasible
    assert (first.largest_bytes or 0) <= (second.largest_bytes or 0)


def test_ready_lines_pin_the_site_and_require_the_per_job_rate():
    plan = plan_path(request(), "B", MESH, POLICY)
    lines = ready_lines(plan, "xfer", 6 * 3600)
    assert lines["dag"] == ["CATEGORY ALL_NODES xfer", "MAXJOBS xfer 108"]
    text = "\n".join(x for x in lines["submit"] if not x.startswith("#"))
    job = classad2.parseOne(
        text.replace("requirements =", "Requirements =").replace("rank =", "Rank ="),
        classad2.ParserType.Old,
    )
    need = plan.decision.per_job_bps / 1e6

    def machine(site: str, low_mbps: float) -> classad2.ClassAd:
        return classad2.ClassAd(
            {
                "LarkPS_Site": site,
                "LarkPS_From_A_BandwidthLowMbps": low_mbps,
                "LarkPS_From_A_Trusted": True,
                "LarkPS_UpdateTime": int(time.time()),
                "Requirements": True,
            }
        )

    assert machine("B", need * 1.01).matches(job)
    assert not machine("B", need * 0.9).matches(job)
    assert not machine("C", need * 10).matches(job)
