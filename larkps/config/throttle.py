"""The throttle policy: the guards the throttle model works within, with their defaults."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """FTS-optimizer-style guards around the bandwidth arithmetic."""

    target_utilisation: float = 0.8  # fraction of the bottleneck larkps may fill
    safety_factor: float = 0.9  # extra margin on the lower bound
    min_jobs: int = 1
    max_jobs: int = 200
    max_step_up: int = 2  # per decision
    max_step_down: int = 1  # per decision, unless the bottleneck collapsed
    min_quality: float = 0.5  # estimates below this quality are not trusted
    collapse_fraction: float = 0.5  # see decide(): when step-down limits are skipped

    def __post_init__(self) -> None:
        for name in ("target_utilisation", "safety_factor", "min_quality", "collapse_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a fraction 0..1, got {value!r}")
        if not 0 <= self.min_jobs <= self.max_jobs:
            raise ValueError("need 0 <= min_jobs <= max_jobs")
        if self.max_step_up < 1 or self.max_step_down < 1:
            raise ValueError("step limits must be at least 1")
