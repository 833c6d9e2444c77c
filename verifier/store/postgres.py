"""`Store` on PostgreSQL (psycopg 3 and its connection pool): several verifier processes, or
several threads of one, can share one database.

The tables' SQL is the one `SqliteStore` runs (`core`, `ops`, `revocations`); this module adapts
it: `?` placeholders become psycopg's `%s`, rows read by name and by position, driver errors
become the package's typed errors, and ingestion (`ingest_pg`) pipelines its reads and writes
a group of batches with one COPY and one statement.

Transactions: a `transaction()` takes a connection from the pool for the calling thread and
holds it until the outermost block ends (BEGIN … COMMIT; nested blocks are SAVEPOINTs, so a
failing part rolls back alone, as on SQLite). A call outside any transaction takes a pooled
connection in autocommit mode for each statement, so each mutating method, being one statement
or one `transaction()`, is one transaction: when it returns, PostgreSQL has committed it
(durable with the server's default `synchronous_commit = on`).
"""

from __future__ import annotations

import functools
import itertools
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg.errors
from psycopg.rows import RowMaker
from psycopg_pool import ConnectionPool, PoolTimeout

from verifier.store.baselines import BaselineTables
from verifier.store.core import CoreTables
from verifier.store.errors import ConstraintError, DuplicateKeyError, StoreError
from verifier.store.evidence_log import EvidenceLogTables
from verifier.store.fleet import FleetTables
from verifier.store.gpu_bindings import GpuBindingTables
from verifier.store.ingest_pg import PostgresIngest
from verifier.store.ops import OpsTables
from verifier.store.replicas import ReplicaTables
from verifier.store.revocations import RevocationTables
from verifier.store.schema import Dialect

# Any constant: the key of the advisory lock that serialises migrations between processes.
_MIGRATION_LOCK = 0x4C46_0001
_KEY_DETAIL = re.compile(r"Key \((.+?)\)=")


@functools.lru_cache(maxsize=2048)
def _pg(sql: str) -> str:
    """The tables' `?` placeholders as psycopg's `%s` (a literal % doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PgRow:
    """A result row readable like `sqlite3.Row`: by column name, by position, `dict(row)`."""

    __slots__ = ("_index", "_values")

    def __init__(self, index: dict[str, int], values: Sequence[Any]) -> None:
        self._index = index
        self._values = values

    def __getitem__(self, key: int | str, /) -> Any:
        return self._values[key if isinstance(key, int) else self._index[key]]

    def keys(self) -> list[str]:
        return list(self._index)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def _row_factory(cursor: Any) -> RowMaker[PgRow]:  # a psycopg cursor
    index = {column.name: i for i, column in enumerate(cursor.description or ())}

    def make(values: Sequence[Any]) -> PgRow:
        return PgRow(index, values)

    return make


class _Result:
    """A finished statement's rows and row count (read before its connection went back)."""

    def __init__(self, rows: list[PgRow], rowcount: int) -> None:
        self._rows = rows
        self._next = 0
        self.rowcount = rowcount

    def fetchone(self) -> PgRow | None:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def fetchall(self) -> list[PgRow]:
        rest = self._rows[self._next:]
        self._next = len(self._rows)
        return rest

    def __iter__(self) -> Iterator[PgRow]:
        return iter(self.fetchall())


def _integrity(exc: psycopg.errors.IntegrityError) -> StoreError:
    if isinstance(exc, psycopg.errors.UniqueViolation):
        found = _KEY_DETAIL.match(exc.diag.message_detail or "")
        columns = [c.strip() for c in found.group(1).split(",")] if found else ["key"]
        return DuplicateKeyError(exc.diag.table_name or "?", columns)
    return ConstraintError(str(exc).strip())


