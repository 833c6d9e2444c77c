"""`Store` on one SQLite file: the embedded default for one-machine use and the demo.

One connection in WAL mode, used from one thread at a time (`verifier.db.Db` gives the verifier
one database thread). Each mutating method is one transaction: when it returns, the change is
durable against a process crash (WAL; `synchronous=FULL` adds power loss).
"""

from __future__ import annotations

import itertools
import re
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from verifier.store.baselines import BaselineTables
from verifier.store.core import CoreTables
from verifier.store.errors import ConstraintError, DuplicateKeyError, StoreError
from verifier.store.evidence_log import EvidenceLogTables
from verifier.store.fleet import FleetTables
from verifier.store.gpu_bindings import GpuBindingTables
from verifier.store.ingest import IngestTables
from verifier.store.ops import OpsTables
from verifier.store.replicas import ReplicaTables
from verifier.store.revocations import RevocationTables
from verifier.store.schema import EVIDENCE_LOG_VERSION, Dialect

_UNIQUE = re.compile(r"UNIQUE constraint failed: (.+)")


def _integrity(exc: sqlite3.IntegrityError) -> StoreError:
    """The driver's message as the package's typed error ("UNIQUE constraint failed: t.a, t.b")."""
    found = _UNIQUE.match(str(exc))
    if found:
        qualified = [part.strip() for part in found.group(1).split(",")]
        return DuplicateKeyError(qualified[0].split(".")[0],
                                 [part.split(".")[-1] for part in qualified])
    return ConstraintError(str(exc))


class _Connection:
    """The sqlite3 connection, raising `StoreError`s for broken constraints."""

    def __init__(self, raw: sqlite3.Connection) -> None:
        self.raw = raw

    def execute(self, sql: str, args: Sequence[Any] = (), /) -> sqlite3.Cursor:
        try:
            return self.raw.execute(sql, args)
        except sqlite3.IntegrityError as exc:
            raise _integrity(exc) from exc

    def executemany(self, sql: str, args: Iterable[Sequence[Any]], /) -> sqlite3.Cursor:
        try:
            return self.raw.executemany(sql, args)
        except sqlite3.IntegrityError as exc:
            raise _integrity(exc) from exc


class SqliteStore(CoreTables, OpsTables, RevocationTables, ReplicaTables, FleetTables,
                  EvidenceLogTables, BaselineTables, GpuBindingTables, IngestTables):
    """`Store` on one SQLite connection in WAL mode; used from a single thread at a time."""

    dialect: Dialect = "sqlite"

    def __init__(self, path: Path, synchronous: str = "NORMAL") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves so a method is one transaction.
        raw = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        raw.row_factory = sqlite3.Row
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute(f"PRAGMA synchronous={synchronous}")
        raw.execute("PRAGMA busy_timeout=5000")
        self._raw = raw
        self._db = _Connection(raw)
        self.migrate()

    def _after_baseline(self) -> None:
        """A database created before versioning kept its old tables (the baseline says CREATE
        TABLE IF NOT EXISTS): add the columns they lack; the defaults give old rows their
        previous meaning."""
        added = {
            "policies": [("tolerate_faulty_landmarks", "INTEGER NOT NULL DEFAULT 0"),
                         ("verified_ttl_s", "REAL"),  # NULL: round interval + timeout
                         ("min_key_protection", "TEXT NOT NULL DEFAULT 'software'")],
            "verdicts": [("reason_code", "TEXT"),
                         ("key_protection", "TEXT NOT NULL DEFAULT 'software'")],
            "alerts": [("muted_by_rule", "INTEGER")],
        }
        for table, columns in added.items():
            present = {r["name"] for r in self._all(f"PRAGMA table_info({table})")}
            for name, declaration in columns:
                if name not in present:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {declaration}")

    def _before_migration(self, version: int) -> None:
        """The evidence log lived in this file before it was a migration; a log written before
        per-chip sequence numbers lacks the column (its old entries keep NULL there: their
        bytes, hence their leaf hashes, cannot change, and each chip's chain starts after)."""
        if version != EVIDENCE_LOG_VERSION:
            return
        present = {r["name"] for r in self._all("PRAGMA table_info(translog_entries)")}
        if present and "chip_seq" not in present:
            self._db.execute("ALTER TABLE translog_entries ADD COLUMN chip_seq INTEGER")

    def close(self) -> None:
        self._raw.close()

    def transaction(self) -> _Tx:
        """One transaction around several store calls (their own transactions nest inside)."""
        return _Tx(self._raw)

    def in_transaction(self) -> bool:
        return self._raw.in_transaction


_SAVEPOINTS = itertools.count(1)


class _Tx:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any exception. Nested inside an open
    transaction it is a SAVEPOINT: an inner failure undoes only the inner work, and nothing is
    durable before the outermost COMMIT."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._savepoint: str | None = None

    def __enter__(self) -> None:
        if self._db.in_transaction:
            self._savepoint = f"sp{next(_SAVEPOINTS)}"
            self._db.execute(f"SAVEPOINT {self._savepoint}")
        else:
            self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._savepoint is not None:
            if exc_type is not None:
                self._db.execute(f"ROLLBACK TO {self._savepoint}")
            self._db.execute(f"RELEASE {self._savepoint}")
        elif exc_type is None:
            self._db.execute("COMMIT")
        else:
            self._db.execute("ROLLBACK")
