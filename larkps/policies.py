"""Settings -> the policies of the pure stages (which never import config)."""

from __future__ import annotations

from larkps.config import ThrottleSettings
from larkps.throttle import ThrottlePolicy


def throttle_policy(throttle: ThrottleSettings) -> ThrottlePolicy:
    """The throttle policy the `[throttle]` section describes."""
    return ThrottlePolicy(
        target_utilisation=throttle.target_utilisation,
        safety_factor=throttle.safety_factor,
        min_jobs=throttle.min_jobs,
        max_jobs=throttle.max_jobs,
        max_step_up=throttle.max_step_up,
        max_step_down=throttle.max_step_down,
        min_quality=throttle.min_quality,
        collapse_fraction=throttle.collapse_fraction,
    )