class _Connection:
    """`Connection` for the table code: each statement on the thread's transaction connection,
    or alone on a pooled connection when the thread has no transaction open."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    def execute(self, sql: str, args: Sequence[Any] = (), /) -> _Result:
        with self._store._connection() as conn, conn.cursor(row_factory=_row_factory) as cur:
            try:
                cur.execute(_pg(sql), args)
            except psycopg.errors.IntegrityError as exc:
                raise _integrity(exc) from exc
            rows = cur.fetchall() if cur.description is not None else []
            return _Result(rows, cur.rowcount)

    def executemany(self, sql: str, args: Iterable[Sequence[Any]], /) -> _Result:
        params = list(args)
        if not params:
            return _Result([], 0)
        with self._store._connection() as conn, conn.cursor() as cur:
            try:
                cur.executemany(_pg(sql), params)
            except psycopg.errors.IntegrityError as exc:
                raise _integrity(exc) from exc
            return _Result([], cur.rowcount)


class PostgresStore(CoreTables, OpsTables, RevocationTables, ReplicaTables, FleetTables,
                    EvidenceLogTables, BaselineTables, GpuBindingTables, PostgresIngest):
    """`Store` on PostgreSQL at `url` (a libpq URL, e.g. postgresql://user@host/db). Applies
    the missing migrations when opened (under an advisory lock, so replicas may start at once).
    Safe to call from several threads: each thread's transaction has its own connection."""

    dialect: Dialect = "postgresql"

    def __init__(self, url: str, *, max_connections: int = 8,
                 connect_timeout_s: float = 30.0) -> None:
        try:  # one plain connection first: an unreachable server fails at once, with the reason
            psycopg.connect(url, connect_timeout=max(1, round(connect_timeout_s))).close()
        except psycopg.OperationalError as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "no reason given"
            raise StoreError(f"cannot connect to PostgreSQL at {_safe(url)}: {reason}") from exc
        self._pool = ConnectionPool(url, min_size=1, max_size=max_connections,
                                    kwargs={"autocommit": True}, open=False,
                                    name="lightfence-verifier")
        try:
            self._pool.open(wait=True, timeout=connect_timeout_s)
        except PoolTimeout as exc:
            self._pool.close()
            raise StoreError(f"cannot connect to PostgreSQL at {_safe(url)} within "
                             f"{connect_timeout_s:g} s") from exc
        self._local = threading.local()
        self._db = _Connection(self)
        try:
            self.migrate()
        except BaseException:
            self._pool.close()
            raise

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is not None:
            yield conn
        else:
            with self._pool.connection() as pooled:
                yield pooled

    def _lock_schema(self) -> None:
        self._db.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))

    def _insert_rows(self, table: str, columns: Sequence[str],
                     rows: Sequence[Sequence[Any]]) -> None:
        """COPY: one round trip for the whole batch, in the caller's transaction."""
        if not rows:
            return
        with self._connection() as conn, conn.cursor() as cur:
            try:
                with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            except psycopg.errors.IntegrityError as exc:
                raise _integrity(exc) from exc

    def transaction(self) -> _Tx:
        """One transaction around several store calls (their own transactions nest inside)."""
        return _Tx(self)

    def in_transaction(self) -> bool:
        return getattr(self._local, "conn", None) is not None

    def close(self) -> None:
        self._pool.close()


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


_SAVEPOINTS = itertools.count(1)


class _Tx:
    """BEGIN … COMMIT on a connection held by this thread, rolled back on any exception; nested,
    a SAVEPOINT (an inner failure undoes only the inner work; nothing is durable before the
    outermost COMMIT)."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self._savepoint: str | None = None

    def __enter__(self) -> None:
        local = self._store._local
        conn: psycopg.Connection[Any] | None = getattr(local, "conn", None)
        if conn is not None:
            self._savepoint = f"sp{next(_SAVEPOINTS)}"
            conn.execute(f"SAVEPOINT {self._savepoint}")
            return
        conn = self._store._pool.getconn()
        try:
            conn.execute("BEGIN")
        except BaseException:
            self._store._pool.putconn(conn)
            raise
        local.conn = conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        local = self._store._local
        conn: psycopg.Connection[Any] = local.conn
        if self._savepoint is not None:
            if exc_type is not None:
                conn.execute(f"ROLLBACK TO {self._savepoint}")
            conn.execute(f"RELEASE {self._savepoint}")
            return
        local.conn = None
        try:
            conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
        finally:
            self._store._pool.putconn(conn)
