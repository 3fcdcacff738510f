"""The recorder the wrapper and the privileged helper hand a run to: ledger, then job ad.

``start`` writes the run row (with the objects made) to the node's ledger; ``end``
closes it with the exit status and counters, then puts the job's figures into its
job ad through condor_chirp. Neither may stop a job: each failure is one line on
stderr (prefixed ``larkps-jobnet: ``) and the job goes on or ends as it would.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from larkps.errors import LarkpsError
from larkps.jobnet.chirp import CHIRP_PREFIX, JobUser, report_to_job_ad
from larkps.jobnet.ledger import LedgerRecorder, ObjectsGiven
from larkps.jobnet.request import JobPlan


class NodeRecorder:
    """Ledger and job ad for each run (``ledger``: the node's ``[jobnet] ledger``)."""

    def __init__(
        self,
        ledger: str | Path,
        env: Mapping[str, str] | None = None,
        user: JobUser | None = None,
    ) -> None:
        self.env = env
        self.user = user
        self.ledger: LedgerRecorder | None = None
        try:
            self.ledger = LedgerRecorder(Path(ledger))
        except (LarkpsError, OSError) as exc:
            _say(f"no ledger for this job: {exc}")

    def start(self, plan: JobPlan, objects: ObjectsGiven = ()) -> None:
        if self.ledger is None:
            return
        try:
            self.ledger.start(plan, objects)
        except (LarkpsError, OSError, ValueError, KeyError, TypeError) as exc:
            _say(f"the ledger did not record job {plan.job_id}: {exc}")
            self.ledger = None

    def end(self, plan: JobPlan, exit_status: int, counters: object) -> None:
        if self.ledger is not None:
            try:
                self.ledger.end(plan, exit_status, counters)
            except (LarkpsError, OSError, ValueError) as exc:
                _say(f"the ledger did not record the end of job {plan.job_id}: {exc}")
        report_to_job_ad(plan, counters, self.env, self.user)


def _say(line: str) -> None:
    text = "".join(c if c.isprintable() else "?" for c in " ".join(line.split()))
    with contextlib.suppress(OSError):
        sys.stderr.write(CHIRP_PREFIX + text + "\n")


if TYPE_CHECKING:  # what mypy holds it to: the wrapper's and the helper's protocols
    from larkps.jobnet import privileged, supervise

    _rootless: supervise.Recorder = NodeRecorder("")
    _privileged: privileged.HelperRecorder = NodeRecorder("")
