"""The report: what a cycle found, for people and for tools.

``larkps report`` shows the mesh as an offline HTML page (MaDDash-style grid, path plots)
and as PNG pictures: ``adapter.report_input`` turns a cycle's results into the small input
model of ``model``; ``page`` renders it as HTML, ``pictures`` as PNGs, and ``output``
writes the directory (docs/report.md). ``document`` gives every figure of the ads as one
JSON document or CSV rows (``larkps stats``); ``explain`` puts one path's figures in words
(``larkps explain``). Both are pure.

Public (what other stages may import):

- ``adapter``: report_input
- ``model``: Level, ReportInput, ReportMetric
- ``output``: Written, write_report
- ``document``: PathSelector, parse_path, render_document, stats_document
- ``explain``: PathFacts, Rules, explain_path
"""
