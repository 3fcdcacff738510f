"""larkps: perfSONAR measurements as HTCondor ClassAds and throttles."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]

#: ``typing.TYPE_CHECKING`` without loading typing (a job's start does without it);
#: mypy takes any name TYPE_CHECKING as true.
TYPE_CHECKING = False
