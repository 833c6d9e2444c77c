"""A persistent, append-only Merkle-tree log (RFC 9162 style) in the verifier's SQLite file.

Tables (all prefixed ``translog_``, next to the verifier's own):
- ``translog_entries``: one row per entry: index, leaf hash, the entry bytes, and metadata
  (kind, chip id, time, the chip's sequence number) used only to find entries for an export;
  the metadata is not hashed (evidence entries repeat the sequence number inside, hashed).
- ``translog_nodes``: the hash of every *complete* aligned subtree of height >= 1. Such a
  subtree never changes once its last leaf is in, so it is written in the same transaction
  as that leaf; a root or proof then needs O(log² n) indexed lookups, never a rescan.
- ``translog_tree_heads``: every signed tree head issued.

Crash safety: each append is one ``BEGIN IMMEDIATE`` transaction on a WAL database with
``synchronous=FULL``, so once `append` returns the entry survives a process kill or power loss,
and a crash mid-append leaves no partial entry or node.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol.keys import Signer
from protocol.merkle import (
    SignedTreeHead,
    consistency_path,
    inclusion_path,
    leaf_hash,
    node_hash,
    range_hash,
)
from verifier.errors import InvalidInputError, NotFoundError

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS translog_entries (
    idx INTEGER PRIMARY KEY,
    leaf_hash BLOB NOT NULL,
    entry BLOB NOT NULL,
    kind TEXT NOT NULL,
    chip_id TEXT,
    time_unix_ns INTEGER,
    chip_seq INTEGER
);
CREATE INDEX IF NOT EXISTS translog_entries_by_chip
    ON translog_entries (chip_id, time_unix_ns);
CREATE TABLE IF NOT EXISTS translog_nodes (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS translog_tree_heads (
    id INTEGER PRIMARY KEY,
    tree_size INTEGER NOT NULL,
    timestamp_unix_s INTEGER NOT NULL,
    root BLOB NOT NULL,
    log_public_key BLOB NOT NULL,
    signature BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS translog_tree_heads_by_time
    ON translog_tree_heads (timestamp_unix_s);
"""

# Logs written before per-chip sequence numbers lack the column; their old entries keep NULL
# there (their bytes, hence their leaf hashes, cannot change) and the chain starts after them.
_CHIP_SEQ_INDEX = """
CREATE UNIQUE INDEX IF NOT EXISTS translog_entries_by_chip_seq
    ON translog_entries (chip_id, chip_seq) WHERE chip_seq IS NOT NULL;
"""

# Complete-subtree hashes are immutable, so caching them can never serve a stale value.
_NODE_CACHE_MAX = 65_536


@dataclass(frozen=True, slots=True)
class LogEntry:
    index: int
    entry: bytes
    kind: str
    chip_id: str | None
    time_unix_ns: int | None
    chip_seq: int | None = None  # None: not chained (no chip, or written before chaining)


@dataclass(frozen=True, slots=True)
class ChipHead:
    """A chip's latest chained entry: its sequence number, log index and leaf hash."""

    seq: int
    index: int
    leaf_hash: bytes


# Builds the entry bytes once the chip's next sequence number and previous leaf hash are known.
ChainedEntryBuilder = Callable[[int, bytes | None], bytes]


