"""Fixtures of the real-pool tests: every test here is marked ``pool``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from minipool import Install, install_larkps, require_htcondor

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.fspath).parents:
            item.add_marker(pytest.mark.pool)


@pytest.fixture(scope="session")
def larkps_install() -> Iterator[Install]:
    """larkps in a world-readable venv made by /usr/bin/python3, as operations.md says."""
    require_htcondor()
    install = install_larkps()
    yield install
    shutil.rmtree(install.venv.parent, ignore_errors=True)
