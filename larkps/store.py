"""The state store: one SQLite file (WAL, transactions) in the state directory.

A crash at any moment loses nothing committed. Modules that keep state create
their own tables through :meth:`Store.ensure_schema` and write inside
:meth:`Store.transaction`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from larkps.errors import StateError

STATE_FILE = "larkps.sqlite"


class Store:
    """A connection to the state database with explicit transactions."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.connection = sqlite3.connect(path, isolation_level=None, timeout=30.0)
            self.connection.execute("PRAGMA journal_mode=WAL")
            self.connection.execute("PRAGMA synchronous=FULL")
            self.connection.execute("PRAGMA foreign_keys=ON")
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"cannot open state database {path}: {exc}") from None

    @classmethod
    def in_directory(cls, state_dir: Path) -> Store:
        return cls(state_dir / STATE_FILE)

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception."""
        try:
            self.connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StateError(f"cannot write state database {self.path}: {exc}") from None
        try:
            yield self.connection
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        try:
            self.connection.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StateError(f"cannot commit to state database {self.path}: {exc}") from None

    def ensure_schema(self, statements: str) -> None:
        """Run idempotent DDL (CREATE TABLE IF NOT EXISTS ...) in one transaction."""
        with self.transaction() as connection:
            for statement in statements.split(";"):
                if statement.strip():
                    connection.execute(statement)
