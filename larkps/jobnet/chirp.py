"""A finished job's network figures put into its job ad with ``condor_chirp set_job_attr``.

Attributes: ``LarkNetworkBytesSent`` and ``LarkNetworkBytesReceived`` (integers, the
job's interface, every destination class), ``LarkNetworkPolicy`` (a string) and
``LarkNetworkRateLimitMbps`` (a real; absent when the job had no limit). Values are
rendered by classad2, so a value is always one ClassAd literal. Chirp needs the
job's I/O proxy: ``+WantIOProxy = true`` in the submit file or a job transform that
sets it (config/condor/50-larkps-jobnet.conf). condor_chirp runs as the job user
(the wrapper is that user already; a root caller passes ``user``) with the starter's
environment (``_CONDOR_CHIRP_CONFIG``). Any failure is one line on stderr, never fatal.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from larkps.jobnet.accounting import Totals, counters_from, totals
from larkps.jobnet.request import JobPlan

CHIRP_ENV = "LARKPS_CONDOR_CHIRP"  # an explicit path, for admins and tests
LIBEXEC_DIRS = ("/usr/libexec/condor", "/usr/lib/condor/libexec")
#: condor_chirp's command line through the wheel's client (its exit code, its messages).
HTCHIRP = (
    "import sys; from htcondor2.htchirp import condor_chirp; "
    "sys.exit(condor_chirp(sys.argv[1:], True))"
)
TIMEOUT_S = 30.0
CHIRP_PREFIX = "larkps-jobnet: "


@dataclass(frozen=True, slots=True)
class JobUser:
    """Whom condor_chirp runs as when the caller is root."""

    uid: int
    gid: int
    groups: tuple[int, ...] = ()


def attributes(totals: Totals, policy: str, rate_bps: int | None) -> dict[str, object]:
    """The attribute values, as Python values."""
    values: dict[str, object] = {
        "LarkNetworkBytesSent": totals.bytes_out,
        "LarkNetworkBytesReceived": totals.bytes_in,
        "LarkNetworkPolicy": policy,
    }
    if rate_bps is not None:
        values["LarkNetworkRateLimitMbps"] = rate_bps / 1e6
    return values


def report_to_job_ad(
    plan: JobPlan,
    counters: object,
    env: Mapping[str, str] | None = None,
    user: JobUser | None = None,
) -> str | None:
    """The wrapper's call at the job's end: its counters (any form
    :func:`~larkps.jobnet.accounting.counters_from` takes), policy and rate into its
    job ad. None, or the one problem line already written to stderr."""
    try:
        summed = totals(counters_from(counters))
    except ValueError as exc:
        return _warn(f"no network figures for the job ad: {exc}")
    return chirp(attributes(summed, plan.policy.value, plan.rate_bps), env, user)


def rendered(values: Mapping[str, object]) -> list[tuple[str, str]]:
    """(name, ClassAd expression text) of each value, by classad2 (loaded only at the
    job's end, so that it costs the wrapper's start nothing)."""
    import classad2

    ad = classad2.ClassAd()
    for name, value in values.items():
        ad[name] = value
    return [(name, str(ad.lookup(name))) for name in values]


def find_condor_chirp(env: Mapping[str, str]) -> list[str] | None:
    """The argv that runs condor_chirp: $LARKPS_CONDOR_CHIRP, $_CONDOR_LIBEXEC (a config
    override the starter passes on), the usual libexec directories, PATH; else the
    pure-Python client of the htcondor wheel (``htcondor2.htchirp``, same commands)."""
    explicit = env.get(CHIRP_ENV)
    if explicit:
        return [explicit] if os.access(explicit, os.X_OK) else None
    dirs = [env["_CONDOR_LIBEXEC"]] if env.get("_CONDOR_LIBEXEC") else []
    for directory in (*dirs, *LIBEXEC_DIRS):
        candidate = Path(directory) / "condor_chirp"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return [str(candidate)]
    found = shutil.which("condor_chirp", path=env.get("PATH", os.defpath))
    if found:
        return [found]
    if importlib.util.find_spec("htcondor2") is not None:
        return [sys.executable, "-c", HTCHIRP]
    return None


def chirp(
    values: Mapping[str, object],
    env: Mapping[str, str] | None = None,
    user: JobUser | None = None,
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
) -> str | None:
    """Set each attribute in the job ad; None, or the one problem line (also on stderr).

    The first failure stops the rest: without the I/O proxy every call fails alike.
    """
    env = dict(os.environ if env is None else env)
    program = find_condor_chirp(env)
    if program is None:
        return _warn("condor_chirp not found: the job ad gets no network figures")
    for name, text in rendered(values):
        problem = _one([*program, "set_job_attr", name, text], env, user, run)
        if problem:
            return _warn(
                f"condor_chirp set_job_attr {name}: {problem} (the job ad gets no network "
                "figures; is +WantIOProxy = true?)"
            )
    return None


def _one(
    argv: Sequence[str],
    env: Mapping[str, str],
    user: JobUser | None,
    run: Callable[..., subprocess.CompletedProcess[str]],
) -> str | None:
    extra: dict[str, object] = {}
    if user is not None and os.geteuid() == 0:
        extra = {"user": user.uid, "group": user.gid, "extra_groups": list(user.groups)}
    try:
        done = run(  # fixed program, attribute names, classad2 literals
            list(argv),
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
            stdin=subprocess.DEVNULL,
            **extra,
        )
    except subprocess.TimeoutExpired:
        return f"no answer within {TIMEOUT_S:g} s"
    except OSError as exc:
        return exc.strerror or str(exc)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout or "").strip().splitlines()
        return lines[0] if lines else f"exit status {done.returncode}"
    return None


def _warn(problem: str) -> str:
    line = "".join(c if c.isprintable() else "?" for c in problem)
    sys.stderr.write(CHIRP_PREFIX + line + "\n")
    return line
