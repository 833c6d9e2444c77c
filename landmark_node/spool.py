"""The landmark's durable outbox: SQLite, every write committed with synchronous=FULL.

Records are stored the moment they leave the timed path; `seal_batches` groups unbatched records
into signed batches inside one transaction (so a record is in exactly one batch), and a batch is
marked delivered only after the sink acknowledged it. A crash at any point therefore loses
nothing, and a redelivery after a crash resends the *same* batch id and bytes, which the verifier
de-duplicates: exactly-once by batch id. A batch the receiver refused for good is quarantined:
kept, with the reason, but no longer offered for delivery, so later batches are not held back.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Iterable
from pathlib import Path

from protocol.keys import Signer
from protocol.records import MeasurementBatch, MeasurementRecord, sign_batch

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    body TEXT NOT NULL,
    batch_id TEXT
);
CREATE INDEX IF NOT EXISTS records_unbatched ON records (batch_id) WHERE batch_id IS NULL;
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0,
    refused TEXT
);
"""


class Spool:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # One connection guarded by a lock: callers run it from asyncio.to_thread workers.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(batches)")}
            if "refused" not in columns:  # a spool written before quarantine existed
                self._db.execute("ALTER TABLE batches ADD COLUMN refused TEXT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add_records(self, records: Iterable[MeasurementRecord]) -> int:
        rows = [(json.dumps(record.to_json()),) for record in records]
        if not rows:
            return 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT INTO records (body) VALUES (?)", rows)
            self._db.execute("COMMIT")
        return len(rows)

    def seal_batches(self, signer: Signer, landmark_id: str, max_records: int) -> int:
        """Group every unbatched record into signed batches of at most `max_records`."""
        sealed = 0
        with self._lock:
            while True:
                self._db.execute("BEGIN IMMEDIATE")
                rows = self._db.execute(
                    "SELECT id, body FROM records WHERE batch_id IS NULL ORDER BY id LIMIT ?",
                    (max_records,),
                ).fetchall()
                if not rows:
                    self._db.execute("COMMIT")
                    return sealed
                batch = sign_batch(
                    signer,
                    uuid.uuid4().hex,
                    landmark_id,
                    tuple(MeasurementRecord.from_json(json.loads(body)) for _, body in rows),
                )
                self._db.execute(
                    "INSERT INTO batches (batch_id, body) VALUES (?, ?)",
                    (batch.batch_id, json.dumps(batch.to_json())),
                )
                self._db.executemany(
                    "UPDATE records SET batch_id = ? WHERE id = ?",
                    [(batch.batch_id, row_id) for row_id, _ in rows],
                )
                self._db.execute("COMMIT")
                sealed += 1

    def undelivered(self, limit: int = 100) -> list[MeasurementBatch]:
        with self._lock:
            rows = self._db.execute(
                "SELECT body FROM batches WHERE delivered = 0 AND refused IS NULL "
                "ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        return [MeasurementBatch.from_json(json.loads(body)) for (body,) in rows]

    def quarantine(self, batch_id: str, reason: str) -> None:
        """Keep a batch the receiver refused for good, with the reason, out of delivery."""
        with self._lock:
            self._db.execute(
                "UPDATE batches SET refused = ? WHERE batch_id = ? AND delivered = 0",
                (reason, batch_id),
            )

    def quarantined(self) -> list[tuple[MeasurementBatch, str]]:
        """Every quarantined batch, oldest first, with the receiver's reason."""
        with self._lock:
            rows = self._db.execute(
                "SELECT body, refused FROM batches WHERE refused IS NOT NULL ORDER BY seq"
            ).fetchall()
        return [(MeasurementBatch.from_json(json.loads(body)), reason) for body, reason in rows]

    def mark_delivered(self, batch_id: str) -> None:
        with self._lock:
            self._db.execute("UPDATE batches SET delivered = 1 WHERE batch_id = ?", (batch_id,))

    def stats(self) -> dict[str, int]:
        with self._lock:
            unbatched = self._db.execute(
                "SELECT COUNT(*) FROM records WHERE batch_id IS NULL"
            ).fetchone()[0]
            pending, delivered, quarantined = self._db.execute(
                "SELECT COALESCE(SUM(delivered = 0 AND refused IS NULL), 0), "
                "COALESCE(SUM(delivered = 1), 0), COALESCE(SUM(refused IS NOT NULL), 0) "
                "FROM batches"
            ).fetchone()
        return {
            "unbatched_records": int(unbatched),
            "pending_batches": int(pending),
            "delivered_batches": int(delivered),
            "quarantined_batches": int(quarantined),
        }
