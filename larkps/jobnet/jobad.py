"""Job and machine ads as HTCondor's starter writes them, read into plain dicts.

The starter leaves the job's ad in ``_CONDOR_JOB_AD`` and the slot's machine ad in
``_CONDOR_MACHINE_AD`` (``.job.ad``, ``.machine.ad`` in the scratch directory).
Values are evaluated by classad2; an attribute that does not evaluate to a plain
value (an expression over other ads, an error) is left out, so that
:mod:`larkps.jobnet.request` only ever sees strings, numbers and booleans.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from larkps import TYPE_CHECKING
from larkps.errors import LarkpsError

if TYPE_CHECKING:
    import classad2

JOB_AD_VARIABLE = "_CONDOR_JOB_AD"
MACHINE_AD_VARIABLE = "_CONDOR_MACHINE_AD"
#: Where a job wrapper reports why the job did not start.
ERROR_FILE_VARIABLE = "_CONDOR_WRAPPER_ERROR_FILE"
#: The largest ad file read (a job ad is a few kB; this bounds a hostile one).
MAX_AD_BYTES = 1 << 20


class AdUnreadable(LarkpsError):
    """A job or machine ad file is missing, too large or not a ClassAd."""


def plain_values(ad: classad2.ClassAd) -> dict[str, object]:
    """Every attribute of ``ad`` that evaluates to a string, number or boolean."""
    import classad2  # loaded (and HTCondor's config read) only when an ad is read

    values: dict[str, object] = {}
    for name in list(ad):
        try:
            value = ad.eval(name)
        except (ValueError, TypeError, RuntimeError):
            continue
        if isinstance(value, classad2.Value):
            continue  # undefined or error
        if isinstance(value, bool | int | float | str):
            values[name] = value
    return values


def parse_ad(text: str, source: str) -> dict[str, object]:
    """An ad in the old (``Name = value`` lines) format, as plain values."""
    import classad2

    try:
        ad = classad2.parseOne(text, classad2.ParserType.Old)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise AdUnreadable(f"{source}: not a ClassAd ({exc})") from None
    return plain_values(ad)


def read_ad_text(path: str | os.PathLike[str]) -> str:
    """The text of one ad file, unparsed (AdUnreadable naming the file)."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as handle:
            data = handle.read(MAX_AD_BYTES + 1)
    except OSError as exc:
        raise AdUnreadable(f"{source}: cannot read ({exc.strerror})") from None
    if len(data) > MAX_AD_BYTES:
        raise AdUnreadable(f"{source}: larger than {MAX_AD_BYTES} bytes")
    return data.decode("utf-8", errors="replace")


def read_ad(path: str | os.PathLike[str]) -> dict[str, object]:
    """The ad in one file (AdUnreadable naming the file when it cannot be used)."""
    return parse_ad(read_ad_text(path), os.fspath(path))


#: An ad file's name and its text.
AdText = tuple[str, str]


def ad_texts_from_environment(environ: Mapping[str, str]) -> tuple[AdText, AdText | None]:
    """The job ad's file and text (required), and the machine ad's (None when the
    starter gave none), read but not parsed."""
    job_path = environ.get(JOB_AD_VARIABLE)
    if not job_path:
        raise AdUnreadable(f"{JOB_AD_VARIABLE} is not set: not started by an HTCondor starter")
    machine_path = environ.get(MACHINE_AD_VARIABLE)
    machine = None
    if machine_path and os.path.isfile(machine_path):
        machine = (machine_path, read_ad_text(machine_path))
    return (job_path, read_ad_text(job_path)), machine


def parse_ad_texts(
    job: AdText, machine: AdText | None
) -> tuple[dict[str, object], dict[str, object]]:
    """The job ad and the machine ad (empty when there is none) as plain values."""
    return parse_ad(job[1], job[0]), parse_ad(machine[1], machine[0]) if machine else {}


def ads_from_environment(
    environ: Mapping[str, str] | None = None,
) -> tuple[dict[str, object], dict[str, object]]:
    """The job ad (required) and the machine ad (empty when the starter gave none)."""
    return parse_ad_texts(*ad_texts_from_environment(os.environ if environ is None else environ))


def job_id_from_environment(environ: Mapping[str, str] | None = None) -> str | None:
    """``cluster.proc`` from the job ad named in the environment, or None."""
    try:
        job, _ = ads_from_environment(environ)
    except AdUnreadable:
        return None
    cluster, proc = job.get("ClusterId"), job.get("ProcId")
    if isinstance(cluster, int) and isinstance(proc, int):
        return f"{cluster}.{proc}"
    return None