class TransparencyLog:
    """Append-only log over SQLite; thread-safe (one connection behind a lock)."""

    def __init__(self, path: Path | str) -> None:
        self._path = Path(path)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves so each append is exactly one
        # transaction; check_same_thread=False because the lock below serialises all use.
        self._db = sqlite3.connect(
            self._path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        self._lock = threading.Lock()
        self._cache: dict[tuple[int, int], bytes] = {}
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(translog_entries)")}
        if "chip_seq" not in columns:
            self._db.execute("ALTER TABLE translog_entries ADD COLUMN chip_seq INTEGER")
            logger.info("evidence log %s: added per-chip sequence numbers", self._path)
        self._db.executescript(_CHIP_SEQ_INDEX)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> TransparencyLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            # IMMEDIATE takes the write lock up front, so the size read below cannot race
            # another process appending to the same file.
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @property
    def size(self) -> int:
        with self._lock:
            return self._size(self._db)

    @staticmethod
    def _size(db: sqlite3.Connection) -> int:
        row = db.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM translog_entries").fetchone()
        return int(row[0])

    def append(
        self,
        entry: bytes,
        *,
        kind: str = "entry",
        chip_id: str | None = None,
        time_unix_ns: int | None = None,
    ) -> int:
        """Append ``entry``; return its index. Durable on return."""
        if not isinstance(entry, bytes):
            raise InvalidInputError("a log entry must be bytes")
        with self._transaction() as db:
            index = self._insert(
                db, entry, kind=kind, chip_id=chip_id, time_unix_ns=time_unix_ns, chip_seq=None
            )
        logger.debug("log entry %d appended (kind=%s chip=%s)", index, kind, chip_id)
        return index

    def append_chained(
        self, build: ChainedEntryBuilder, *, kind: str, chip_id: str, time_unix_ns: int
    ) -> tuple[int, int]:
        """Append the next entry of ``chip_id``'s chain; return (log index, chip sequence).

        ``build(seq, previous_leaf_hash)`` makes the entry bytes inside the write transaction,
        so two appends for one chip can never take the same number or link to the same
        predecessor. The first chained entry of a chip gets 0 and None. Durable on return.
        """
        with self._transaction() as db:
            head = self._chip_head(db, chip_id, None)
            seq = 0 if head is None else head.seq + 1
            entry = build(seq, None if head is None else head.leaf_hash)
            if not isinstance(entry, bytes):
                raise InvalidInputError("a log entry must be bytes")
            index = self._insert(
                db, entry, kind=kind, chip_id=chip_id, time_unix_ns=time_unix_ns, chip_seq=seq
            )
        logger.debug("log entry %d appended (kind=%s chip=%s seq=%d)", index, kind, chip_id, seq)
        return index, seq

    def _insert(
        self,
        db: sqlite3.Connection,
        entry: bytes,
        *,
        kind: str,
        chip_id: str | None,
        time_unix_ns: int | None,
        chip_seq: int | None,
    ) -> int:
        leaf = leaf_hash(entry)
        index = self._size(db)
        db.execute(
            "INSERT INTO translog_entries"
            " (idx, leaf_hash, entry, kind, chip_id, time_unix_ns, chip_seq)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (index, leaf, entry, kind, chip_id, time_unix_ns, chip_seq),
        )
        # Leaf `index` completes the subtree at level l iff (index + 1) is a multiple of 2**l.
        level, position, right = 0, index, leaf
        while position & 1:
            left = self._perfect_in(db, level, position - 1)
            level, position = level + 1, position >> 1
            right = node_hash(left, right)
            db.execute(
                "INSERT INTO translog_nodes (level, idx, hash) VALUES (?, ?, ?)",
                (level, position, right),
            )
        return index

    @staticmethod
    def _chip_head(db: sqlite3.Connection, chip_id: str, tree_size: int | None) -> ChipHead | None:
        limit = 2**63 - 1 if tree_size is None else tree_size
        row = db.execute(
            "SELECT chip_seq, idx, leaf_hash FROM translog_entries"
            " WHERE chip_id = ? AND chip_seq IS NOT NULL AND idx < ?"
            " ORDER BY chip_seq DESC LIMIT 1",
            (chip_id, limit),
        ).fetchone()
        return None if row is None else ChipHead(int(row[0]), int(row[1]), bytes(row[2]))

    def chip_head(self, chip_id: str, tree_size: int | None = None) -> ChipHead | None:
        """``chip_id``'s latest chained entry among the first ``tree_size`` entries, if any."""
        with self._lock:
            n = self._check_size(self._db, tree_size)
            return self._chip_head(self._db, chip_id, n)

    def _perfect_in(self, db: sqlite3.Connection, level: int, index: int) -> bytes:
        key = (level, index)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        if level == 0:
            row = db.execute(
                "SELECT leaf_hash FROM translog_entries WHERE idx = ?", (index,)
            ).fetchone()
        else:
            row = db.execute(
                "SELECT hash FROM translog_nodes WHERE level = ? AND idx = ?", (level, index)
            ).fetchone()
        if row is None:
            raise NotFoundError(f"log has no complete subtree at level {level} index {index}")
        value = bytes(row[0])
        if len(self._cache) >= _NODE_CACHE_MAX:
            self._cache.clear()
        self._cache[key] = value
        return value

    def _check_size(self, db: sqlite3.Connection, tree_size: int | None) -> int:
        size = self._size(db)
        if tree_size is None:
            return size
        if not 0 <= tree_size <= size:
            raise NotFoundError(f"tree size {tree_size} is beyond the log's {size} entries")
        return tree_size

    def root(self, tree_size: int | None = None) -> bytes:
        with self._lock:
            n = self._check_size(self._db, tree_size)
            return range_hash(lambda lv, i: self._perfect_in(self._db, lv, i), 0, n)

    def inclusion_proof(self, index: int, tree_size: int | None = None) -> list[bytes]:
        with self._lock:
            n = self._check_size(self._db, tree_size)
            if not 0 <= index < n:
                raise NotFoundError(f"entry {index} is not in a tree of size {n}")
            return inclusion_path(lambda lv, i: self._perfect_in(self._db, lv, i), index, n)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        with self._lock:
            n = self._check_size(self._db, new_size)
            if not 0 <= old_size <= n:
                raise NotFoundError(f"no consistency proof from size {old_size} to {n}")
            return consistency_path(lambda lv, i: self._perfect_in(self._db, lv, i), old_size, n)

    def entry(self, index: int) -> LogEntry:
        with self._lock:
            row = self._db.execute(f"{_ENTRY_COLUMNS} WHERE idx = ?", (index,)).fetchone()
        if row is None:
            raise NotFoundError(f"log has no entry {index}")
        return _entry_from_row(row)

    def find_entries(
        self, chip_id: str, from_unix_ns: int, to_unix_ns: int, tree_size: int | None = None
    ) -> list[LogEntry]:
        """Entries about ``chip_id`` with from <= time <= to (and index < tree_size), by index."""
        return self._chip_entries(
            "time_unix_ns", from_unix_ns, to_unix_ns, chip_id, tree_size, order_by="idx"
        )

    def find_chain(
        self, chip_id: str, first_seq: int, last_seq: int, tree_size: int | None = None
    ) -> list[LogEntry]:
        """``chip_id``'s chained entries with first <= seq <= last (and index < tree_size)."""
        return self._chip_entries(
            "chip_seq", first_seq, last_seq, chip_id, tree_size, order_by="chip_seq"
        )

    def _chip_entries(
        self, column: str, low: int, high: int, chip_id: str, tree_size: int | None, *,
        order_by: str,
    ) -> list[LogEntry]:  # fmt: skip
        """``chip_id``'s entries with low <= ``column`` <= high and index < tree_size; the column
        names are this module's constants, never input."""
        with self._lock:
            n = self._check_size(self._db, tree_size)
            rows = self._db.execute(
                f"{_ENTRY_COLUMNS} WHERE chip_id = ? AND {column} BETWEEN ? AND ? AND idx < ?"
                f" ORDER BY {order_by}",
                (chip_id, low, high, n),
            ).fetchall()
        return [_entry_from_row(r) for r in rows]

    def sign_tree_head(self, signer: Signer, now_unix_s: int) -> SignedTreeHead:
        """Sign and store the head of the whole log as it stands now."""
        with self._transaction() as db:
            size = self._size(db)
            root = range_hash(lambda lv, i: self._perfect_in(db, lv, i), 0, size)
            head = SignedTreeHead.sign(signer, size, int(now_unix_s), root)
            db.execute(
                "INSERT INTO translog_tree_heads"
                " (tree_size, timestamp_unix_s, root, log_public_key, signature)"
                " VALUES (?, ?, ?, ?, ?)",
                (head.tree_size, head.timestamp_unix_s, head.root, head.log_public_key,
                 head.signature),
            )  # fmt: skip
        logger.info("signed tree head size=%d root=%s", head.tree_size, head.root.hex())
        return head

    def tree_heads(self) -> list[SignedTreeHead]:
        """Every signed tree head, oldest first."""
        with self._lock:
            rows = self._db.execute(f"{_HEAD_COLUMNS} ORDER BY id").fetchall()
        return [_head_from_row(r) for r in rows]

    def latest_tree_head(self) -> SignedTreeHead | None:
        with self._lock:
            row = self._db.execute(f"{_HEAD_COLUMNS} ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else _head_from_row(row)


_ENTRY_COLUMNS = "SELECT idx, entry, kind, chip_id, time_unix_ns, chip_seq FROM translog_entries"


def _entry_from_row(row: tuple[Any, ...]) -> LogEntry:
    index, entry, kind, chip_id, time_ns, seq = row
    return LogEntry(int(index), bytes(entry), str(kind), chip_id, time_ns, seq)


_HEAD_COLUMNS = (
    "SELECT tree_size, timestamp_unix_s, root, log_public_key, signature FROM translog_tree_heads"
)


def _head_from_row(row: tuple[Any, ...]) -> SignedTreeHead:
    size, timestamp, root, key, signature = row
    return SignedTreeHead(int(size), int(timestamp), bytes(root), bytes(key), bytes(signature))
