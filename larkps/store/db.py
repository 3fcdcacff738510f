"""The state store: one SQLite file (WAL, transactions) in the state directory.

A crash at any moment loses nothing committed. Opening a store brings its tables to
the schema of this larkps (:mod:`larkps.store.schema` declares every table and the steps
from older versions, run in one transaction) or refuses a store of a newer larkps;
modules read and write inside :meth:`Store.transaction`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from larkps.errors import LarkpsError, StateError
from larkps.store import schema

STATE_FILE = "larkps.sqlite"


class Store:
    """A connection to the state database with explicit transactions.

    ``steps`` and ``tables`` are the schema's (:data:`larkps.store.schema.MIGRATIONS`,
    :data:`larkps.store.schema.TABLES`); a test passes its own.
    """

    def __init__(
        self,
        path: Path,
        steps: Sequence[schema.Step] = schema.MIGRATIONS,
        tables: str = schema.TABLES,
    ) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.connection = sqlite3.connect(path, isolation_level=None, timeout=30.0)
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"cannot open state database {path}: {exc}") from None
        try:
            self._open(steps, tables)
        except BaseException:
            self.connection.close()
            raise

    def _open(self, steps: Sequence[schema.Step], tables: str) -> None:
        """Refuse a newer schema before changing anything, then upgrade an older one."""
        try:
            found = schema.version(self.connection)
            schema.refuse_newer(found, self.path, len(steps))
            self.connection.execute("PRAGMA journal_mode=WAL")
            self.connection.execute("PRAGMA synchronous=FULL")
            self.connection.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            raise StateError(f"cannot open state database {self.path}: {exc}") from None
        if found == len(steps):
            return
        try:
            with self.transaction() as db:
                schema.upgrade(db, self.path, steps, tables)
        except sqlite3.Error as exc:
            raise StateError(
                f"cannot upgrade state database {self.path} from schema version {found} "
                f"to {len(steps)} (it is unchanged): {exc}"
            ) from None

    @classmethod
    def in_directory(cls, state_dir: Path) -> Store:
        return cls(state_dir / STATE_FILE)

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception."""
        return write_transaction(self.connection, f"state database {self.path}", StateError)


@contextmanager
def write_transaction(
    connection: sqlite3.Connection, what: str, error: type[LarkpsError]
) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception; SQLite failures to
    begin or commit raise ``error`` naming ``what`` (a file, as users know it)."""
    try:
        connection.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise error(f"cannot write {what}: {exc}") from None
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    try:
        connection.execute("COMMIT")
    except sqlite3.Error as exc:
        raise error(f"cannot commit to {what}: {exc}") from None
