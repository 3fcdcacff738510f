"""The jobnet planner's service side: ``larkps jobnet planner``.

One process for the node, started by systemd (config/systemd/larkps-jobnet-planner.service),
with classad2 loaded once: it answers the wrapper's requests on a Unix socket
(:mod:`larkps.jobnet.planner` has the wire format and the client): for each job,
the node's settings, the plan, and the recipe of its namespace.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import stat
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from larkps.config.jobnet import Mode, NodeJobNet
from larkps.errors import LarkpsError
from larkps.jobnet.jobad import MAX_AD_BYTES, AdText
from larkps.jobnet.plandoc import node_doc, plan_doc
from larkps.jobnet.planner import PlannerUnavailable, json_object, read_all
from larkps.jobnet.request import JobPlan
from larkps.jobnet.rootless import recipe

if TYPE_CHECKING:
    import socketserver

#: The largest request: two ads of the largest size, and room for the JSON around them.
MAX_REQUEST = 2 * 2 * MAX_AD_BYTES + 65536
SERVER_TIMEOUT = 10.0  # seconds the planner gives a client to send its request
MAX_CLIENTS = 64  # requests answered at once (each a thread)

Stamp = tuple[int, int, int, int]  # a config file's mtime, ctime, size and inode

log = logging.getLogger("larkps.jobnet.planner")


class Planner:
    """Plans jobs with the ``[jobnet]`` settings of one config file, re-read whenever the
    file changes; a file that does not load refuses every job with its error, as the
    wrapper would."""

    def __init__(self, config: str, load: Callable[[str], NodeJobNet] | None = None) -> None:
        self.config = config
        self._loader = load or _whole_file
        self._lock = threading.Lock()
        self._planning = threading.Lock()
        self._stamp: Stamp | None = None
        self._node: NodeJobNet | None = None
        self._problem = ""

    def node(self) -> NodeJobNet:
        """The current settings (LarkpsError with the file's problem when it does not load)."""
        with self._lock:
            try:
                st = os.stat(self.config)
                stamp: Stamp | None = (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)
            except OSError:
                stamp = None
            if stamp is None or stamp != self._stamp:
                self._load()
                self._stamp = stamp
            if self._node is None:
                raise LarkpsError(self._problem)
            return self._node

    def _load(self) -> None:
        try:
            self._node, self._problem = self._loader(self.config), ""
            log.info("[jobnet] of %s loaded", self.config)
        except LarkpsError as exc:
            if str(exc) != self._problem:  # once per problem, not once per job
                log.error("%s", exc)
            self._node, self._problem = None, str(exc)

    def reload(self) -> None:
        """Re-read the file at the next request, changed or not."""
        with self._lock:
            self._stamp = None

    def answer(self, request: bytes | None) -> dict[str, Any]:
        """The answer document for one request; never raises."""
        try:
            job, machine = request_ads(json_object(request, "request", MAX_REQUEST))
        except PlannerUnavailable as exc:
            return {"error": str(exc)}
        try:
            node = self.node()
        except LarkpsError as exc:
            return {"refused": str(exc)}  # as the wrapper refuses with a config it cannot load
        doc: dict[str, Any] = {"node": node_doc(node)}
        if node.mode is Mode.PRIVILEGED:
            return doc
        try:
            with self._planning:  # one at a time through classad2
                plan = plan_texts(job, machine, node)
            doc["plan"] = plan_doc(plan)
            doc["recipe"] = recipe(plan, node.user_net, node.classes).doc()
        except LarkpsError as exc:
            doc["refused"] = str(exc)
            log.info("refused %s: %s", job[0], exc)
        return doc


def _whole_file(path: str) -> NodeJobNet:
    """The ``[jobnet]`` section of a whole larkps.toml."""
    from larkps.config.jobnet import load_jobnet

    return load_jobnet(path, alone=False)


def plan_texts(job: AdText, machine: AdText | None, node: NodeJobNet) -> JobPlan:
    """The plan of a job from the texts of its ads (what the wrapper would plan)."""
    from larkps.jobnet.jobad import parse_ad_texts
    from larkps.jobnet.request import plan_job

    job_ad, machine_ad = parse_ad_texts(job, machine)
    return plan_job(job_ad, machine_ad, node)


def request_ads(d: dict[str, Any]) -> tuple[AdText, AdText | None]:
    """The job ad's and the machine ad's (file, text) from a request document."""
    job = _ad_text(d.get("job_ad"), "job_ad")
    machine = None if d.get("machine_ad") is None else _ad_text(d["machine_ad"], "machine_ad")
    return job, machine


def _ad_text(value: object, field: str) -> AdText:
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise PlannerUnavailable(f"request: {field} is not [file, text]")
    source, text = value
    if len(text.encode("utf-8", "replace")) > MAX_AD_BYTES:
        raise PlannerUnavailable(
            f"request: {field} {source[:200]} larger than {MAX_AD_BYTES} bytes"
        )
    return source, text


def listen(planner: Planner, path: str, ready: Any = None) -> socketserver.BaseServer:
    """A server answering on the Unix socket ``path`` (mode 0666: every job's user asks),
    not yet serving: call its ``serve_forever``; ``ready(server)`` once it listens."""
    import socketserver

    claim_socket(path)

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            sock: socket.socket = self.request
            deadline = time.monotonic() + SERVER_TIMEOUT
            try:
                doc = planner.answer(read_all(sock, MAX_REQUEST, deadline))
                sock.settimeout(SERVER_TIMEOUT)
                sock.sendall(json.dumps(doc).encode())
            except OSError as exc:
                log.debug("a client went away: %s", exc)

    class Server(socketserver.ThreadingUnixStreamServer):
        daemon_threads = True
        block_on_close = False
        request_queue_size = 256  # every slot of a large node starting a job at once

        def process_request(self, request: Any, client_address: Any) -> None:
            """At most MAX_CLIENTS at once; a request that finds no room within a
            second is closed (its wrapper plans the job itself)."""
            if not clients.acquire(timeout=1.0):
                log.warning("%d requests at once: one turned away", MAX_CLIENTS)
                self.shutdown_request(request)
                return
            try:
                super().process_request(request, client_address)
            except BaseException:
                clients.release()
                raise

        def process_request_thread(self, request: Any, client_address: Any) -> None:
            try:
                super().process_request_thread(request, client_address)
            finally:
                clients.release()

    clients = threading.BoundedSemaphore(MAX_CLIENTS)

    old = os.umask(0o111)  # the socket is made 0666
    try:
        server = Server(path, Handler)
    finally:
        os.umask(old)
    log.info("answering on %s", path)
    if ready is not None:
        ready(server)
    return server


def claim_socket(path: str) -> None:
    """Remove a socket left by a planner that is gone; refuse one that still answers."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise LarkpsError(f"{path}: exists and is not a socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)
            return
    raise LarkpsError(f"{path}: another planner answers there")


def run_planner(config: str, path: str) -> int:
    """Answer on ``path`` until SIGTERM or SIGINT (exit 0); SIGHUP re-reads the config.

    A config that does not load at the start is an error (ConfigError); one that
    stops loading later refuses jobs with its error until it is mended.
    """
    import signal

    from larkps.config.jobnet import load_jobnet

    load_jobnet(config, alone=False)  # the file loads now (ConfigError), or no planner starts
    planner = Planner(config)
    try:
        server = listen(planner, path)
    except OSError as exc:
        raise LarkpsError(f"cannot answer on {path}: {exc.strerror or exc}") from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: planner.reload())
    worker = threading.Thread(target=server.serve_forever, name="planner", daemon=True)
    worker.start()
    try:
        while not stop.wait(3600):
            pass
    finally:
        server.shutdown()
        server.server_close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        log.info("stopped")
    return 0
