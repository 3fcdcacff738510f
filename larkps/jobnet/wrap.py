"""``larkps-job-wrap``: HTCondor's ``USER_JOB_WRAPPER``, run as the job's user.

``larkps-job-wrap JOB ARGV...``: reads the job ad (``_CONDOR_JOB_AD``) and the
machine ad (``_CONDOR_MACHINE_AD``), has the node's planner plan the job
(``LARKPS_PLANNER``, else /run/larkps-jobnet/planner.sock when it exists and
``LARKPS_CONFIG`` is not set; :mod:`larkps.jobnet.planner`) or, without one, plans it
itself from the ``[jobnet]`` section of the config (``LARKPS_CONFIG``, else
/etc/larkps/larkps.toml; absent: the defaults), and runs the job in its namespace,
staying its supervisor: the wrapper ends as the job did. A refusal (a bad job ad,
a namespace that cannot be made) is one line in ``_CONDOR_WRAPPER_ERROR_FILE`` and
on stderr, and exit status 1: the job did not run. The plan's rationale goes to the
job's stderr, each line prefixed ``larkps-jobnet: ``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence

from larkps import TYPE_CHECKING
from larkps.errors import LarkpsError
from larkps.jobnet.jobad import ERROR_FILE_VARIABLE, ad_texts_from_environment
from larkps.jobnet.planner import PlannerAnswer, PlannerUnavailable, ask, planner_socket
from larkps.jobnet.runner import Hooks, run_recipe
from larkps.jobnet.supervise import PREFIX, SummaryRecorder, exit_like, say

if TYPE_CHECKING:  # loaded only off the planner's fast path, or after the job started
    from larkps.config.jobnet import NodeJobNet
    from larkps.jobnet.request import JobPlan
    from larkps.jobnet.rules import Counters
    from larkps.jobnet.supervise import Recorder

CONFIG_VARIABLE = "LARKPS_CONFIG"
DEFAULT_CONFIG = "/etc/larkps/larkps.toml"
SUDO = "/usr/bin/sudo"
CHIRP_VARIABLE = "_CONDOR_CHIRP_CONFIG"  # set by the starter when the job has an I/O proxy


def node_settings(environ: Mapping[str, str]) -> NodeJobNet:
    """The ``[jobnet]`` section of the node's config file (defaults when it has none)."""
    from larkps.config.jobnet import NodeJobNet, load_jobnet

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
    """Several recorders as one, made when the run starts (the job is on its way by
    then: opening the ledger is not on its start); a failing one is reported and never
    stops the job."""

    def __init__(self, make: Callable[[], Sequence[Recorder]]) -> None:
        self.make = make
        self.recorders: list[Recorder] = []

    def start(self, plan: JobPlan, objects: Mapping[str, str]) -> None:
        self.recorders = list(self.make())
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

    def make() -> list[Recorder]:
        from pathlib import Path

        from larkps.jobnet.ledger import LedgerRecorder

        chosen: list[Recorder] = [SummaryRecorder()]
        try:
            chosen.append(LedgerRecorder(Path(node.ledger)))
        except LarkpsError as exc:
            say(f"no ledger: {exc}")
        if environ.get(CHIRP_VARIABLE):
            chosen.append(ChirpRecorder(environ))
        return chosen

    return Recorders(make)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if environ is None else environ
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        return refuse("usage: larkps-job-wrap JOB [ARG...] (the job's argv)", env)
    planner = planner_socket(env, config_named=bool(env.get(CONFIG_VARIABLE)))
    if planner is not None:
        try:
            return _planned_by(planner, args, env)
        except PlannerUnavailable as exc:
            say(f"{exc}; the wrapper plans the job itself")
    try:
        node = node_settings(env)
    except LarkpsError as exc:
        return refuse(str(exc), env)
    if node.mode.value == "privileged":
        _exec_helper(node.helper, args)  # the helper reads the ads and plans: it trusts no caller
    try:
        plan = plan_ads(node, env)
    except LarkpsError as exc:
        return refuse(str(exc), env)
    return _rootless(node, plan, args, env)


def _planned_by(planner: str, args: list[str], env: Mapping[str, str]) -> int:
    """Run the job as the planner answers (PlannerUnavailable when it does not)."""
    try:
        job, machine = ad_texts_from_environment(env)
    except LarkpsError as exc:
        return refuse(str(exc), env)
    answer = ask(planner, job, machine)
    if answer.refused is not None:
        return refuse(answer.refused, env)
    if answer.mode == "privileged":
        _exec_helper(answer.helper, args)
    if answer.recipe is None:
        raise PlannerUnavailable("planner's answer has no recipe")
    for line in answer.rationale:
        say(line)
    try:
        status = run_recipe(answer.recipe, args, _late_hooks(answer, env))
    except LarkpsError as exc:
        return refuse(str(exc), env)
    exit_like(status)


def _late_hooks(answer: PlannerAnswer, env: Mapping[str, str]) -> Hooks:
    """Hooks that read the planner's plan and settings (and load the recorders) only
    once the job has started."""
    made: list[Hooks] = []

    def started(objects: dict[str, str]) -> None:
        from larkps.jobnet.plandoc import node_from_doc, plan_from_doc
        from larkps.jobnet.rootless import recorder_hooks

        try:
            plan, node = plan_from_doc(answer.plan), node_from_doc(answer.node)
        except PlannerUnavailable as exc:
            say(f"not recorded: {exc}")
            return
        made.append(recorder_hooks(plan, recorders(node, env)))
        made[0].started(objects)

    def ended(exit_status: int, counters: bytes | None) -> None:
        if made:
            made[0].ended(exit_status, counters)

    return Hooks(started, ended)


def plan_ads(node: NodeJobNet, env: Mapping[str, str]) -> JobPlan:
    """The job's plan from its ads, read and parsed in this process."""
    from larkps.jobnet.jobad import parse_ad_texts
    from larkps.jobnet.request import plan_job

    job_ad, machine_ad = parse_ad_texts(*ad_texts_from_environment(env))
    return plan_job(job_ad, machine_ad, node)


def _rootless(node: NodeJobNet, plan: JobPlan, args: list[str], env: Mapping[str, str]) -> int:
    """Run the job in namespaces of its own; its exit status."""
    from larkps.jobnet.rootless import Launch, run_rootless  # the rootless path's alone

    for line in plan.rationale:
        say(line)
    launch = Launch(argv=args, user_net=node.user_net, classes=node.classes)
    try:
        status = run_rootless(plan, launch, recorders(node, env))
    except LarkpsError as exc:
        return refuse(str(exc), env)
    exit_like(status)


def _exec_helper(helper: str, args: list[str]) -> None:
    """Privileged mode: the root-owned helper (the one sudoers command) does the rest."""
    os.execv(SUDO, [SUDO, "-n", helper, "--", *args])  # noqa: S606 - fixed program


if __name__ == "__main__":
    sys.exit(main())
