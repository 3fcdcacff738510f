"""The state store: one SQLite file (WAL, transactions) in the state directory.

A crash at any moment loses nothing committed. Modules that keep state create
their own tables through :meth:`Store.ensure_schema` (idempotent DDL) or, where a
table's shape has changed since stores were first written, :meth:`Store.migrate`
(numbered steps, each store upgraded once, in one transaction), and write inside
:meth:`Store.transaction`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from larkps.errors import StateError

STATE_FILE = "larkps.sqlite"
#: One schema change: DDL text (statements split on ";") or a function of the connection.
Step = str | Callable[[sqlite3.Connection], None]
_VERSIONS = """
CREATE TABLE IF NOT EXISTS schema_versions (
    component TEXT PRIMARY KEY,
    version INTEGER NOT NULL
)"""


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
            _run_script(connection, statements)

    def migrate(self, component: str, steps: Sequence[Step]) -> None:
        """Bring ``component``'s tables to version ``len(steps)``.

        ``steps[i]`` takes the tables from version i to i + 1 (version 0: what the
        store held before versions were recorded, so step 0 must be idempotent DDL).
        The steps still to run and the new version number are one transaction: a
        crash leaves the old version whole, and two processes upgrade it once.
        """
        if self._version(component) == len(steps):
            return
        with self.transaction() as connection:
            connection.execute(_VERSIONS)
            done = self._version(component)
            if done > len(steps):
                raise StateError(
                    f"state database {self.path}: {component} tables are at version {done}, "
                    f"newer than this larkps knows ({len(steps)})"
                )
            for step in steps[done:]:
                if callable(step):
                    step(connection)
                else:
                    _run_script(connection, step)
            connection.execute(
                "INSERT INTO schema_versions (component, version) VALUES (?, ?) "
                "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                (component, len(steps)),
            )

    def _version(self, component: str) -> int:
        """The recorded version of ``component`` (0: none recorded yet)."""
        try:
            row = self.connection.execute(
                "SELECT version FROM schema_versions WHERE component = ?", (component,)
            ).fetchone()
        except sqlite3.OperationalError:  # no versions table yet
            return 0
        return 0 if row is None else int(row[0])


def _run_script(connection: sqlite3.Connection, script: str) -> None:
    for statement in script.split(";"):
        if statement.strip():
            connection.execute(statement)
