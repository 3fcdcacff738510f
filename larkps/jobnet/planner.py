"""The jobnet planner's client: what the wrapper asks, and the answer it checks.

A new Python process pays about 60 ms to load classad2 (HTCondor's libraries and its
configuration) before it can read one ad, and as much again for the modules that
plan a job. ``larkps jobnet planner`` (:mod:`larkps.jobnet.planner_service`) pays
that once: it keeps the node's ``[jobnet]`` settings (re-read when the file
changes) and answers on a Unix socket. The wrapper sends the texts of the job's ads
(as the job's user read them); the planner parses them with classad2, plans the job
with :func:`~larkps.jobnet.request.plan_job` and makes its namespace's recipe
exactly as the wrapper would, and answers. The wrapper checks the recipe before it
runs it (only ``ip`` and ``tc`` commands, known sysctls, ports as numbers), and
plans the job itself when no planner answers. This module loads only what the start
of a job needs.

Wire format, one exchange per connection (the client shuts its side down after the
request): the request ``{"job_ad": [file, text], "machine_ad": [file, text] | null}``;
the answer ``{"node": {...}, "plan": {...}, "recipe": {...}}`` (rootless),
``{"node": {...}}`` (privileged mode: the helper plans), ``{"refused": line, ...}``
(the job must not run) or ``{"error": line}`` (a request the planner could not read).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Mapping

from larkps.errors import LarkpsError
from larkps.jobnet.jobad import AdText
from larkps.jobnet.runner import Recipe, recipe_from_doc

PLANNER_VARIABLE = "LARKPS_PLANNER"
DEFAULT_SOCKET = "/run/larkps-jobnet/planner.sock"
MAX_ANSWER = 1 << 20
CLIENT_TIMEOUT = 5.0  # seconds the wrapper waits for an answer before planning itself


class PlannerUnavailable(LarkpsError):
    """No planner answered, or its answer could not be used."""


class PlannerAnswer:
    """What the planner said, as plain values: the refusal; or the node's mode and
    helper, and (rootless) the recipe and the rationale; with the node's settings and
    the plan as documents (:mod:`larkps.jobnet.plandoc` reads them, after the start)."""

    __slots__ = ("helper", "mode", "node", "plan", "rationale", "recipe", "refused")

    def __init__(self, doc: Mapping[str, object]) -> None:
        refused = doc.get("refused")
        self.refused = _text(refused, "refused") if refused is not None else None
        node, plan = doc.get("node"), doc.get("plan")
        self.node = node if isinstance(node, dict) else {}
        self.plan = plan if isinstance(plan, dict) else {}
        self.mode = str(self.node.get("mode", ""))
        self.helper = str(self.node.get("helper", ""))
        if self.mode == "privileged" and not self.helper.startswith("/"):
            raise PlannerUnavailable("planner's answer: node.helper is not an absolute path")
        self.recipe: Recipe | None = None
        self.rationale: list[str] = []
        if self.refused is not None or self.mode == "privileged":
            return
        if self.mode != "rootless" or not self.plan:
            raise PlannerUnavailable("planner's answer has no plan")
        try:
            self.recipe = recipe_from_doc(doc.get("recipe"))
        except ValueError as exc:
            raise PlannerUnavailable(f"planner's answer: {exc}") from None
        lines = self.plan.get("rationale")
        if not isinstance(lines, list):
            raise PlannerUnavailable("planner's answer: plan.rationale is not a list")
        self.rationale = [_text(line, "plan.rationale") for line in lines]


def _text(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise PlannerUnavailable(f"planner's answer: {field} is not a string")
    return value


# ---------------------------------------------------------------------------------------------
# The client: what the wrapper calls


def planner_socket(environ: Mapping[str, str], config_named: bool) -> str | None:
    """The planner's socket the wrapper should ask: ``LARKPS_PLANNER`` when set (empty:
    none), else the default socket when it exists and no ``LARKPS_CONFIG`` names a
    config of the wrapper's own."""
    if PLANNER_VARIABLE in environ:
        return environ[PLANNER_VARIABLE] or None
    if config_named or not os.path.exists(DEFAULT_SOCKET):
        return None
    return DEFAULT_SOCKET


def ask(
    path: str, job: AdText, machine: AdText | None, timeout: float = CLIENT_TIMEOUT
) -> PlannerAnswer:
    """The planner's answer for one job (PlannerUnavailable when there is none to use)."""
    request = json.dumps(
        {"job_ad": list(job), "machine_ad": None if machine is None else list(machine)}
    )
    deadline = time.monotonic() + timeout
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            _connect(sock, path, deadline)
            sock.sendall(request.encode())
            sock.shutdown(socket.SHUT_WR)
            data = read_all(sock, MAX_ANSWER, deadline)
    except OSError as exc:
        raise PlannerUnavailable(f"planner {path}: {exc.strerror or exc}") from None
    return answer_from_bytes(data)


def _connect(sock: socket.socket, path: str, deadline: float) -> None:
    """Connect, waiting while the planner's queue of connections is full (many jobs
    starting at once): a Unix socket says EAGAIN then rather than waiting."""
    while True:
        try:
            sock.connect(path)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.002)


def json_object(data: bytes | None, what: str, limit: int) -> dict[str, object]:
    """``data`` as a JSON object (None: it was over ``limit`` bytes); PlannerUnavailable
    naming ``what`` when it is not one."""
    if data is None:
        raise PlannerUnavailable(f"{what} larger than {limit} bytes")
    try:
        doc = json.loads(data)
    except ValueError:
        raise PlannerUnavailable(f"{what} is not JSON") from None
    if not isinstance(doc, dict):
        raise PlannerUnavailable(f"{what} is not a JSON object")
    return doc


def answer_from_bytes(data: bytes | None) -> PlannerAnswer:
    doc = json_object(data, "planner's answer", MAX_ANSWER)
    if "error" in doc:
        raise PlannerUnavailable(f"planner: {_text(doc['error'], 'error')}")
    return PlannerAnswer(doc)


def read_all(sock: socket.socket, limit: int, deadline: float) -> bytes | None:
    """Everything until the peer's end of stream; None when more than limit bytes come;
    TimeoutError when it has not ended by ``deadline`` (``time.monotonic``)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
