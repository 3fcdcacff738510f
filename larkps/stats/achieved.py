"""Pure: one completed job's history ad -> the input transfer it achieved.

HTCondor 25.13 records, per completed job, the bytes of its input sandbox by
transfer method in ``TransferInputStats`` (``CedarSizeBytesLastRun`` for the
schedd's own transfer, ``<Method>SizeBytesLastRun`` for each URL plugin) and the
transfer's start and end as whole Unix seconds (``JobCurrentStartTransferInputDate``,
``JobCurrentFinishTransferInputDate``). The rate is bytes over that interval; an
interval of 0 s is too short to time and is skipped. Without the statistics the
submit-time ``TransferInputSizeMB`` (MiB) stands in, marked ``size-estimate``.

The ends of the path, most explicit first (docs/calibration in forecasting.md):

* source: ``LarkPSSourceSite``, else ``LarkNetworkDataSite`` (sites), else the host
  of the first URL in ``TransferInput``, else the submit host (``GlobalJobId``);
* destination: ``MachineAttrLarkPS_Site0`` (a site), else the host of
  ``LastRemoteHost`` / ``RemoteHost`` (``slot1@host``).

Every value is untrusted: site and host names must match strict patterns, numbers
must be finite, non-negative and below 2**62.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

COMPLETED = 4  # JobStatus of a completed job
JOB_SITE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
JOB_HOST_PATTERN = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9-]+)*$"
)
_IP6_PATTERN = re.compile(r"^\[?[0-9A-Fa-f:.]{2,45}\]?$")
_URL_HOST = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/]*@)?(\[[^\]]+\]|[^/:?#]+)")
_STATS_BYTES = re.compile(r"^([A-Za-z0-9]+)SizeBytesLastRun$")
LIMIT = 2**62
MIB = 2**20

#: Attributes the parser reads (the projection of a history query).
ATTRIBUTES = (
    "GlobalJobId",
    "ClusterId",
    "ProcId",
    "JobStatus",
    "CompletionDate",
    "EnteredCurrentStatus",
    "TransferInputStats",
    "TransferInputSizeMB",
    "TransferInput",
    "JobCurrentStartTransferInputDate",
    "JobCurrentFinishTransferInputDate",
    "LarkPSSourceSite",
    "LarkNetworkDataSite",
    "MachineAttrLarkPS_Site0",
    "LastRemoteHost",
    "RemoteHost",
    "LarkNetworkBytesSent",
    "LarkNetworkBytesReceived",
    "LarkNetworkRateLimitMbps",
)


@dataclass(frozen=True, slots=True)
class End:
    """One end of a transfer: a site named by the ad, or a host to map to a site."""

    site: str | None = None
    host: str | None = None

    @property
    def text(self) -> str:
        return self.site or self.host or ""


@dataclass(frozen=True, slots=True)
class AchievedTransfer:
    """One job's input transfer: bytes over whole seconds, and where it went."""

    job: str  # GlobalJobId (or cluster.proc)
    completed: int  # Unix seconds
    source: End
    destination: End
    bytes: int
    seconds: int
    method: str  # "cedar", "cedar+https", ..., or "size-estimate"
    rate_limit_bps: float | None = None  # LarkNetworkRateLimitMbps of the job's wrapper
    network_received: int | None = None  # LarkNetworkBytesReceived
    network_sent: int | None = None  # LarkNetworkBytesSent

    @property
    def rate_bps(self) -> float:
        return self.bytes * 8.0 / self.seconds


@dataclass(frozen=True, slots=True)
class Skipped:
    """A history ad that gives no transfer sample, and why."""

    job: str
    reason: str


