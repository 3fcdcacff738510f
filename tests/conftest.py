"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Property tests check outcomes, never speed: no per-example deadline (200 ms by
# default) and no too-slow health check, which a loaded machine would trip.
settings.register_profile("larkps", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("larkps")

FIXTURES = Path(__file__).parent / "fixtures"
SHARED_SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples" / "perfsonar"


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture
def shared_samples() -> Path:
    """The real archive responses in ../shared; tests using it skip where it is absent."""
    if not SHARED_SAMPLES.is_dir():
        pytest.skip(f"shared samples not present at {SHARED_SAMPLES}")
    return SHARED_SAMPLES
