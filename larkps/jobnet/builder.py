"""``larkps jobnet builder``: privileged mode's resident root service.

One process for the node, run by systemd as root
(config/systemd/larkps-jobnet-builder.service), with classad2 loaded and the node's
root-only config (``/etc/larkps/jobnet.toml``) read once and again whenever it
changes. The helper, which sudo starts for each job, has checked who the caller is
and read the job's ads with the caller's rights; the builder plans the job, makes
its network and removes it again, so that the helper itself loads next to nothing.

One connection per job, kept open for the job's life; JSON lines
(:mod:`larkps.jobnet.wire`), and only root may connect (``SO_PEERCRED``):

- helper: ``{"caller": {uid, gid, groups, name}, "job_ad": [path, text],
  "machine_ad": [path, text] | null}``
- builder: ``{"object": [kind, name]}`` before each object is made (the helper
  can remove them should the builder die), then ``{"ready": {"netns": NAME,
  "say": [line, ...]}}`` or ``{"refused": line}`` (nothing left by then)
- helper: ``{"ended": exit_status}`` (the job's code, or -N for signal N)
- builder: ``{"done": {"say": [...], "attributes": {...}, "problems": [...]}}``
  once the counters are read, the ledger row closed and everything removed.

The helper's pid owns the run: its leases and its ledger row name it. When the
connection ends before ``ended`` (the helper was killed, or gave up), the builder
kills what runs in the namespace and removes everything at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from larkps.errors import ConfigError, LarkpsError
from larkps.jobnet import privileged
from larkps.jobnet.helperconf import HelperRefused, load_node
from larkps.jobnet.planner import PlannerUnavailable
from larkps.jobnet.planner_service import (
    MAX_REQUEST,
    Planner,
    claim_socket,
    plan_texts,
    request_ads,
)
from larkps.jobnet.wire import Channel, WireError, peer_credentials

if TYPE_CHECKING:
    from larkps.config.jobnet import NodeJobNet
    from larkps.jobnet.ledger import LedgerRecorder
    from larkps.jobnet.request import JobPlan

REQUEST_TIMEOUT = 10.0  # seconds a helper has to send its request

log = logging.getLogger("larkps.jobnet.builder")


class Aborted(LarkpsError):
    """The helper went away while its network was being made."""


def _caller_uid(doc: object) -> int:
    """The job's uid from the request (the helper checked the caller; never root)."""
    if not isinstance(doc, dict):
        raise PlannerUnavailable("request: caller is not an object")
    uid = doc.get("uid")
    if not isinstance(uid, int) or isinstance(uid, bool) or uid <= 0:
        raise PlannerUnavailable("request: caller uid is not a positive integer")
    return uid


class Run:
    """One job's network: made, reported object by object, removed."""

    def __init__(self, channel: Channel, helper_pid: int) -> None:
        self.channel = channel
        self.helper_pid = helper_pid
        self.objects: list[tuple[str, str]] = []
        self.layout: privileged.Layout | None = None
        self.plan: JobPlan | None = None
        self.ledger: LedgerRecorder | None = None
        self.say: list[str] = []

    def record(self, kind: str, name: str) -> None:
        """Note an object about to be made; the helper hears of it first."""
        self.objects.append((kind, name))
        try:
            self.channel.send({"object": [kind, name]})
        except WireError:
            raise Aborted("the helper went away") from None

    def make(self, plan: JobPlan, node: NodeJobNet) -> dict[str, object]:
        """Make the network; the ready answer."""
        self.plan = plan
        tag = privileged.owner_tag(self.helper_pid)
        ledger: list[privileged.Background] = []

        def named() -> None:  # every object is known: the row is written meanwhile
            ledger.append(privileged.Background(lambda: self.start_ledger(node)))

        try:
            self.layout = privileged.make(plan, node, tag, self.record, named)
        finally:
            for write in ledger:
                write.wait()
        say = [*plan.rationale, f"netns {self.layout.names.netns}, address "]
        say[-1] += ", ".join(self.layout.addresses())
        return {"ready": {"netns": self.layout.names.netns, "say": [*say, *self._said()]}}

    def start_ledger(self, node: NodeJobNet) -> None:
        """The run's row with every object, written before the job starts (gc finds it
        after a crash); a failure is a line for the job's stderr."""
        from larkps.jobnet.ledger import LedgerRecorder

        assert self.plan is not None
        try:
            self.ledger = LedgerRecorder(Path(node.ledger), supervisor=self.helper_pid)
            self.ledger.start(self.plan, list(self.objects))
        except (LarkpsError, OSError, ValueError) as exc:
            self.say.append(f"the ledger did not record job {self.plan.job_id}: {exc}")
            self.ledger = None

    def _said(self) -> list[str]:
        lines, self.say = self.say, []
        return lines

    def finish(self, exit_status: int | None) -> dict[str, object]:
        """Counters, the ledger row closed, everything removed; the done answer."""
        from larkps.jobnet.accounting import counters_from, totals
        from larkps.jobnet.chirp import attributes

        assert self.layout is not None and self.plan is not None
        counters: object = None
        try:
            counters = privileged.counters(self.layout)
        except (LarkpsError, ValueError, KeyError, IndexError) as exc:
            self.say.append(f"no counters for job {self.plan.job_id}: {exc}")
        privileged.kill_netns_processes(self.layout.names.netns)
        values: dict[str, object] = {}
        if counters is not None:
            self._end_ledger(exit_status, counters)
            summed = totals(counters_from(counters))
            values = attributes(summed, self.plan.policy.value, self.plan.rate_bps)
        problems = self.remove()
        return {"done": {"say": self._said(), "attributes": values, "problems": problems}}

    def _end_ledger(self, exit_status: int | None, counters: object) -> None:
        if self.ledger is None or self.plan is None:
            return
        try:
            self.ledger.end(self.plan, exit_status, counters)
        except (LarkpsError, OSError, ValueError) as exc:
            self.say.append(f"the ledger did not record the end of job {self.plan.job_id}: {exc}")

    def remove(self) -> list[str]:
        """Remove whatever is still there; the problems."""
        objects, self.objects = self.objects, []
        problems = privileged.remove(objects) if objects else []
        for problem in problems:
            log.error("could not remove %s", problem)
        return problems


