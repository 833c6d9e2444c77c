"""The evidence log's tables in the verifier's database: one append-only Merkle sequence (RFC
9162 style) that every replica reads and only the leader appends to (docs/evidence.md).

- `translog_entries`: one row per entry: its index (dense: 0, 1, 2, … with no gap, the
  previous entry's index + 1, never a database sequence), leaf hash, the entry bytes, and the
  metadata an export looks entries up by (kind, chip, time, the chip's sequence number; not
  hashed: evidence entries repeat the sequence number inside, hashed).
- `translog_nodes`: the hash of every *complete* aligned subtree of height >= 1. Such a subtree
  never changes once its last leaf is in, so it is written in the same transaction as that
  leaf; a root or a proof then needs O(log² n) indexed lookups, fetched in one query.
- `translog_tree_heads`: every signed tree head issued.
- `evidence_queue`: entries made outside the leader's fenced transactions (an alert raised by
  ingestion or an operator on any replica), written in the transaction of what they record;
  the leader moves them into the log, oldest first (`verifier.evidence_sink`).

The table names are those of the log's former file (`<data_dir>/verifier.sqlite3`), so a
SQLite verifier adopts its existing log in place. An append runs in the caller's transaction
(the verdict's, so both commit or neither) and serialises appenders itself: SQLite's
`BEGIN IMMEDIATE` holds the write lock, PostgreSQL takes a transaction-scoped advisory lock, and
the primary key on the index refuses a second entry at any index whatever happens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from protocol.merkle import SignedTreeHead, leaf_hash, node_hash
from verifier.store.errors import StoreError
from verifier.store.sql import Row, SqlBase

# Any constant: the key of the advisory lock that makes PostgreSQL appenders take turns.
_LOG_LOCK = 0x4C46_0002


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


@dataclass(frozen=True, slots=True)
class _AppendPoint:
    """Read under the log's lock: the next entry's index, its chip's latest chained entry,
    and the hashes of the complete subtrees the new leaf closes (the left halves, level 0
    first)."""

    index: int
    chip_head: ChipHead | None
    lefts: tuple[bytes, ...]


# Builds the entry bytes once the chip's next sequence number and previous leaf hash are known.
ChainedEntryBuilder = Callable[[int, bytes | None], bytes]


@dataclass(frozen=True, slots=True)
class QueuedEvidence:
    """An evidence record waiting for the leader to append it (its body is canonical JSON
    text, before the chip's chain link is added)."""

    queue_id: int
    kind: str
    chip_id: str | None
    time_unix_ns: int
    body: str


ChipColumn = Literal["time", "seq"]
_CHIP_COLUMNS: dict[ChipColumn, tuple[str, str]] = {
    "time": ("time_unix_ns", "idx"), "seq": ("chip_seq", "chip_seq")}
_ENTRY_COLUMNS = "SELECT idx, entry, kind, chip_id, time_unix_ns, chip_seq FROM translog_entries"
_HEAD_COLUMNS = ("SELECT tree_size, timestamp_unix_s, root, log_public_key, signature"
                 " FROM translog_tree_heads")
_MAX_INDEX = 2**63 - 1
# Everything an append needs, in one round trip: (0, next index), (1, the chip's latest
# chained entry: seq, index, leaf hash) and (2, level l, the left half of the subtree at level
# l + 1 the new leaf completes: at level 0 the previous leaf, above it a stored node). The new
# leaf n completes the subtree at level l + 1 iff (n + 1) is a multiple of 2**(l + 1).
_NEXT_SQL = (
    "WITH RECURSIVE s(n) AS (SELECT COALESCE(MAX(idx) + 1, 0) FROM translog_entries),"
    " lv(level) AS (SELECT 1 UNION ALL SELECT level + 1 FROM lv WHERE level < 61)"
    " SELECT 0, n, NULL, NULL FROM s"
    " UNION ALL SELECT 1, chip_seq, idx, leaf_hash FROM (SELECT chip_seq, idx, leaf_hash"
    " FROM translog_entries WHERE chip_id = ? AND chip_seq IS NOT NULL"
    " ORDER BY chip_seq DESC LIMIT 1) h"
    " UNION ALL SELECT 2, 0, NULL, e.leaf_hash FROM s JOIN translog_entries e"
    " ON e.idx = s.n - 1 WHERE s.n % 2 = 1"
    " UNION ALL SELECT 2, t.level, NULL, t.hash FROM s CROSS JOIN lv JOIN translog_nodes t"
    " ON t.level = lv.level AND t.idx = (s.n >> lv.level) - 1"
    " WHERE (s.n + 1) % (CAST(1 AS BIGINT) << (lv.level + 1)) = 0")


def _entry(r: Row) -> LogEntry:
    return LogEntry(int(r[0]), bytes(r[1]), str(r[2]), r[3],
                    None if r[4] is None else int(r[4]), None if r[5] is None else int(r[5]))


def _head(r: Row) -> SignedTreeHead:
    return SignedTreeHead(int(r[0]), int(r[1]), bytes(r[2]), bytes(r[3]), bytes(r[4]))


class EvidenceLogTables(SqlBase):
    """The `Store` methods of the evidence log (one mutating method = one transaction, or part
    of the caller's: `SqlBase._joined`)."""

    def log_size(self) -> int:
        row = self._one("SELECT MAX(idx) FROM translog_entries")
        return 0 if row is None or row[0] is None else int(row[0]) + 1

    def log_lock(self) -> None:
        """Take the log's turn until the caller's transaction ends (call inside one): appends
        and tree-head signers then read the size and write after it without a race. SQLite's
        `BEGIN IMMEDIATE` already holds the database's write lock."""
        if self.dialect == "postgresql":
            self._db.execute("SELECT pg_advisory_xact_lock(?)", (_LOG_LOCK,))

    def log_append(self, entry: bytes, *, kind: str, chip_id: str | None,
                   time_unix_ns: int | None, chip_seq: int | None) -> int:
        """Append `entry` at the next index and write the subtrees it completes; its index."""
        with self._joined():
            self.log_lock()
            return self._log_write(self._log_next(None), entry, kind=kind, chip_id=chip_id,
                                   time_unix_ns=time_unix_ns, chip_seq=chip_seq)

    def log_append_chained(self, build: ChainedEntryBuilder, *, kind: str, chip_id: str,
                           time_unix_ns: int | None) -> tuple[int, int]:
        """Append the next link of `chip_id`'s chain: ``build(seq, previous_leaf_hash)`` makes
        the entry once the log's lock is held, so two appends for one chip can never take the
        same number or link to the same predecessor (the first link gets 0 and None). Its
        (log index, chip sequence number)."""
        with self._joined():
            self.log_lock()
            point = self._log_next(chip_id)
            head = point.chip_head
            seq = 0 if head is None else head.seq + 1
            entry = build(seq, None if head is None else head.leaf_hash)
            return self._log_write(point, entry, kind=kind, chip_id=chip_id,
                                   time_unix_ns=time_unix_ns, chip_seq=seq), seq

    def _log_next(self, chip_id: str | None) -> _AppendPoint:
        """Where the next entry goes, in one query (call under the log's lock)."""
        index, head, lefts = None, None, {}
        for part, a, b, hash_ in self._all(_NEXT_SQL, (chip_id,)):
            if part == 0:
                index = int(a)
            elif part == 1:
                head = ChipHead(int(a), int(b), bytes(hash_))
            else:
                lefts[int(a)] = bytes(hash_)
        if index is None:
            raise StoreError("the evidence log's size could not be read")
        # Leaf `index` completes the subtree at level l + 1 iff its low l + 1 bits are all 1:
        # the left halves of those subtrees, complete already, are what the query read.
        wanted = (~index & (index + 1)).bit_length() - 1
        missing = [level for level in range(wanted) if level not in lefts]
        if missing:
            raise StoreError(f"the evidence log has no complete subtree at (level, index)"
                             f" {(missing[0], (index >> missing[0]) - 1)}")
        return _AppendPoint(index, head, tuple(lefts[level] for level in range(wanted)))

    def _log_write(self, point: _AppendPoint, entry: bytes, *, kind: str,
                   chip_id: str | None, time_unix_ns: int | None,
                   chip_seq: int | None) -> int:
        """Insert the entry at `point` and the subtrees it completes (hashed here, written in
        one statement)."""
        index = point.index
        right = leaf_hash(entry)
        self._db.execute(
            "INSERT INTO translog_entries"
            " (idx, leaf_hash, entry, kind, chip_id, time_unix_ns, chip_seq)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (index, right, entry, kind, chip_id, time_unix_ns, chip_seq))
        nodes: list[object] = []
        for level, left in enumerate(point.lefts, start=1):
            right = node_hash(left, right)
            nodes += (level, index >> level, right)
        if nodes:
            self._db.execute("INSERT INTO translog_nodes (level, idx, hash) VALUES "
                             + ", ".join(["(?, ?, ?)"] * len(point.lefts)), nodes)
        return index

    def log_nodes(self, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """The hashes of complete subtrees (level, index), level 0 being the leaves; every key
        must name a complete subtree (StoreError otherwise)."""
        found: dict[tuple[int, int], bytes] = {}
        leaves = sorted({i for level, i in keys if level == 0})
        inner = sorted({(level, i) for level, i in keys if level > 0})
        for start in range(0, len(leaves), 500):
            chunk = leaves[start:start + 500]
            for r in self._all(f"SELECT idx, leaf_hash FROM translog_entries WHERE idx IN"
                               f" ({','.join('?' * len(chunk))})", chunk):
                found[(0, int(r[0]))] = bytes(r[1])
        for start in range(0, len(inner), 250):
            part = inner[start:start + 250]
            where = " OR ".join(["(level = ? AND idx = ?)"] * len(part))
            for r in self._all(f"SELECT level, idx, hash FROM translog_nodes WHERE {where}",
                               [v for key in part for v in key]):
                found[(int(r[0]), int(r[1]))] = bytes(r[2])
        missing = [key for key in keys if key not in found]
        if missing:
            raise StoreError(f"the evidence log has no complete subtree at (level, index)"
                             f" {missing[0]}")
        return found

    def log_entry(self, index: int) -> LogEntry | None:
        row = self._one(f"{_ENTRY_COLUMNS} WHERE idx = ?", (index,))
        return None if row is None else _entry(row)

    def log_chip_entries(self, chip_id: str, by: ChipColumn, low: int, high: int,
                         tree_size: int | None) -> list[LogEntry]:
        """`chip_id`'s entries with low <= time (or chain sequence number) <= high among the
        first `tree_size` entries (all: None), by index (by sequence number)."""
        column, order = _CHIP_COLUMNS[by]
        return [_entry(r) for r in self._all(
            f"{_ENTRY_COLUMNS} WHERE chip_id = ? AND {column} BETWEEN ? AND ? AND idx < ?"
            f" ORDER BY {order}",
            (chip_id, low, high, _MAX_INDEX if tree_size is None else tree_size))]

    def log_chip_head(self, chip_id: str, tree_size: int | None) -> ChipHead | None:
        """`chip_id`'s latest chained entry among the first `tree_size` entries (None: all)."""
        row = self._one(
            "SELECT chip_seq, idx, leaf_hash FROM translog_entries"
            " WHERE chip_id = ? AND chip_seq IS NOT NULL AND idx < ?"
            " ORDER BY chip_seq DESC LIMIT 1",
            (chip_id, _MAX_INDEX if tree_size is None else tree_size))
        return None if row is None else ChipHead(int(row[0]), int(row[1]), bytes(row[2]))

    def log_add_tree_head(self, head: SignedTreeHead) -> None:
        with self._tx():
            self._db.execute(
                "INSERT INTO translog_tree_heads"
                " (tree_size, timestamp_unix_s, root, log_public_key, signature)"
                " VALUES (?, ?, ?, ?, ?)",
                (head.tree_size, head.timestamp_unix_s, head.root, head.log_public_key,
                 head.signature))

    def log_tree_heads(self) -> list[SignedTreeHead]:
        """Every signed tree head, oldest first."""
        return [_head(r) for r in self._all(f"{_HEAD_COLUMNS} ORDER BY id")]

    def log_latest_tree_head(self) -> SignedTreeHead | None:
        row = self._one(f"{_HEAD_COLUMNS} ORDER BY id DESC LIMIT 1")
        return None if row is None else _head(row)

    # -- entries waiting for the leader --
    def queue_evidence(self, kind: str, chip_id: str | None, time_unix_ns: int,
                       body: str) -> None:
        with self._tx():
            self._db.execute("INSERT INTO evidence_queue (kind, chip_id, time_unix_ns, body)"
                             " VALUES (?, ?, ?, ?)", (kind, chip_id, time_unix_ns, body))

    def queued_evidence(self, limit: int) -> list[QueuedEvidence]:
        """The oldest waiting entries, in the order they were queued."""
        return [QueuedEvidence(int(r[0]), str(r[1]), r[2], int(r[3]), str(r[4])) for r in
                self._all("SELECT queue_id, kind, chip_id, time_unix_ns, body FROM"
                          " evidence_queue ORDER BY queue_id LIMIT ?", (limit,))]

    def count_queued_evidence(self) -> int:
        row = self._one("SELECT COUNT(*) FROM evidence_queue")
        return int(row[0]) if row else 0

    def drop_queued_evidence(self, queue_id: int) -> None:
        """Forget a queued entry (the leader appended it, in the same transaction)."""
        with self._tx():
            self._db.execute("DELETE FROM evidence_queue WHERE queue_id = ?", (queue_id,))
