"""The privileged helper without a builder: plan and build the job's network in-process.

What :mod:`larkps.jobnet.helper` runs when the node has no builder (or it did not
answer): the helper's root-only config (:mod:`larkps.jobnet.helperconf`), the ads
parsed here with classad2, the network made by :mod:`larkps.jobnet.privileged`. A
guard process, started before anything is made, removes everything once the helper
is gone, however it ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from typing import NoReturn

from larkps.config.jobnet import NodeJobNet
from larkps.errors import LarkpsError
from larkps.jobnet import privileged
from larkps.jobnet.chirp import JobUser
from larkps.jobnet.helper import (
    Caller,
    Stopped,
    Supervisor,
    job_ad_texts,
    quiet_signals,
    refuse_job,
    tell,
)
from larkps.jobnet.helperconf import config_path, load_node
from larkps.jobnet.jobad import parse_ad_texts
from larkps.jobnet.recorder import NodeRecorder
from larkps.jobnet.request import JobPlan, plan_job
from larkps.jobnet.supervise import FORWARDED, PREFIX, exit_like, held

# --- the guard: removes what was made once the helper is gone --------------------------


class Guard:
    """A process of its own session that removes the recorded objects when told or orphaned.

    The helper writes one ``kind name`` line per object as soon as it exists; at
    end of file (the helper finished, or died) the guard removes them all, newest
    first, and exits. Should the guard itself be killed, the helper removes them.
    """

    def __init__(self) -> None:
        self.objects: list[tuple[str, str]] = []
        read_end, self._write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the guard
            os.close(self._write)
            _guard_main(read_end)
        os.close(read_end)
        self.pid = pid
        self.tag = privileged.owner_tag(pid)
        self.exit_status: int | None = None

    def record(self, kind: str, name: str) -> None:
        """Note one object here and with the guard (no signal handler runs in between)."""
        with held():
            self.objects.append((kind, name))
            os.write(self._write, f"{kind} {name}\n".encode())

    def finish(self) -> list[str]:
        """Let the guard remove everything; wait for it; the problems left."""
        with contextlib.suppress(OSError):
            os.close(self._write)
        if self.exit_status is None:
            _, status = os.waitpid(self.pid, 0)
            self.exit_status = status
        if os.WIFEXITED(self.exit_status) and os.WEXITSTATUS(self.exit_status) == 0:
            return []
        return privileged.remove(self.objects)  # the guard died: do it here


def _guard_main(read_end: int) -> NoReturn:
    """The guard's whole life: collect object lines until EOF, remove them, exit."""
    status = 1
    try:
        os.setsid()
        for sig in FORWARDED:
            signal.signal(sig, signal.SIG_IGN)
        objects = []
        buffer = b""
        while chunk := os.read(read_end, 4096):
            buffer += chunk
        for line in buffer.decode().splitlines():
            kind, _, name = line.partition(" ")
            objects.append((kind, name))
        problems = privileged.remove(objects)
        for problem in problems:
            os.write(2, f"{PREFIX}could not remove {problem}\n".encode())
        status = 0 if not problems else 1
    finally:
        os._exit(status)


def run_job(
    plan: JobPlan,
    node: NodeJobNet,
    caller: Caller,
    argv: Sequence[str],
    env: Mapping[str, str],
    recorder: privileged.HelperRecorder | None = None,
) -> int:
    """Make the network, run the job in it, remove everything; the job's wait status."""
    guard = Guard()
    supervisor = Supervisor(guard)
    status: int | None = None
    try:
        layout = privileged.make(plan, node, guard.tag, guard.record)
        for line in (
            *plan.rationale,
            f"netns {layout.names.netns}, address " + ", ".join(layout.addresses()),
        ):
            tell(line)
        if recorder is not None:
            recorder.start(plan, list(guard.objects))
        status = supervisor.run(argv, env, layout.names.netns, caller)
        counters = privileged.counters(layout)
        privileged.kill_netns_processes(layout.names.netns)
        supervisor.reap_rest()
        if recorder is not None:
            recorder.end(plan, os.waitstatus_to_exitcode(status), counters)
    finally:
        quiet_signals()
        problems = guard.finish()
        supervisor.reap_rest()
        for problem in problems:
            tell(f"could not remove {problem}")
    assert status is not None
    return status


def run_alone(
    own_env: Mapping[str, str], caller: Caller, argv: Sequence[str], env: Mapping[str, str]
) -> int:
    """Plan from the helper's config and the caller's ads, build, run the job; returns
    only to refuse it."""
    try:
        node = load_node(config_path(own_env))
        job, machine = parse_ad_texts(*job_ad_texts(env, caller))
        plan = plan_job(job, machine, node)
    except LarkpsError as exc:
        return refuse_job(str(exc), env, caller)
    try:
        user = JobUser(caller.uid, caller.gid, caller.groups)  # condor_chirp runs as the job's user
        status = run_job(plan, node, caller, argv, env, NodeRecorder(node.ledger, env, user))
    except Stopped as stop:  # everything made is removed again by then
        exit_like(stop.signum)  # a wait status of "killed by signum"
    except (LarkpsError, OSError) as exc:
        return refuse_job(str(exc), env, caller)
    exit_like(status)
