"""Ingest: poll every archive incrementally and commit what is new to the state store.

Worker threads per archive, one committer; a big cycle commits through a writer child
process (``python -m larkps.ingest.writer``). Which archives are due comes from their cadence.

Public (what other stages may import):

- ``runner``: ArchivePlan, IngestOptions, IngestReport, Ingester, Progress
- ``cadence``: not_due, slack_for
"""
