"""What the table code needs from a database connection, and the base both backends share.

The table mixins (`core`, `ops`, `revocations`) hold SQL that SQLite and PostgreSQL both run,
written with `?` placeholders; a backend supplies `_db` (a `Connection`), `transaction()` and
the few hooks where the engines differ (`_insert_rows`, `_lock_schema`). Rows support access by
column name and by position, and `dict(row)`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Protocol

from verifier.model import Alert
from verifier.store.schema import MIGRATIONS, VERSION_TABLE, Dialect


class Row(Protocol):
    def __getitem__(self, key: int | str, /) -> Any: ...
    def keys(self) -> list[str]: ...


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    def execute(self, sql: str, args: Sequence[Any] = (), /) -> Cursor: ...
    def executemany(self, sql: str, args: Iterable[Sequence[Any]], /) -> Cursor: ...


class SqlBase:
    """State and hooks shared by the table mixins; a backend class fills them in."""

    _db: Connection
    dialect: Dialect

    def transaction(self) -> AbstractContextManager[None]:
        raise NotImplementedError

    def alert(self, alert_id: int) -> Alert | None:
        raise NotImplementedError

    def in_transaction(self) -> bool:
        """Whether the calling thread has a transaction open on this store."""
        raise NotImplementedError

    def _tx(self) -> AbstractContextManager[None]:
        return self.transaction()

    def _joined(self) -> AbstractContextManager[None]:
        """For a method whose failure reaches its caller: a transaction of its own, or the
        caller's as it is. On PostgreSQL a failed statement aborts the whole transaction, so no
        part of the method can commit without the rest and a savepoint would only add two
        round trips; SQLite keeps one (it costs no round trip, and a caller that swallowed the
        error could otherwise commit half the method)."""
        if self.dialect == "postgresql" and self.in_transaction():
            return nullcontext()
        return self.transaction()

    def _one(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self._db.execute(sql, args).fetchone()

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        return list(self._db.execute(sql, args).fetchall())

    def _insert_rows(self, table: str, columns: Sequence[str],
                     rows: Sequence[Sequence[Any]]) -> None:
        """Insert many rows in the caller's transaction (PostgreSQL overrides with COPY)."""
        if rows:
            self._db.executemany(
                f"INSERT INTO {table}({', '.join(columns)})"
                f" VALUES ({','.join('?' * len(columns))})", rows)

    def _lock_schema(self) -> None:
        """Serialise schema changes between processes (inside the migration's transaction)."""

    def _after_baseline(self) -> None:
        """Bring a database made before versioning up to migration 1 (SQLite only)."""

    def _before_migration(self, version: int) -> None:
        """Adapt tables made outside versioning before migration `version` runs (SQLite's
        former evidence log file)."""

    def _after_migration(self, version: int) -> None:
        """Move the data migration `version`'s statements cannot (a table mixin overrides it,
        calling super(): `verifier.store.gpu_bindings`)."""

    def migrate(self) -> list[int]:
        """Apply the migrations this database lacks, all in one transaction; their versions."""
        applied: list[int] = []
        with self.transaction():
            self._lock_schema()
            self._db.execute(VERSION_TABLE)
            done = {int(r[0]) for r in self._all("SELECT version FROM schema_version")}
            for migration in MIGRATIONS:
                if migration.version in done:
                    continue
                self._before_migration(migration.version)
                for statement in migration.sql(self.dialect):
                    self._db.execute(statement)
                if migration.version == 1:
                    self._after_baseline()
                self._after_migration(migration.version)
                self._db.execute("INSERT INTO schema_version VALUES (?,?,?)",
                                 (migration.version, migration.name, time.time_ns()))
                applied.append(migration.version)
        return applied

    def schema_version(self) -> int:
        row = self._one("SELECT MAX(version) FROM schema_version")
        return int(row[0]) if row and row[0] is not None else 0
