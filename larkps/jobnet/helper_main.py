"""``larkps-jobnet-helper [--] JOB ARGV...``: the privileged helper's command, under sudo.

The caller is checked and the job's environment read first; then the builder makes
the job's network (:func:`larkps.jobnet.helper.run_built`), or, when none answers,
the helper does (:func:`larkps.jobnet.helper_local.run_alone`, loaded only then).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from larkps.errors import LarkpsError
from larkps.jobnet.helper import (
    BuilderUnavailable,
    Caller,
    builder_socket,
    caller_environment,
    caller_from_sudo,
    refuse_job,
    run_built,
    tell,
)
from larkps.jobnet.helperconf import PATH, HelperRefused


def main(argv: Sequence[str] | None = None) -> int:
    """``larkps-jobnet-helper [--] JOB ARGV...`` under sudo."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--"]:
        args = args[1:]
    own_env = dict(os.environ)
    os.environ.clear()
    os.environ["PATH"] = PATH
    if os.geteuid() != 0:
        tell("must run as root (through sudo)")
        return 1
    caller: Caller | None = None
    env: dict[str, str] = {}
    try:
        caller = caller_from_sudo(own_env)
        env = caller_environment(caller)
        if not args:
            raise HelperRefused("no job command given")
        path = builder_socket(own_env)
        if path is not None:
            try:
                return run_built(path, caller, args, env)
            except BuilderUnavailable as exc:
                tell(f"{exc}; the helper builds the job's network itself")
    except LarkpsError as exc:
        return refuse_job(str(exc), env, caller)
    from larkps.jobnet.helper_local import run_alone

    return run_alone(own_env, caller, args, env)
