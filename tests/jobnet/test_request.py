"""A job ad and the node's [jobnet] rules -> the plan, or one refusal naming the attribute."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from larkps.config.jobnet import Mode, NodeJobNet, Policy
from larkps.config.settings import settings_from_dict
from larkps.config.throttle import ThrottlePolicy
from larkps.errors import ConfigError, FieldError
from larkps.jobnet.jobad import parse_ad
from larkps.jobnet.request import JobNetRefused, plan_job

JOB = {"ClusterId": 41, "ProcId": 2, "Owner": "alice"}
PRIVILEGED = NodeJobNet(
    mode=Mode.PRIVILEGED,
    policies=frozenset(Policy),
    pool4=ipaddress.IPv4Network("198.18.100.0/24"),
)


def test_a_job_that_asks_for_nothing_gets_the_default():
    plan = plan_job(JOB, {}, NodeJobNet())
    assert (plan.job_id, plan.owner, plan.policy, plan.mode) == (
        "41.2",
        "alice",
        Policy.NAT,
        Mode.ROOTLESS,
    )
    assert plan.ports == () and plan.allow == () and plan.rate_bps is None
    assert plan.tag == "41_2"
    assert any("no rate limit" in line for line in plan.rationale)


def test_attribute_names_match_whatever_their_case():
    ad = {**JOB, "larknetworkpolicy": "PORTS", "LARKNETWORKPORTS": "7000"}
    assert plan_job(ad, {}, NodeJobNet()).ports == (7000,)


@pytest.mark.parametrize(
    ("attrs", "named"),
    [
        ({"LarkNetworkPolicy": "bridge"}, "LarkNetworkPolicy"),  # not allowed rootless
        ({"LarkNetworkPolicy": "vlan"}, "LarkNetworkPolicy"),
        ({"LarkNetworkPolicy": 3}, "LarkNetworkPolicy"),
        ({"LarkNetworkPolicy": "ports"}, "LarkNetworkPorts"),  # ports missing
        ({"LarkNetworkPolicy": "ports", "LarkNetworkPorts": "70000"}, "LarkNetworkPorts"),
        ({"LarkNetworkPolicy": "ports", "LarkNetworkPorts": "0"}, "LarkNetworkPorts"),
        ({"LarkNetworkPolicy": "ports", "LarkNetworkPorts": "22;rm -rf /"}, "LarkNetworkPorts"),
        ({"LarkNetworkPolicy": "ports", "LarkNetworkPorts": "1-1000"}, "LarkNetworkPorts"),
        ({"LarkNetworkPorts": "80"}, "LarkNetworkPorts"),  # ports without the policy
        ({"LarkNetworkAllow": "198.18.0.0/33"}, "LarkNetworkAllow"),
        ({"LarkNetworkAllow": "example.org"}, "LarkNetworkAllow"),
        ({"LarkNetworkAllow": ","}, "LarkNetworkAllow"),
        ({"LarkNetworkRateLimit": -5}, "LarkNetworkRateLimit"),
        ({"LarkNetworkRateLimit": "fast"}, "LarkNetworkRateLimit"),
        ({"LarkNetworkRateLimit": float("nan")}, "LarkNetworkRateLimit"),
        ({"Owner": "root; reboot"}, "Owner"),
        ({"Owner": "Alice"}, "Owner"),
        ({"ClusterId": "41"}, "ClusterId"),
        ({"ProcId": -1}, "ProcId"),
    ],
)
def test_a_bad_or_refused_value_names_its_attribute(attrs, named):
    with pytest.raises(JobNetRefused) as caught:
        plan_job({**JOB, **attrs}, {}, NodeJobNet())
    assert caught.value.field == named
    assert str(caught.value).startswith(f"{named}: ")
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, FieldError)


def test_privileged_nodes_may_allow_bridge_and_routed():
    for name in ("bridge", "routed"):
        plan = plan_job({**JOB, "LarkNetworkPolicy": name}, {}, PRIVILEGED)
        assert plan.policy is Policy(name) and plan.mode is Mode.PRIVILEGED


@given(st.sets(st.integers(1, 65535), min_size=1, max_size=20))
def test_ports_come_back_as_the_set_asked_for(ports):
    text = " , ".join(str(p) for p in sorted(ports, reverse=True))
    ad = {**JOB, "LarkNetworkPolicy": "ports", "LarkNetworkPorts": text}
    assert plan_job(ad, {}, NodeJobNet()).ports == tuple(sorted(ports))


@given(st.integers(1, 65535 - 63), st.integers(0, 63))
def test_a_port_range_is_every_port_in_it(low, width):
    ad = {**JOB, "LarkNetworkPolicy": "ports", "LarkNetworkPorts": f"{low}-{low + width}"}
    assert plan_job(ad, {}, NodeJobNet()).ports == tuple(range(low, low + width + 1))


@given(st.text(max_size=30))
def test_arbitrary_text_is_either_refused_or_becomes_numbers(text):
    ad = {**JOB, "LarkNetworkPolicy": "ports", "LarkNetworkPorts": text}
    try:
        plan = plan_job(ad, {}, NodeJobNet())
    except JobNetRefused as exc:
        assert exc.field == "LarkNetworkPorts"
        return
    assert all(isinstance(p, int) and 1 <= p <= 65535 for p in plan.ports)


def test_the_allowlist_is_parsed_networks_of_both_families():
    ad = {**JOB, "LarkNetworkAllow": "2001:db8::/48, 198.18.0.7, 198.18.0.0/24"}
    allow = plan_job(ad, {}, NodeJobNet()).allow
    assert allow == (
        ipaddress.ip_network("198.18.0.0/24"),
        ipaddress.ip_network("198.18.0.7/32"),
        ipaddress.ip_network("2001:db8::/48"),
    )


def test_the_job_ads_rate_is_capped_by_the_node():
    node = NodeJobNet(max_rate_bps=500e6)
    assert plan_job({**JOB, "LarkNetworkRateLimit": 200}, {}, node).rate_bps == 200_000_000
    capped = plan_job({**JOB, "LarkNetworkRateLimit": 2000}, {}, node)
    assert capped.rate_bps == 500_000_000
    assert any("capped" in line for line in capped.rationale)


MACHINE = {
    "LarkPS_Site": "UNL",
    "LarkPS_From_BNL_2d_ATLAS_BandwidthLowMbps": 2000.0,
    "LarkPS_From_BNL_2d_ATLAS_Trusted": True,
}


def test_larkps_rate_is_the_throttle_share_of_the_paths_lower_bound():
    policy = ThrottlePolicy(target_utilisation=0.8, safety_factor=0.9)
    ad = {**JOB, "LarkPSSourceSite": "BNL-ATLAS", "LarkNetworkJobs": 4}
    plan = plan_job(ad, MACHINE, NodeJobNet(), policy)
    assert plan.rate_bps == int(0.8 * 0.9 * 2000e6 / 4)
    assert any("BNL-ATLAS -> UNL" in line and "4 jobs" in line for line in plan.rationale)


def test_larkps_rate_needs_a_trusted_figure():
    untrusted = {**MACHINE, "LarkPS_From_BNL_2d_ATLAS_Trusted": False}
    ad = {**JOB, "LarkNetworkDataSite": "BNL-ATLAS"}
    assert plan_job(ad, untrusted, NodeJobNet()).rate_bps is None
    node = NodeJobNet(default_rate_bps=100e6)
    assert plan_job(ad, untrusted, node).rate_bps == 100_000_000
    # the job ad's own rate wins over larkps's figure
    ad_rate = {**ad, "LarkNetworkRateLimit": 10}
    assert plan_job(ad_rate, MACHINE, NodeJobNet()).rate_bps == 10_000_000


def test_ads_read_by_classad2_give_plain_values():
    ad = parse_ad(
        'ClusterId = 7\nProcId = 0\nOwner = "bob"\nLarkNetworkRateLimit = 25\n'
        "Other = Undefined_attr + 1\n",
        "job.ad",
    )
    assert "Other" not in ad
    assert plan_job(ad, {}, NodeJobNet()).rate_bps == 25_000_000


def config(jobnet: dict) -> NodeJobNet:
    return settings_from_dict(
        {"archives": [{"name": "e", "kind": "embedded"}], "jobnet": jobnet}
    ).jobnet


def test_the_jobnet_section_reads_every_key():
    node = config(
        {
            "mode": "privileged",
            "policies": ["nat", "bridge"],
            "max_rate": "1Gbit",
            "pool6": "2001:db8:100::/64",
            "classes": {"same-site": ["198.18.0.0/24"], "other-sites": ["2001:db8::/32"]},
        }
    )
    assert node.mode is Mode.PRIVILEGED and node.policies == {Policy.NAT, Policy.BRIDGE}
    assert node.max_rate_bps == 1e9
    assert node.destination_class(ipaddress.ip_address("198.18.0.9")) == "same-site"
    assert node.destination_class(ipaddress.ip_address("2001:db8:5::1")) == "other-sites"
    assert node.destination_class(ipaddress.ip_address("198.19.0.1")) == "elsewhere"


@pytest.mark.parametrize(
    ("jobnet", "where"),
    [
        ({"policies": ["bridge"]}, "jobnet.policies"),  # rootless
        (
            {"mode": "privileged", "policies": ["bridge"], "default_policy": "bridge"},
            "jobnet.pool4",
        ),
        ({"default_policy": "ports", "policies": ["nat"]}, "jobnet.default_policy"),
        ({"pool4": "2001:db8::/64"}, "jobnet.pool4"),
        ({"helper": "larkps-jobnet-helper"}, "jobnet.helper"),
        ({"bridge": "br0; reboot"}, "jobnet.bridge"),
        ({"classes": {"same-site": ["nowhere"]}}, "jobnet.classes.same-site[0]"),
        ({"default_rate": "2Gbit", "max_rate": "1Gbit"}, "jobnet.default_rate"),
        ({"colour": "blue"}, "jobnet.colour"),
    ],
)
def test_a_bad_jobnet_key_is_named(jobnet, where):
    with pytest.raises(ConfigError) as caught:
        config(jobnet)
    assert caught.value.key_path == where


def test_vlan_is_refused_as_not_implemented():
    with pytest.raises(JobNetRefused, match="LarkNetworkPolicy: VLAN tagging is not implemented"):
        plan_job({**JOB, "LarkNetworkPolicy": " VLAN "}, {}, NodeJobNet())
