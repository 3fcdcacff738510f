"""Pure throttle computation: bandwidth estimates in, concurrency N and per-job rate R out.

No I/O, no clock, no pandas. Appliers (larkps.apply.dagfile, larkps.apply.dagman, larkps.apply.tc)
do the writing; see docs/throttling.md for the model.
"""

from __future__ import annotations

from larkps.decide.throttle.arithmetic import concurrency_for, fitting_jobs, transfer_seconds
from larkps.decide.throttle.capacity import (
    candidates,
    distrust,
    given_capacity,
    path_capacity,
    per_site_pair,
    site_capacity,
)
from larkps.decide.throttle.decide import decide
from larkps.decide.throttle.inputs import Capacity, Demand, ThrottlePolicy

__all__ = [
    "Capacity",
    "Demand",
    "ThrottlePolicy",
    "candidates",
    "concurrency_for",
    "decide",
    "distrust",
    "fitting_jobs",
    "given_capacity",
    "path_capacity",
    "per_site_pair",
    "site_capacity",
    "transfer_seconds",
]
