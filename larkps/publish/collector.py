"""Advertise generic ads to a collector, under a deadline, with a spool.

Every call to the collector runs in a child process (:mod:`larkps.publish.collector_worker`)
killed at its deadline. The ads of each cycle are first written to the spool
(``<state_dir>/spool/pending.ads``); once delivered they become
``published.ads``, and paths or sites that disappeared since the last delivered
set are invalidated with ``INVALIDATE_ADS_GENERIC``. After a failure the pending
set stays in the spool and :meth:`CollectorPublisher.resend_pending` sends it
when the collector is back.
"""

from __future__ import annotations

import logging
import random
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import classad2

from larkps.config.settings import CollectorTarget
from larkps.errors import PublishError
from larkps.publish.ads import render_old, write_atomically

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one publish attempt achieved."""

    sent: int
    invalidated: int
    attempts: int
    spooled: bool  # True when the ads stay pending in the spool


def invalidation_ad(my_type: str, name: str) -> classad2.ClassAd:
    """The query ad that removes one generic ad by its Name."""
    return classad2.ClassAd({"MyType": "Query", "TargetType": my_type, "Name": name})


class Spool:
    """The pending and last-published ad sets, as old-syntax files."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.pending = directory / "pending.ads"
        self.published = directory / "published.ads"

    def hold(self, text: str) -> None:
        write_atomically(self.pending, text)

    def delivered(self) -> None:
        if self.pending.exists():
            self.pending.replace(self.published)

    def pending_text(self) -> str | None:
        return self.pending.read_text() if self.pending.exists() else None

    def published_names(self) -> dict[str, str]:
        """Name -> MyType of the last delivered set."""
        if not self.published.exists():
            return {}
        ads = classad2.parseAds(self.published.read_text(), classad2.ParserType.Old)
        return {str(ad["Name"]): str(ad["MyType"]) for ad in ads if "Name" in ad}


class CollectorPublisher:
    """Send ads to one collector with retries, backoff and a hard deadline per call."""

    def __init__(
        self,
        target: CollectorTarget,
        spool: Spool,
        retries: int = 3,
        backoff: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.target = target
        self.spool = spool
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep

    def publish(self, ads: Sequence[classad2.ClassAd], generated: int) -> Delivery:
        """Spool this cycle's ads, then deliver them (and invalidate vanished ones)."""
        return self.publish_text(render_old(ads, generated))

    def publish_text(self, text: str) -> Delivery:
        """As :meth:`publish`, for ads already rendered by :func:`render_old`."""
        self.spool.hold(text)
        return self.resend_pending()

    def resend_pending(self) -> Delivery:
        """Deliver whatever is pending in the spool; nothing pending sends nothing."""
        text = self.spool.pending_text()
        if text is None:
            return Delivery(sent=0, invalidated=0, attempts=0, spooled=False)
        current = {str(a["Name"]) for a in classad2.parseAds(text, classad2.ParserType.Old)}
        attempts = self._with_retries("UPDATE_AD_GENERIC", text)
        gone = {n: t for n, t in self.spool.published_names().items() if n not in current}
        if gone:
            queries = [invalidation_ad(t, n) for n, t in sorted(gone.items())]
            self._with_retries("INVALIDATE_ADS_GENERIC", render_old(queries, 0))
        self.spool.delivered()
        return Delivery(len(current), len(gone), attempts, spooled=False)

    def _with_retries(self, command: str, text: str) -> int:
        for attempt in range(1, self.retries + 1):
            try:
                self._call(command, text)
                return attempt
            except PublishError as exc:
                if attempt == self.retries:
                    raise
                delay = self.backoff * 2 ** (attempt - 1) * (1 + random.random())
                log.warning("%s; retrying in %.1f s", str(exc), delay)
                self.sleep(delay)
        raise AssertionError("unreachable")

    def _call(self, command: str, text: str) -> None:
        extra = ["--batch", str(self.target.batch_size)]
        run_worker(self.target, command, extra, text)


def run_worker(target: CollectorTarget, command: str, extra: list[str], text: str = "") -> str:
    """Run one collector_worker command against `target` under its deadline; its stdout."""
    argv = [
        sys.executable,
        "-m",
        "larkps.publish.collector_worker",
        "--pool",
        target.pool,
        "--command",
        command,
        *extra,
    ]
    if target.token_file:
        argv += ["--token-file", target.token_file]
    where = f"collector {target.pool}"
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            argv, input=text, capture_output=True, text=True, timeout=target.timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise PublishError(f"{where}: no answer within {target.timeout:g} s") from None
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        raise PublishError(f"{where}: {command} failed ({reason})")
    return done.stdout


def query_ads(target: CollectorTarget, my_type: str = "LarkPSPath") -> list[classad2.ClassAd]:
    """The collector's larkps ads of one type, under the target's deadline."""
    text = run_worker(target, "QUERY", ["--my-type", my_type])
    return list(classad2.parseAds(text, classad2.ParserType.Old))
