"""Completed jobs from a schedd's history, into the state store (``htcondor2``).

The only module that reads job history. A read asks for completed jobs newer than
the newest one recorded for that schedd (the first read: ``[calibration] since``
back), at most ``history_limit`` ads, with only the attributes the parser needs.
Each ad becomes a transfer or a skip reason (larkps.achieved_parse); transfers are
recorded once per job id (larkps.achieved_store).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from larkps.achieved_parse import ATTRIBUTES, AchievedTransfer, Skipped, parse_history_ad
from larkps.achieved_store import latest_completion, record_transfers
from larkps.config_calibration import CalibrationSettings
from larkps.errors import LarkpsError
from larkps.store import Store

LOCAL_SCHEDD = "local"


class HistoryError(LarkpsError):
    """The schedd's history could not be read."""


@dataclass(frozen=True, slots=True)
class HistoryRead:
    """What one read of the history found and recorded."""

    schedd: str
    since: int
    ads: int
    transfers: tuple[AchievedTransfer, ...]
    skipped: tuple[Skipped, ...]
    recorded: int  # transfers new to the store


def history_ads(
    settings: CalibrationSettings, since: int
) -> list[Mapping[str, Any]]:  # pragma: no cover - exercised by tests/pool
    """Completed jobs that finished after ``since`` (newest first, as the schedd gives)."""
    import htcondor2

    try:
        schedd = _schedd(htcondor2, settings)
        ads = schedd.history(
            constraint=f"JobStatus == 4 && CompletionDate > {int(since):d}",
            projection=list(ATTRIBUTES),
            match=settings.history_limit,
        )
        return list(ads)
    except htcondor2.HTCondorException as exc:
        where = settings.schedd or "the local schedd"
        raise HistoryError(f"cannot read the job history of {where}: {exc}") from None


def _schedd(htcondor2: Any, settings: CalibrationSettings) -> Any:
    if settings.pool is None and settings.schedd is None:
        return htcondor2.Schedd()
    collector = htcondor2.Collector(settings.pool) if settings.pool else htcondor2.Collector()
    located = collector.locate(htcondor2.DaemonType.Schedd, settings.schedd)
    return htcondor2.Schedd(located)


def parse_ads(
    ads: Sequence[Mapping[str, Any]],
) -> tuple[list[AchievedTransfer], list[Skipped]]:
    """Each ad as a transfer or a skip reason."""
    transfers: list[AchievedTransfer] = []
    skipped: list[Skipped] = []
    for ad in ads:
        parsed = parse_history_ad(ad)
        (transfers if isinstance(parsed, AchievedTransfer) else skipped).append(parsed)  # type: ignore[arg-type]
    return transfers, skipped


def read_into_store(
    store: Store, settings: CalibrationSettings, now: int, since: int | None = None
) -> HistoryRead:
    """Read the schedd's new completed jobs and record their transfers."""
    schedd = settings.schedd or LOCAL_SCHEDD
    if since is None:
        newest = latest_completion(store, schedd)
        since = now - settings.since if newest is None else newest - 1
    ads = history_ads(settings, since)
    transfers, skipped = parse_ads(ads)
    recorded = record_transfers(store, schedd, transfers)
    return HistoryRead(schedd, since, len(ads), tuple(transfers), tuple(skipped), recorded)
