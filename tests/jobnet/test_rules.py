"""The job namespace's nft ruleset: what it lets in and out, what it counts, what it formats."""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from larkps.config.jobnet import Mode, NodeJobNet, Policy
from larkps.errors import FieldError
from larkps.jobnet.request import JobNetRefused, JobPlan, plan_job
from larkps.jobnet.rules import (
    Count,
    Counters,
    counter_name,
    counters_from_json,
    ruleset,
)

net = ipaddress.ip_network
CLASSES = {"same-site": (net("198.18.1.0/24"),), "other-sites": (net("2001:db8:5::/48"),)}

# Every line a ruleset may hold: the variable parts are numbers, networks and names
# of this module's own (counters, sets); nothing else can appear.
NAME = r"(?:in|out)_(?:same_site|other_sites|elsewhere|refused)"
SET = r"(?:same_site|other_sites|allow)_v[46]"
NETWORK = r"[0-9a-f.:]+/\d{1,3}"
LINE_FORMS = [
    r"table inet larkps_job \{",
    rf"  counter {NAME} \{{ \}}",
    rf"  set {SET} \{{",
    r"    type ipv[46]_addr",
    r"    flags interval",
    rf"    elements = \{{ {NETWORK}(?:, {NETWORK})* \}}",
    r"  chain (?:output|input|counted) \{",
    r"    type filter hook (?:output|input) priority filter; policy accept;",
    r'    [io]ifname != "tap0" accept',
    r"    icmpv6 type \{ [a-z-]+(?:, [a-z-]+)* \} accept",
    rf'    meta nfproto ipv[46] ip6? daddr != @allow_v[46] counter name "{NAME}" reject',
    rf'    ip6? [ds]addr @{SET} counter name "{NAME}" accept',
    rf'    counter name "{NAME}" (?:accept|drop)',
    r"    ct state established,related jump counted",
    r"    meta l4proto \{ tcp, udp \} th dport \{ \d{1,5}(?:, \d{1,5})* \} jump counted",
    r"  \}",
    r"\}",
]
LINE = re.compile("|".join(f"(?:{form})" for form in LINE_FORMS))


def plan(policy: Policy = Policy.NAT, **fields: object) -> JobPlan:
    return JobPlan("7.0", "alice", Mode.ROOTLESS, policy, **fields)  # type: ignore[arg-type]


def lines_of(text: str) -> list[str]:
    assert text.endswith("\n")
    return text.splitlines()


def assert_grammar(text: str) -> None:
    for line in lines_of(text):
        assert LINE.fullmatch(line), f"unexpected ruleset line {line!r}"


def test_nat_accepts_only_established_inbound_and_counts_every_class() -> None:
    text = ruleset(plan(), CLASSES)
    assert_grammar(text)
    assert "dport" not in text
    assert "ct state established,related jump counted" in text
    assert text.count('counter name "in_refused" drop') == 1
    assert "allow_v4" not in text  # no allowlist: every destination
    for direction in ("in", "out"):
        for klass in ("same-site", "other-sites", "elsewhere", "refused"):
            assert f"counter {counter_name(direction, klass)} {{ }}" in text
    assert "elements = { 198.18.1.0/24 }" in text
    assert "elements = { 2001:db8:5::/48 }" in text


def test_ports_opens_exactly_the_listed_ports() -> None:
    text = ruleset(plan(Policy.PORTS, ports=(5001, 5000, 5001)), {})
    assert_grammar(text)
    assert "th dport { 5000, 5001 } jump counted" in text


def test_allowlist_rejects_other_destinations_in_both_families() -> None:
    allow = (net("198.18.0.0/24"), net("198.18.0.0/25"), net("2001:db8::/48"))
    text = ruleset(plan(allow=allow), CLASSES)
    assert_grammar(text)
    assert "elements = { 198.18.0.0/24 }" in text  # overlaps collapsed
    assert 'ip daddr != @allow_v4 counter name "out_refused" reject' in text
    assert 'ip6 daddr != @allow_v6 counter name "out_refused" reject' in text
    v6_only = ruleset(plan(allow=(net("2001:db8::/48"),)), {})
    # an IPv6-only allowlist leaves the IPv4 set empty: every IPv4 destination refused
    assert "set allow_v4 {\n    type ipv4_addr\n    flags interval\n  }" in v6_only


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"ports": (5000,)}, "only with policy ports"),
        ({"allow": ("198.18.0.0/24; flush ruleset",)}, "expected an IP network"),
    ],
)
def test_refuses_what_was_not_validated(fields: dict[str, object], problem: str) -> None:
    with pytest.raises(FieldError, match=problem):
        ruleset(plan(**fields), {})


