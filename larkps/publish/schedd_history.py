"""Completed jobs from a schedd's history, into the state store (``htcondor2``).

The only module that reads job history, in a child process
(``python -m larkps.publish.schedd_history``) under ``[calibration] timeout``. A read asks
for completed jobs newer than
the newest one recorded for that schedd (the first read: ``[calibration] since``
back), at most ``history_limit`` ads, with only the attributes the parser needs.
Each ad becomes a transfer or a skip reason (larkps.stats.achieved); transfers are
recorded once per job id (larkps.stats.achieved_state).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from larkps.config.calibration import CalibrationSettings
from larkps.errors import LarkpsError
from larkps.stats.achieved import ATTRIBUTES, AchievedTransfer, Skipped, parse_history_ad
from larkps.stats.achieved_state import latest_completion, record_transfers
from larkps.store.db import Store

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


def history_ads(settings: CalibrationSettings, since: int) -> list[Mapping[str, Any]]:
    """Completed jobs that finished after ``since``, read by a child process under
    ``[calibration] timeout`` (a hung schedd or a crash in the bindings costs the
    cycle nothing more)."""
    import classad2

    argv = [sys.executable, "-m", "larkps.publish.schedd_history", "--since", str(int(since))]
    argv += ["--limit", str(settings.history_limit)]
    if settings.pool is not None:
        argv.append(f"--pool={settings.pool}")  # one argument: never read as an option
    if settings.schedd is not None:
        argv.append(f"--schedd={settings.schedd}")
    where = settings.schedd or "the local schedd"
    try:
        done = subprocess.run(  # noqa: S603 - our interpreter and module, no shell
            argv, capture_output=True, text=True, timeout=settings.timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise HistoryError(
            f"cannot read the job history of {where}: no answer within {settings.timeout} s"
        ) from None
    if done.returncode != 0:
        problem = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise HistoryError(f"cannot read the job history of {where}: {problem}")
    return list(classad2.parseAds(done.stdout, classad2.ParserType.Old))


def _read_history(args: argparse.Namespace) -> str:  # pragma: no cover - a child process
    """Old-syntax text of the history ads (the child's work)."""
    import htcondor2

    if args.pool is None and args.schedd is None:
        schedd = htcondor2.Schedd()
    else:
        collector = htcondor2.Collector(args.pool) if args.pool else htcondor2.Collector()
        schedd = htcondor2.Schedd(collector.locate(htcondor2.DaemonType.Schedd, args.schedd))
    ads = schedd.history(
        constraint=f"JobStatus == 4 && CompletionDate > {args.since:d}",
        projection=list(ATTRIBUTES),
        match=args.limit,
    )
    return "\n".join(ad.printOld() for ad in ads)


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - a child process
    """``python -m larkps.publish.schedd_history --since T [--limit N] [--pool CM] [--schedd N]``.

    History ads on stdout; exit 1 and one line on stderr on failure.
    """
    parser = argparse.ArgumentParser(prog="larkps.publish.schedd_history")
    parser.add_argument("--since", type=int, required=True)
    parser.add_argument("--limit", type=int, default=10000)
    parser.add_argument("--pool")
    parser.add_argument("--schedd")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        sys.stdout.write(_read_history(args))
    except Exception as exc:  # noqa: BLE001 - any failure of the bindings is reported
        sys.stderr.write(f"{type(exc).__name__}: {exc}\n")
        return 1
    return 0


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


if __name__ == "__main__":
    sys.exit(main())