def parse_history_ad(ad: Mapping[str, Any]) -> AchievedTransfer | Skipped:
    """The input transfer of one completed job, or why there is none."""
    job = _job(ad)
    if _number(ad, "JobStatus") != COMPLETED:
        return Skipped(job, "not completed")
    completed = _number(ad, "CompletionDate") or _number(ad, "EnteredCurrentStatus")
    if completed is None:
        return Skipped(job, "no CompletionDate")
    moved = _input_bytes(ad)
    if moved is None:
        return Skipped(job, "no input transfer recorded")
    size, method = moved
    if size == 0:
        return Skipped(job, "no input bytes transferred")
    seconds = _seconds(ad)
    if seconds is None:
        return Skipped(job, "no input transfer dates")
    if seconds <= 0:
        return Skipped(job, "input transfer too short to time (whole seconds)")
    destination = End(_site(ad, "MachineAttrLarkPS_Site0"), _slot_host(ad))
    if destination.text == "":
        return Skipped(job, "no execute site or host")
    limit = _number(ad, "LarkNetworkRateLimitMbps", integer=False)
    return AchievedTransfer(
        job=job,
        completed=int(completed),
        source=_source(ad),
        destination=destination,
        bytes=int(size),
        seconds=int(seconds),
        method=method,
        rate_limit_bps=None if limit is None else limit * 1e6,
        network_received=_int_or_none(ad, "LarkNetworkBytesReceived"),
        network_sent=_int_or_none(ad, "LarkNetworkBytesSent"),
    )


def _job(ad: Mapping[str, Any]) -> str:
    global_id = ad.get("GlobalJobId")
    if isinstance(global_id, str) and global_id.isprintable() and 0 < len(global_id) <= 512:
        return global_id
    cluster, proc = _number(ad, "ClusterId"), _number(ad, "ProcId")
    return f"{cluster:.0f}.{proc:.0f}" if cluster is not None and proc is not None else "?"


def _number(ad: Mapping[str, Any], name: str, integer: bool = True) -> float | None:
    """A finite non-negative number below 2**62 (integers only by default), else None."""
    value = ad.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value < 0 or value >= LIMIT:
        return None
    if integer and value != int(value):
        return None
    return int(value) if integer else float(value)


def _int_or_none(ad: Mapping[str, Any], name: str) -> int | None:
    value = _number(ad, name)
    return None if value is None else int(value)


def _input_bytes(ad: Mapping[str, Any]) -> tuple[float, str] | None:
    """Bytes moved in, summed over the transfer methods, with the methods' names."""
    stats = ad.get("TransferInputStats")
    if isinstance(stats, Mapping):
        total, methods = 0, []
        for key in sorted(stats):
            match = _STATS_BYTES.match(str(key))
            size = _number(stats, key) if match else None
            if match and size is not None:
                total += int(size)
                methods.append(match.group(1).lower())
        if methods and total < LIMIT:
            return total, "+".join(methods)
    estimate = _number(ad, "TransferInputSizeMB")
    if estimate is None:
        return None
    return estimate * MIB, "size-estimate"


def _seconds(ad: Mapping[str, Any]) -> float | None:
    start = _number(ad, "JobCurrentStartTransferInputDate")
    end = _number(ad, "JobCurrentFinishTransferInputDate")
    if start is None or end is None:
        return None
    return end - start


def _site(ad: Mapping[str, Any], name: str) -> str | None:
    value = ad.get(name)
    return value if isinstance(value, str) and JOB_SITE_PATTERN.fullmatch(value) else None


def _host(text: object) -> str | None:
    if not isinstance(text, str):
        return None
    if JOB_HOST_PATTERN.fullmatch(text) or (":" in text and _IP6_PATTERN.fullmatch(text)):
        return text.strip("[]").lower()
    return None


def _slot_host(ad: Mapping[str, Any]) -> str | None:
    for name in ("LastRemoteHost", "RemoteHost"):
        value = ad.get(name)
        if isinstance(value, str) and value:
            return _host(value.rsplit("@", 1)[-1])
    return None


def _source(ad: Mapping[str, Any]) -> End:
    site = _site(ad, "LarkPSSourceSite") or _site(ad, "LarkNetworkDataSite")
    if site is not None:
        return End(site=site)
    return End(host=_url_host(ad.get("TransferInput")) or _submit_host(ad))


def _url_host(inputs: object) -> str | None:
    if not isinstance(inputs, str):
        return None
    for item in inputs.split(","):
        match = _URL_HOST.match(item.strip())
        if match:
            return _host(match.group(1))
    return None


def _submit_host(ad: Mapping[str, Any]) -> str | None:
    """The schedd's host: the part of ``GlobalJobId`` before the first ``#``."""
    global_id = ad.get("GlobalJobId")
    if not isinstance(global_id, str) or "#" not in global_id:
        return None
    return _host(global_id.split("#", 1)[0].rsplit("@", 1)[-1])
