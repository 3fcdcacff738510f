"""``larkps-job-wrap``: HTCondor's ``USER_JOB_WRAPPER``, run as the job's user.

``larkps-job-wrap JOB ARGV...``: reads the job ad (``_CONDOR_JOB_AD``), the machine
ad (``_CONDOR_MACHINE_AD``) and the ``[jobnet]`` section of the config
(``LARKPS_CONFIG``, else /etc/larkps/larkps.toml; absent: the defaults), plans the
job's namespace and runs the job in it, staying its supervisor: the wrapper ends as
the job did. A refusal (a bad job ad, a namespace that cannot be made) is one line
in ``_CONDOR_WRAPPER_ERROR_FILE`` and on stderr, and exit status 1: the job did
not run. The plan's rationale goes to the job's stderr, each line prefixed
``larkps-jobnet: ``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from larkps.config.jobnet import Mode, NodeJobNet, load_jobnet
from larkps.errors import LarkpsError
from larkps.jobnet.jobad import ERROR_FILE_VARIABLE, ads_from_environment
from larkps.jobnet.supervise import PREFIX, Recorder, SummaryRecorder, exit_like, say

if TYPE_CHECKING:
    from larkps.jobnet.request import JobPlan
    from larkps.jobnet.rules import Counters

CONFIG_VARIABLE = "LARKPS_CONFIG"
DEFAULT_CONFIG = "/etc/larkps/larkps.toml"
SUDO = "/usr/bin/sudo"
CHIRP_VARIABLE = "_CONDOR_CHIRP_CONFIG"  # set by the starter when the job has an I/O proxy


def node_settings(environ: Mapping[str, str]) -> NodeJobNet:
    """The ``[jobnet]`` section of the node's config file (defaults when it has none)."""
    path = environ.get(CONFIG_VARIABLE) or DEFAULT_CONFIG
    if not environ.get(CONFIG_VARIABLE) and not os.path.exists(path):
        return NodeJobNet()
    return load_jobnet(path, alone=False)


def refuse(problem: str, environ: Mapping[str, str]) -> int:
    """Report a refusal where the starter looks for it; the exit status 1."""
    line = PREFIX + " ".join(problem.split())
    error_file = environ.get(ERROR_FILE_VARIABLE)
    if error_file:
        with contextlib.suppress(OSError), open(error_file, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
    with contextlib.suppress(OSError):
        sys.stderr.write(line + "\n")
    return 1


class Recorders:
    """Several recorders as one; a failing one is reported and never stops the job."""

    def __init__(self, recorders: Sequence[Recorder]) -> None:
        self.recorders = list(recorders)

    def start(self, plan: JobPlan, objects: Mapping[str, str]) -> None:
        for recorder in list(self.recorders):
            try:
                recorder.start(plan, objects)
            except LarkpsError as exc:
                say(f"not recorded: {exc}")
                self.recorders.remove(recorder)

    def end(self, plan: JobPlan, exit_status: int, counters: Counters) -> None:
        for recorder in self.recorders:
            try:
                recorder.end(plan, exit_status, counters)
            except LarkpsError as exc:
                say(f"not recorded: {exc}")


class ChirpRecorder:
    """At the end, the job's network figures into its job ad (needs ``WantIOProxy``)."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    def start(self, plan: JobPlan, objects: Mapping[str, str]) -> None:
        return None

    def end(self, plan: JobPlan, exit_status: int, counters: Counters) -> None:
        from larkps.jobnet.chirp import report_to_job_ad  # after the job: not on its start

        report_to_job_ad(plan, counters, self.environ)


def recorders(node: NodeJobNet, environ: Mapping[str, str]) -> Recorder:
    """A line of totals on the job's stderr, the node's ledger, and the job ad (when the
    starter gave the job an I/O proxy)."""
    from larkps.jobnet.ledger import LedgerRecorder

    chosen: list[Recorder] = [SummaryRecorder()]
    try:
        chosen.append(LedgerRecorder(Path(node.ledger)))
    except LarkpsError as exc:
        say(f"no ledger: {exc}")
    if environ.get(CHIRP_VARIABLE):
        chosen.append(ChirpRecorder(environ))
    return Recorders(chosen)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if environ is None else environ
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        return refuse("usage: larkps-job-wrap JOB [ARG...] (the job's argv)", env)
    try:
        node = node_settings(env)
    except LarkpsError as exc:
        return refuse(str(exc), env)
    if node.mode is Mode.PRIVILEGED:
        _exec_helper(node, args)  # the helper reads the ads and plans: it trusts no caller
    return _rootless(node, args, env)


def _rootless(node: NodeJobNet, args: list[str], env: Mapping[str, str]) -> int:
    """Plan the job from its ads and run it in namespaces of its own; its exit status."""
    from larkps.jobnet.request import plan_job  # the rootless path's modules, loaded for it alone
    from larkps.jobnet.rootless import Launch, run_rootless

    try:
        job_ad, machine_ad = ads_from_environment(env)
        plan = plan_job(job_ad, machine_ad, node)
    except LarkpsError as exc:
        return refuse(str(exc), env)
    for line in plan.rationale:
        say(line)
    launch = Launch(argv=args, user_net=node.user_net, classes=node.classes)
    try:
        status = run_rootless(plan, launch, recorders(node, env))
    except LarkpsError as exc:
        return refuse(str(exc), env)
    exit_like(status)


def _exec_helper(node: NodeJobNet, args: list[str]) -> None:
    """Privileged mode: the root-owned helper (the one sudoers command) does the rest."""
    os.execv(SUDO, [SUDO, "-n", node.helper, "--", *args])  # noqa: S606 - fixed program


if __name__ == "__main__":
    sys.exit(main())
