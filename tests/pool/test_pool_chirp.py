"""A job's network figures reach its ad in the real pool through the starter's chirp proxy.

The job runs larkps's own call at the end of a job (jobnet.chirp.report_to_job_ad)
with the installed larkps. The mini pool's build has no condor_chirp, so this also
proves the fallback to the htcondor wheel's client. With ``+WantIOProxy = true`` the
attributes are in ``condor_history``; without it the starter refuses, the job gets
one stderr line and still exits 0.
"""

from __future__ import annotations

from collections.abc import Iterator

import classad2
import pytest
from minipool import Install, Pool, minipool, wait_until

pytestmark = pytest.mark.slow

JOB = """#!/bin/sh
exec {python} -c '
from larkps.config.jobnet import Mode, Policy
from larkps.jobnet.chirp import report_to_job_ad
from larkps.jobnet.request import JobPlan
plan = JobPlan("1.0", "minipool", Mode.ROOTLESS, Policy.PORTS, rate_bps=125000000)
counted = {{("out", "elsewhere"): (123456789012, 10), ("out", "same-site"): (8, 1),
           ("in", "same-site"): (4242, 3)}}
report_to_job_ad(plan, counted)
'
"""


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    with minipool() as running:
        yield running


def history(pool: Pool) -> list[classad2.ClassAd]:
    out = pool.run("condor_history", "-long", "-constraint", "JobStatus == 4", check=False)
    return list(classad2.parseAds(out.stdout, classad2.ParserType.Old))


def test_the_figures_reach_the_job_ad_and_history(pool: Pool, larkps_install: Install):
    jobs = pool.job_dir("chirp-jobs")
    pool.job_file(jobs, "job.sh", JOB.format(python=larkps_install.python), mode=0o755)
    submit = "executable = job.sh\nlog = job.log\noutput = job.$(Cluster).out\n"
    submit += "error = job.$(Cluster).err\nshould_transfer_files = YES\n"
    pool.job_file(jobs, "with.sub", submit + "+WantIOProxy = true\nqueue\n")
    pool.job_file(jobs, "without.sub", submit + "queue\n")
    pool.as_job_user("condor_submit", "with.sub", cwd=jobs)
    pool.as_job_user("condor_submit", "without.sub", cwd=jobs)
    wait_until(lambda: len(history(pool)) >= 2, 180, "2 completed jobs")
    by_cluster = {ad["ClusterId"]: ad for ad in history(pool)}
    with_proxy, without = by_cluster[1], by_cluster[2]
    assert with_proxy["LarkNetworkBytesSent"] == 123456789020
    assert with_proxy["LarkNetworkBytesReceived"] == 4242
    assert with_proxy["LarkNetworkPolicy"] == "ports"
    assert with_proxy["LarkNetworkRateLimitMbps"] == 125.0
    assert (jobs / "job.1.err").read_text() == ""
    assert without["ExitCode"] == 0
    assert "LarkNetworkBytesSent" not in without
    err = (jobs / "job.2.err").read_text().splitlines()
    assert len(err) == 1
    assert err[0].startswith("larkps-jobnet: condor_chirp set_job_attr LarkNetworkBytesSent: ")
    assert err[0].endswith("(the job ad gets no network figures; is +WantIOProxy = true?)")
