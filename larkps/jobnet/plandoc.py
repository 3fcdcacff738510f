"""Node settings and job plans as JSON documents, and back, checked field by field.

What the planner (:mod:`larkps.jobnet.planner_service`) sends and the wrapper reads
back once its job has started (for the ledger and the job ad).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from larkps.config.jobnet import Mode, Network, NodeJobNet, Policy, UserNet
from larkps.jobnet.planner import PlannerUnavailable
from larkps.jobnet.request import USER_NAME, JobPlan


def node_doc(node: NodeJobNet) -> dict[str, Any]:
    return {
        "mode": node.mode.value,
        "policies": sorted(p.value for p in node.policies),
        "default_policy": node.default_policy.value,
        "user_net": node.user_net.value,
        "max_rate_bps": node.max_rate_bps,
        "default_rate_bps": node.default_rate_bps,
        "ledger": node.ledger,
        "helper": node.helper,
        "bridge": node.bridge,
        "pool4": None if node.pool4 is None else str(node.pool4),
        "pool6": None if node.pool6 is None else str(node.pool6),
        "classes": {name: [str(n) for n in nets] for name, nets in node.classes.items()},
    }


def node_from_doc(doc: object) -> NodeJobNet:
    """The settings a planner sent (PlannerUnavailable when any field is wrong)."""
    d = _mapping(doc, "node")
    pool4, pool6 = _optional_network(d, "pool4", 4), _optional_network(d, "pool6", 6)
    classes = _mapping(d.get("classes"), "node.classes")
    return NodeJobNet(
        mode=_enum(Mode, d, "mode"),
        policies=frozenset(_enum(Policy, {"p": p}, "p") for p in _list(d, "policies")),
        default_policy=_enum(Policy, d, "default_policy"),
        user_net=_enum(UserNet, d, "user_net"),
        max_rate_bps=_optional_rate(d, "max_rate_bps"),
        default_rate_bps=_optional_rate(d, "default_rate_bps"),
        ledger=_path(d, "ledger"),
        helper=_path(d, "helper"),
        bridge=_string(d, "bridge"),
        pool4=pool4,  # type: ignore[arg-type]
        pool6=pool6,  # type: ignore[arg-type]
        classes={
            str(name): tuple(_network(n, f"node.classes.{name}") for n in _list(classes, name))
            for name in classes
        },
    )


def plan_doc(plan: JobPlan) -> dict[str, Any]:
    return {
        "job_id": plan.job_id,
        "owner": plan.owner,
        "mode": plan.mode.value,
        "policy": plan.policy.value,
        "ports": list(plan.ports),
        "allow": [str(n) for n in plan.allow],
        "rate_bps": plan.rate_bps,
        "rationale": list(plan.rationale),
    }


def plan_from_doc(doc: object) -> JobPlan:
    """The plan a planner sent (PlannerUnavailable when any field is wrong)."""
    d = _mapping(doc, "plan")
    job_id = _string(d, "job_id")
    cluster, dot, proc = job_id.partition(".")
    if not (dot and cluster.isdigit() and proc.isdigit() and cluster.isascii() and proc.isascii()):
        raise PlannerUnavailable(f"planner's answer: plan.job_id {job_id[:40]!r} is not N.M")
    owner = _string(d, "owner")
    if not USER_NAME.match(owner):
        raise PlannerUnavailable("planner's answer: plan.owner is not a user name")
    ports = [_integer(p, "plan.ports", 1, 65535) for p in _list(d, "ports")]
    rate = d.get("rate_bps")
    return JobPlan(
        job_id=job_id,
        owner=owner,
        mode=_enum(Mode, d, "mode"),
        policy=_enum(Policy, d, "policy"),
        ports=tuple(ports),
        allow=tuple(_network(n, "plan.allow") for n in _list(d, "allow")),
        rate_bps=None if rate is None else _integer(rate, "plan.rate_bps", 1, 1 << 62),
        rationale=tuple(_text(line, "plan.rationale") for line in _list(d, "rationale")),
    )


def _wrong(field: str, what: str) -> PlannerUnavailable:
    return PlannerUnavailable(f"planner's answer: {field} {what}")


def _mapping(value: object, field: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise _wrong(field, "is not an object")
    return value


def _list(d: Mapping[str, object], key: str) -> list[object]:
    value = d.get(key)
    if not isinstance(value, list):
        raise _wrong(key, "is not a list")
    return value


def _text(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise _wrong(field, "is not a string")
    return value


def _string(d: Mapping[str, object], key: str) -> str:
    return _text(d.get(key), key)


def _path(d: Mapping[str, object], key: str) -> str:
    value = _string(d, key)
    if not value.startswith("/") or "\0" in value:
        raise _wrong(key, "is not an absolute path")
    return value


def _integer(value: object, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _wrong(field, f"is not an integer from {low} to {high}")
    return value


def _optional_rate(d: Mapping[str, object], key: str) -> float | None:
    value = d.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise _wrong(key, "is not a positive number")
    return float(value)


def _enum(kind: Any, d: Mapping[str, object], key: str) -> Any:
    try:
        return kind(d.get(key))
    except ValueError:
        raise _wrong(key, f"is not one of {', '.join(m.value for m in kind)}") from None


def _network(value: object, field: str) -> Network:
    try:
        return ipaddress.ip_network(_text(value, field), strict=True)
    except ValueError:
        raise _wrong(field, "holds something that is not a network") from None


def _optional_network(d: Mapping[str, object], key: str, version: int) -> Network | None:
    value = d.get(key)
    if value is None:
        return None
    network = _network(value, key)
    if network.version != version:
        raise _wrong(key, f"is not an IPv{version} network")
    return network
