"""``larkps report``: the mesh as an offline HTML page (MaDDash-style grid, path plots)
and as PNG pictures.

``adapter.report_input`` turns a cycle's results into the small input model of
``model``; ``page`` renders it as HTML, ``pictures`` as PNGs, and ``output``
writes the directory. See docs/report.md.
"""

from __future__ import annotations

from larkps.report.adapter import report_input
from larkps.report.model import Level, ReportInput, ReportMetric
from larkps.report.output import Written, write_report

__all__ = ["Level", "ReportInput", "ReportMetric", "Written", "report_input", "write_report"]