@pytest.mark.parametrize("port", [0, 65536, "22", True])
def test_refuses_a_bad_port(port: object) -> None:
    with pytest.raises(FieldError, match="is not a port"):
        ruleset(plan(Policy.PORTS, ports=(port,)), {})


def test_refuses_unknown_class_and_interface() -> None:
    with pytest.raises(FieldError, match="unknown class"):
        ruleset(plan(), {"evil; flush ruleset": (net("198.18.0.0/24"),)})
    with pytest.raises(FieldError, match="interface"):
        ruleset(plan(), {}, interface='tap0" accept')


def counter(table: str, name: str, got: int, packets: int) -> dict[str, object]:
    return {"counter": {"table": table, "name": name, "bytes": got, "packets": packets}}


def test_counters_from_nft_json() -> None:
    document = {
        "nftables": [
            {"metainfo": {"version": "1.0.6"}},
            counter("larkps_job", "out_same_site", 10, 1),
            counter("larkps_job", "out_elsewhere", 5, 2),
            counter("larkps_job", "in_refused", 60, 1),
            counter("other", "out_elsewhere", 99, 9),
            counter("larkps_job", "bogus", 1, 1),
        ]
    }
    counters = counters_from_json(document)
    assert counters.total("out") == Count(15, 3)
    assert counters.total("in") == Count(0, 0)
    assert counters.refused == {"in": Count(60, 1)}
    assert counters.accepted["out", "other-sites"] == Count()
    assert counters_from_json("garbage") == Counters.empty()


networks = st.one_of(
    st.builds(
        lambda a, p: ipaddress.IPv4Network((a, p), strict=False),
        st.integers(0, 2**32 - 1),
        st.integers(0, 32),
    ),
    st.builds(
        lambda a, p: ipaddress.IPv6Network((a, p), strict=False),
        st.integers(0, 2**128 - 1),
        st.integers(0, 128),
    ),
)


@given(
    ports=st.lists(st.integers(1, 65535), max_size=64),
    allow=st.lists(networks, max_size=8),
    same=st.lists(networks, max_size=4),
    other=st.lists(networks, max_size=4),
)
def test_any_valid_plan_renders_only_known_forms(
    ports: list[int], allow: list[object], same: list[object], other: list[object]
) -> None:
    policy = Policy.PORTS if ports else Policy.NAT
    text = ruleset(
        plan(policy, ports=tuple(ports), allow=tuple(allow)),
        {"same-site": tuple(same), "other-sites": tuple(other)},  # type: ignore[dict-item]
    )
    assert_grammar(text)


NODE = NodeJobNet()
BASE_AD: dict[str, object] = {"ClusterId": 7, "ProcId": 0, "Owner": "alice"}
hostile = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40
) | st.sampled_from(
    ['5000" accept', "5000; flush ruleset", "198.18.0.0/24 }\n}", "0x10", "1e3", " 80 ,"]
)


@given(
    policy=st.sampled_from(["ports", "nat", "PORTS", "bridge"]) | hostile,
    ports=hostile,
    allow=hostile,
)
def test_no_job_ad_string_reaches_the_text(policy: str, ports: str, allow: str) -> None:
    ad = {**BASE_AD, "LarkNetworkPolicy": policy, "LarkNetworkAllow": allow}
    if policy.strip().lower() == "ports":
        ad["LarkNetworkPorts"] = ports
    try:
        job = plan_job(ad, {}, NODE)
    except JobNetRefused:
        return
    text = ruleset(job, {})
    assert_grammar(text)
    for line in lines_of(text):
        if "elements" in line:
            # every element is a network's canonical text, re-parsed the same
            for element in line.split("{ ")[1].split(" }")[0].split(", "):
                assert str(ipaddress.ip_network(element)) == element
