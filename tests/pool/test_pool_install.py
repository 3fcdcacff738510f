"""The pool and the install every other pool test builds on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from minipool import Install, Pool, minipool

from larkps import __version__


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    with minipool() as running:
        yield running


def test_the_pool_has_its_slots_and_schedd(pool: Pool):
    slots = pool.status("-af", "Name").split()
    assert len(slots) == 2
    assert pool.status("-schedd", "-af", "Name").strip()


def test_another_user_runs_the_installed_larkps(pool: Pool, larkps_install: Install):
    home = pool.job_dir("install-check")
    out = pool.as_job_user(str(larkps_install.larkps), "--version", cwd=home)
    assert out.stdout.strip() == f"larkps {__version__}"
