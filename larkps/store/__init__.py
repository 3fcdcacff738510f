"""The state store: one SQLite file, its one versioned schema, points, run reports.

Every table is declared in :mod:`larkps.store.schema`; :class:`~larkps.store.db.Store` opens
the file, migrates an older store in one transaction and refuses a newer one. Statistics keep
their own state (rollups, alarm hysteresis) in the same store, through ``Store``.

Public (what other stages may import):

- ``db``: STATE_FILE, Store, write_transaction
- ``schema``: Step, run_script, upgrade, version (for other versioned SQLite files)
- ``points``: Commit, IngestStore, RowCommit, StoredSeries, fresh_points, page_rows, row_commit
- ``runs``: ArchiveHealth (and the module itself, as ``runs``)
"""
