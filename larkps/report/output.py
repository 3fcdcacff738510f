"""Write a report directory so that readers never see a half-written report.

Everything is first drawn into a staging directory inside ``out``; then the
pictures are moved into place one by one (``os.replace`` is atomic on one file
system), pictures of paths no longer in the report are removed, and
``index.html`` is replaced last. Files get the usual permissions (umask), as
a web server needs to read them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from larkps.errors import LarkpsError, PublishError
from larkps.report.model import ReportInput
from larkps.report.names import path_file_name
from larkps.report.page import render_page

PATHS_DIR = "paths"


@dataclass(frozen=True, slots=True)
class Written:
    """What :func:`write_report` wrote."""

    index: Path
    grid: Path | None
    pictures: int


def write_report(report: ReportInput, out: Path, png: bool = False) -> Written:
    """``out/index.html``, and with ``png`` also ``out/grid.png`` and ``out/paths/*.png``."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".larkps-report-", dir=out))
    except OSError as exc:
        raise PublishError(f"cannot write the report to {out}: {exc.strerror or exc}") from None
    try:
        pictures = _draw(report, staging) if png else {}
        _write_synced(staging / "index.html", render_page(report, pictures))
        if png:
            _install_pictures(staging, out, set(pictures.values()))
        os.replace(staging / "index.html", out / "index.html")
    except OSError as exc:
        raise PublishError(f"cannot write the report to {out}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Written(out / "index.html", out / "grid.png" if png else None, len(pictures))


def _draw(report: ReportInput, staging: Path) -> dict[str, str]:
    try:
        from larkps.report.pictures import grid_png, path_png
    except ImportError as exc:  # pragma: no cover - matplotlib is a runtime dependency
        raise LarkpsError(f"--png needs matplotlib ({exc})") from None
    (staging / PATHS_DIR).mkdir()
    grid_png(report, staging / "grid.png")
    pictures = {}
    for view in report.paths:
        name = f"{PATHS_DIR}/{path_file_name(view.path)}"
        path_png(report, view, staging / name)
        pictures[view.path.name] = name
    return pictures


def _install_pictures(staging: Path, out: Path, names: set[str]) -> None:
    (out / PATHS_DIR).mkdir(exist_ok=True)
    for name in sorted(names):
        os.replace(staging / name, out / name)
    for old in (out / PATHS_DIR).glob("*.png"):
        if f"{PATHS_DIR}/{old.name}" not in names:
            old.unlink()
    os.replace(staging / "grid.png", out / "grid.png")


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
