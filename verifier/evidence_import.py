"""Importing the evidence log a PostgreSQL verifier kept in `<data_dir>/verifier.sqlite3` into
the database, at the first start of a version that keeps the log in the database.

A SQLite verifier needs no import: the log's tables were always in its database file and are
adopted in place (migration 5). On PostgreSQL the log was a SQLite file beside the replica; the
first replica that starts with that file copies every entry (bytes, kind, chip, time, chain
sequence number) to the same index and every signed tree head, checking each leaf hash against
its entry and the latest head's root against the copied tree, all in one transaction. The
import is idempotent: a database whose log already starts with exactly the file's entries (same
root over the file's size) is left alone. A database log that does not continue the file's is
refused with `EvidenceImportError`: two different logs cannot be merged into one sequence.
The file itself is only read; keep it with the backups until an export from the database has
been audited, then remove it.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol.merkle import MemoryTree, SignedTreeHead, leaf_hash
from verifier.errors import ConfigError
from verifier.store import Store
from verifier.translog import TransparencyLog

logger = logging.getLogger(__name__)


class EvidenceImportError(ConfigError):
    """The old log file cannot be imported (corrupt, or the database holds another log)."""


@dataclass(frozen=True, slots=True)
class FileLog:
    """The old file's log, read whole and checked entry by entry."""

    entries: tuple[tuple[Any, ...], ...]  # (entry, kind, chip_id, time_unix_ns, chip_seq)
    heads: tuple[SignedTreeHead, ...]
    root: bytes


def read_file_log(path: Path) -> FileLog | None:
    """The log in the SQLite file at `path`, or None when it holds none."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise EvidenceImportError(f"cannot open the old evidence log {path}: {exc}") from exc
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "translog_entries" not in tables:
            return None
        columns = {r[1] for r in db.execute("PRAGMA table_info(translog_entries)")}
        seq = "chip_seq" if "chip_seq" in columns else "NULL"
        rows = db.execute(f"SELECT idx, leaf_hash, entry, kind, chip_id, time_unix_ns, {seq}"
                          " FROM translog_entries ORDER BY idx").fetchall()
        heads = tuple(SignedTreeHead(int(r[0]), int(r[1]), bytes(r[2]), bytes(r[3]), bytes(r[4]))
                      for r in db.execute(
                          "SELECT tree_size, timestamp_unix_s, root, log_public_key, signature"
                          " FROM translog_tree_heads ORDER BY id"))
    except sqlite3.Error as exc:
        raise EvidenceImportError(f"cannot read the old evidence log {path}: {exc}") from exc
    finally:
        db.close()
    if not rows and not heads:
        return None
    tree = MemoryTree()
    entries = []
    for position, (index, leaf, entry, kind, chip_id, time_ns, chip_seq) in enumerate(rows):
        if index != position or bytes(leaf) != leaf_hash(bytes(entry)):
            raise EvidenceImportError(
                f"the old evidence log {path} is damaged at entry {position}: "
                f"{'a gap in the indexes' if index != position else 'its leaf hash'}")
        tree.append_leaf_hash(bytes(leaf))
        entries.append((bytes(entry), str(kind), chip_id, time_ns, chip_seq))
    return FileLog(tuple(entries), heads, tree.root())


def import_file_log(store: Store, path: Path) -> int:
    """Copy the log in `path` into `store` when the database's log is empty; the number of
    entries copied (0 when there was nothing to copy or it was copied before)."""
    old = read_file_log(path)
    if old is None:
        return 0
    log = TransparencyLog(store)
    size = len(old.entries)
    with store.transaction():
        store.log_lock()  # replicas starting at once: the second finds the first's copy
        present = store.log_size()
        if present:
            if present >= size and log.root(size) == old.root:
                logger.info("evidence log %s was imported before (%d entries); the database's "
                            "log continues it", path, size)
                return 0
            raise EvidenceImportError(
                f"the database already holds an evidence log ({present} entries) that does "
                f"not continue the one in {path} ({size} entries): two logs cannot be merged. "
                f"Start this replica without the file (move it away) if the database's log "
                f"is the one to keep, or restore the database from before its log began")
        for entry, kind, chip_id, time_ns, chip_seq in old.entries:
            store.log_append(entry, kind=kind, chip_id=chip_id, time_unix_ns=time_ns,
                             chip_seq=chip_seq)
        for head in old.heads:
            store.log_add_tree_head(head)
        if old.heads and log.root(old.heads[-1].tree_size) != old.heads[-1].root:
            raise EvidenceImportError(f"the old evidence log {path} does not match its latest "
                                      "signed tree head; nothing was imported")
    logger.warning("imported the evidence log %s into the database: %d entries, %d tree heads; "
                   "keep the file with the backups until an export has been audited", path,
                   size, len(old.heads))
    return size
