"""larkps: perfSONAR measurements as HTCondor ClassAds and throttles."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