class Builder:
    """Serves helpers with the node's config (re-read when it changes)."""

    def __init__(self, config: str) -> None:
        self.settings = Planner(config, load=load_node)
        self._planning = threading.Lock()  # one at a time through classad2

    def serve(self, sock: socket.socket) -> None:
        """One helper's connection, from its request to the end of its job."""
        pid, uid, _ = peer_credentials(sock)
        if uid != 0:
            log.warning("refused a connection from uid %d (pid %d): only root", uid, pid)
            return
        channel = Channel(sock, MAX_REQUEST)
        run = Run(channel, pid)
        try:
            self._serve(channel, run)
        except (WireError, Aborted) as exc:
            log.info("helper %d: %s", pid, exc)
        finally:
            if run.objects:  # the job did not end as the helper said: remove at once
                if run.layout is not None:
                    privileged.kill_netns_processes(run.layout.names.netns)
                run.remove()

    def _serve(self, channel: Channel, run: Run) -> None:
        request = channel.receive(time.monotonic() + REQUEST_TIMEOUT)
        if request is None:
            return
        try:
            answer = self.build(request, run)
        except Aborted:
            raise
        except (LarkpsError, OSError) as exc:
            run.remove()  # before the helper hears: nothing is left when it refuses
            channel.send({"refused": str(exc)})
            log.info("refused: %s", exc)
            return
        channel.send(answer)
        ended = channel.receive()  # the job's whole life
        if ended is None:
            raise WireError("the helper closed the connection before the job ended")
        status = ended.get("ended")
        code = status if isinstance(status, int) and not isinstance(status, bool) else None
        channel.send(run.finish(code))

    def build(self, request: dict[str, Any], run: Run) -> dict[str, object]:
        """Plan the job and make its network; the ready answer (LarkpsError: refused)."""
        _caller_uid(request.get("caller"))
        job, machine = request_ads(request)
        node = self.settings.node()
        with self._planning:
            plan = plan_texts(job, machine, node)
        return run.make(plan, node)


def bind_socket(builder: Builder, path: str) -> socket.socket:
    """The builder's listening socket at path (mode 0600: root's alone)."""
    claim_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    old = os.umask(0o177)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    sock.listen(256)
    log.info("building on %s", path)
    return sock


def serve_forever(builder: Builder, listener: socket.socket, stop: threading.Event) -> None:
    """Accept helpers until stop is set; one thread each, for its job's life."""
    listener.settimeout(0.5)
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        except OSError as exc:
            if stop.is_set():
                return
            log.warning("accept: %s", exc)
            time.sleep(0.1)
            continue
        conn.settimeout(None)
        threading.Thread(target=_serve_one, args=(builder, conn), daemon=True).start()


def _serve_one(builder: Builder, conn: socket.socket) -> None:
    with conn:
        try:
            builder.serve(conn)
        except Exception:  # a thread's end: logged, never the service's
            log.exception("a helper's run failed")


def run_builder(config: str, path: str, ready: Callable[[], None] | None = None) -> int:
    """Build on ``path`` until SIGTERM or SIGINT (exit 0); SIGHUP re-reads the config.

    Runs as root only, with a config only root can change, in privileged mode (or
    nothing starts). On SIGTERM the runs under way are left to their helpers, which
    remove their networks themselves when their jobs end.
    """
    import signal

    if os.geteuid() != 0:
        raise LarkpsError("the builder must run as root")
    try:
        load_node(config)  # loads now, or no builder starts
    except HelperRefused as exc:
        raise ConfigError(config, "", str(exc)) from None
    builder = Builder(config)
    try:
        listener = bind_socket(builder, path)
    except OSError as exc:
        raise LarkpsError(f"cannot build on {path}: {exc.strerror or exc}") from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: builder.settings.reload())
    if ready is not None:
        ready()
    try:
        serve_forever(builder, listener, stop)
    finally:
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        log.info("stopped")
    return 0
