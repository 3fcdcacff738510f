"""Apply a concurrency limit to a running DAGMan through its global node throttle.

Per-category MAXJOBS cannot change while DAGMan runs; the global throttles can
(HTCondor >= 25.10.1). ``htcondor2.DAGMan(id).throttle(max_nodes=N)`` sets
``DAGMAN_MAX_JOBS_SUBMITTED`` of that DAGMan live. It does not raise on failure:
it returns an error string, and a ClassAd of the new throttles on success. The
current value is ``DAGMan_MaxJobs`` in the DAGMan's job ad (0: unlimited).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import classad2
import htcondor2

THROTTLE_ATTRIBUTES = (
    "DAGMan_MaxJobs",
    "DAGMan_MaxIdle",
    "DAGMan_MaxPreScripts",
    "DAGMan_MaxHoldScripts",
    "DAGMan_MaxPostScripts",
    "DAGMan_MaxSubmitsPerInterval",
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class ThrottleAnswer:
    """What the DAGMan (through its schedd) answered to one throttle request."""

    cluster_id: int
    max_nodes: int
    ok: bool
    text: str  # the new throttles (success) or the error message, one line


def set_node_throttle(cluster_id: int, max_nodes: int) -> ThrottleAnswer:
    """Set the running DAGMan's max_nodes (at least 1: DAGMan reads 0 as unlimited)."""
    if cluster_id < 1:
        raise ValueError(f"a DAGMan cluster id is a positive integer, got {cluster_id}")
    if max_nodes < 1:
        raise ValueError(f"max_nodes must be at least 1 (0 means unlimited), got {max_nodes}")
    try:
        answer = htcondor2.DAGMan(cluster_id).throttle(max_nodes=max_nodes)
    except (htcondor2.HTCondorException, OSError, RuntimeError) as exc:
        return ThrottleAnswer(cluster_id, max_nodes, False, _one_line(f"{exc}"))
    if isinstance(answer, classad2.ClassAd):
        return ThrottleAnswer(cluster_id, max_nodes, True, describe_throttles(answer))
    return ThrottleAnswer(cluster_id, max_nodes, False, _one_line(str(answer)))


@dataclass(frozen=True, slots=True)
class CurrentThrottle:
    """A DAGMan's max_nodes as its job ad says now."""

    cluster_id: int
    max_nodes: int | None  # None: unlimited, or not known (see problem)
    problem: str | None = None  # why it could not be read, one line


def current_node_throttle(cluster_id: int) -> CurrentThrottle:
    """``DAGMan_MaxJobs`` of the DAGMan job `cluster_id` in the local schedd's queue."""
    if cluster_id < 1:
        raise ValueError(f"a DAGMan cluster id is a positive integer, got {cluster_id}")
    constraint = f"ClusterId == {cluster_id} && JobUniverse == 7"  # 7: scheduler universe
    try:
        ads = htcondor2.Schedd().query(constraint=constraint, projection=["DAGMan_MaxJobs"])
    except (htcondor2.HTCondorException, OSError, RuntimeError) as exc:
        return CurrentThrottle(cluster_id, None, _one_line(f"{exc}"))
    if not ads:
        return CurrentThrottle(cluster_id, None, f"no DAGMan job {cluster_id} in the queue")
    value = ads[0].get("DAGMan_MaxJobs")
    return CurrentThrottle(cluster_id, value if isinstance(value, int) and value > 0 else None)


def describe_throttles(ad: classad2.ClassAd) -> str:
    """``DAGMan_MaxJobs = 8, DAGMan_MaxIdle = 1000, ...`` for the attributes present."""
    parts = [f"{name} = {ad.get(name)}" for name in THROTTLE_ATTRIBUTES if name in ad]
    return _one_line(", ".join(parts) or "(no throttles in the answer)")


def _one_line(text: str) -> str:
    return _CONTROL.sub("?", text).strip() or "(empty answer)"
