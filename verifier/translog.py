"""The evidence log (RFC 9162 style Merkle tree) as the verifier reads and appends it.

The entries, subtree hashes and signed tree heads are tables of the verifier's database
(`verifier.store.evidence_log`, docs/evidence.md), so every replica of a verifier on one
database sees one append-only sequence. `TransparencyLog` puts the tree's arithmetic over a
`Store`: an append is one transaction of its own, or part of the caller's when one is open on
that store (a verdict and its entry then commit together or not at all, which is how the
verifier appends); roots and proofs fetch every subtree hash they need in one query.

`TransparencyLog(path)` opens a SQLite database file of its own (the offline export, tests);
`TransparencyLog(store)` works on an open store (the verifier's connections). One instance may
be used from several threads: calls take turns.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from protocol.keys import Signer
from protocol.merkle import (
    SignedTreeHead,
    consistency_path,
    inclusion_path,
    range_hash,
)
from verifier.errors import InvalidInputError, NotFoundError
from verifier.store import SqliteStore, Store, StoreError
from verifier.store.evidence_log import ChainedEntryBuilder, ChipHead, LogEntry

__all__ = ["ChainedEntryBuilder", "ChipHead", "LogEntry", "TransparencyLog"]

logger = logging.getLogger(__name__)
T = TypeVar("T")
PerfectLookup = Callable[[int, int], bytes]
_PLACEHOLDER = bytes(32)


class TransparencyLog:
    """Append-only Merkle log over a `Store`'s evidence-log tables."""

    def __init__(self, source: Store | Path | str, *, owns_store: bool = False) -> None:
        """``owns_store``: `close` closes the store too (always so for a file opened here)."""
        self._owned = owns_store or isinstance(source, str | Path)
        # A file of its own is written with synchronous=FULL: an entry survives power loss.
        self._store: Store = (SqliteStore(Path(source), "FULL")
                              if isinstance(source, str | Path) else source)
        self._lock = threading.RLock()

    @property
    def store(self) -> Store:
        return self._store

    def close(self) -> None:
        if self._owned:
            with self._lock:
                self._store.close()

    def __enter__(self) -> TransparencyLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[Store]:
        with self._lock, self._store.transaction():
            yield self._store

    @property
    def size(self) -> int:
        with self._lock:
            return self._store.log_size()

    def append(
        self,
        entry: bytes,
        *,
        kind: str = "entry",
        chip_id: str | None = None,
        time_unix_ns: int | None = None,
    ) -> int:
        """Append ``entry``; return its index. Durable on return unless the caller's
        transaction is open, in which case it commits (or rolls back) with that."""
        if not isinstance(entry, bytes):
            raise InvalidInputError("a log entry must be bytes")
        with self._lock:
            index = self._store.log_append(entry, kind=kind, chip_id=chip_id,
                                           time_unix_ns=time_unix_ns, chip_seq=None)
        logger.debug("log entry %d appended (kind=%s chip=%s)", index, kind, chip_id)
        return index

    def append_chained(
        self, build: ChainedEntryBuilder, *, kind: str, chip_id: str, time_unix_ns: int
    ) -> tuple[int, int]:
        """Append the next entry of ``chip_id``'s chain; return (log index, chip sequence).

        ``build(seq, previous_leaf_hash)`` makes the entry bytes inside the write transaction,
        after the log's lock is taken, so two appends for one chip can never take the same
        number or link to the same predecessor. The first chained entry of a chip gets 0 and
        None.
        """
        def checked(seq: int, previous_leaf_hash: bytes | None) -> bytes:
            entry = build(seq, previous_leaf_hash)
            if not isinstance(entry, bytes):
                raise InvalidInputError("a log entry must be bytes")
            return entry

        with self._lock:
            index, seq = self._store.log_append_chained(
                checked, kind=kind, chip_id=chip_id, time_unix_ns=time_unix_ns)
        logger.debug("log entry %d appended (kind=%s chip=%s seq=%d)", index, kind, chip_id, seq)
        return index, seq

    def chip_head(self, chip_id: str, tree_size: int | None = None) -> ChipHead | None:
        """``chip_id``'s latest chained entry among the first ``tree_size`` entries, if any."""
        with self._lock:
            n = self._check_size(tree_size)
            return self._store.log_chip_head(chip_id, n)

    def _check_size(self, tree_size: int | None) -> int:
        size = self._store.log_size()
        if tree_size is None:
            return size
        if not 0 <= tree_size <= size:
            raise NotFoundError(f"tree size {tree_size} is beyond the log's {size} entries")
        return tree_size

    def _resolved(self, compute: Callable[[PerfectLookup], T]) -> T:
        """``compute(perfect)`` with every subtree hash it needs fetched in one query: which
        subtrees a root or proof combines depends on the sizes only, so a first pass with
        placeholder hashes names them all."""
        wanted: list[tuple[int, int]] = []

        def record(level: int, index: int) -> bytes:
            wanted.append((level, index))
            return _PLACEHOLDER

        compute(record)
        try:
            found = self._store.log_nodes(wanted)
        except StoreError as exc:
            raise NotFoundError(str(exc)) from exc
        return compute(lambda level, index: found[(level, index)])

    def root(self, tree_size: int | None = None) -> bytes:
        with self._lock:
            n = self._check_size(tree_size)
            return self._resolved(lambda perfect: range_hash(perfect, 0, n))

    def inclusion_proof(self, index: int, tree_size: int | None = None) -> list[bytes]:
        with self._lock:
            n = self._check_size(tree_size)
            if not 0 <= index < n:
                raise NotFoundError(f"entry {index} is not in a tree of size {n}")
            return self._resolved(lambda perfect: inclusion_path(perfect, index, n))

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        with self._lock:
            n = self._check_size(new_size)
            if not 0 <= old_size <= n:
                raise NotFoundError(f"no consistency proof from size {old_size} to {n}")
            return self._resolved(lambda perfect: consistency_path(perfect, old_size, n))

    def entry(self, index: int) -> LogEntry:
        with self._lock:
            found = self._store.log_entry(index)
        if found is None:
            raise NotFoundError(f"log has no entry {index}")
        return found

    def find_entries(
        self, chip_id: str, from_unix_ns: int, to_unix_ns: int, tree_size: int | None = None
    ) -> list[LogEntry]:
        """Entries about ``chip_id`` with from <= time <= to (and index < tree_size), by index."""
        with self._lock:
            n = self._check_size(tree_size)
            return self._store.log_chip_entries(chip_id, "time", from_unix_ns, to_unix_ns, n)

    def find_chain(
        self, chip_id: str, first_seq: int, last_seq: int, tree_size: int | None = None
    ) -> list[LogEntry]:
        """``chip_id``'s chained entries with first <= seq <= last (and index < tree_size)."""
        with self._lock:
            n = self._check_size(tree_size)
            return self._store.log_chip_entries(chip_id, "seq", first_seq, last_seq, n)

    def sign_tree_head(self, signer: Signer, now_unix_s: int) -> SignedTreeHead:
        """Sign and store the head of the whole log as it stands now (in the log's turn, so
        the size read is the one the root is computed over)."""
        with self._transaction() as store:
            store.log_lock()
            size = store.log_size()
            root = self._resolved(lambda perfect: range_hash(perfect, 0, size))
            head = SignedTreeHead.sign(signer, size, int(now_unix_s), root)
            store.log_add_tree_head(head)
        logger.info("signed tree head size=%d root=%s", head.tree_size, head.root.hex())
        return head

    def tree_heads(self) -> list[SignedTreeHead]:
        """Every signed tree head, oldest first."""
        with self._lock:
            return self._store.log_tree_heads()

    def latest_tree_head(self) -> SignedTreeHead | None:
        with self._lock:
            return self._store.log_latest_tree_head()
