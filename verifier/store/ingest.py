"""The ingestion tables of a `Store`: batches and measurements, and what storing them updates
(each answered task, each chip's last response). SQL both engines run; PostgreSQL overrides
the reads and the writes with fewer round trips (`verifier.store.ingest_pg`).

A group commit (`verifier.ingest`) reads everything its batches need in one call
(`ingest_view`: the batch ids already stored, the nonces already used, the named tasks, the
revocations naming the group's keys) and writes all its batches in one call
(`ingest_batches`), instead of four reads and four writes per batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from protocol.revocation import Revocation
from verifier.model import StoredMeasurement, TaskRow
from verifier.store.sql import SqlBase

MEASUREMENT_COLUMNS = ("batch_id", "landmark_id", "target_kind", "target_id", "nonce",
                       "sent_unix_ns", "rtt_ns", "clock_source", "round_id", "task_id",
                       "record", "received_unix_ns")
# TaskRow's fields in order, so a task row becomes a TaskRow by position.
TASK_COLUMNS = ("task_id, round_id, landmark_id, target_kind, target_id, host, port,"
                " issued_unix_ns, expires_unix_ns, delivered_unix_ns, answered")
_CHUNK = 500  # values per IN list: SQLite limits the parameters of one statement


@dataclass(frozen=True, slots=True)
class NewBatch:
    """A decided batch ready to be written: its accepted measurements and the answer stored
    for retries."""

    batch_id: str
    landmark_id: str
    measurements: Sequence[StoredMeasurement]
    result_json: str


@dataclass(frozen=True, slots=True)
class IngestView:
    """What deciding a group of batches reads from the database, read at once."""

    batches: Mapping[str, tuple[str, str]]  # stored batch id → (landmark id, result JSON)
    used_nonces: frozenset[bytes]  # among the asked nonces, those already stored
    tasks: Sequence[TaskRow]  # the live (not cancelled) tasks among the asked ids, by id
    revocations: Sequence[Revocation]  # those among the asked names, by revocation id


# What a revocation can name a key by: (kind, match, value), `protocol.revocation`'s fields.
RevocationName = tuple[str, str, str]
def task_row(values: Sequence[Any]) -> TaskRow:
    """A TaskRow from a row selected as `TASK_COLUMNS` (the answered flag is 0/1)."""
    (task_id, round_id, landmark_id, target_kind, target_id, host, port, issued_unix_ns,
     expires_unix_ns, delivered_unix_ns, answered) = values
    return TaskRow(task_id, round_id, landmark_id, target_kind, target_id, host, port,
                   issued_unix_ns, expires_unix_ns, delivered_unix_ns, bool(answered))


class IngestTables(SqlBase):
    """Listed after `CoreTables` and `RevocationTables` in a store's bases: these two stubs
    are theirs."""

    def revocations(self) -> list[Revocation]:
        raise NotImplementedError

    def batch_record(self, batch_id: str) -> tuple[str, str] | None:
        """(landmark id, stored result JSON) of an ingested batch id."""
        row = self._one("SELECT landmark_id, result FROM batches WHERE batch_id = ?",
                        (batch_id,))
        return (str(row["landmark_id"]), str(row["result"])) if row else None

    def used_nonces(self, nonces: Sequence[bytes]) -> set[bytes]:
        found: set[bytes] = set()
        for start in range(0, len(nonces), _CHUNK):
            chunk = nonces[start:start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            found.update(bytes(r[0]) for r in self._db.execute(
                f"SELECT nonce FROM measurements WHERE nonce IN ({marks})", chunk))
        return found

    def ingest_view(self, batch_ids: Sequence[str], nonces: Sequence[bytes],
                    task_ids: Sequence[int],
                    revocation_names: Sequence[RevocationName] = ()) -> IngestView:
        """Everything a group commit reads: which of `batch_ids` are stored, which of `nonces`
        are used, the live tasks among `task_ids`, the revocations among `revocation_names`
        (every name of every key the group's records rest on: a lookup by name finds nothing
        else, and the table grows with the fleet's history). Call it inside the transaction
        that will write the batches."""
        batches: dict[str, tuple[str, str]] = {}
        unique = sorted(set(batch_ids))
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start:start + _CHUNK]
            batches.update((str(r[0]), (str(r[1]), str(r[2]))) for r in self._all(
                "SELECT batch_id, landmark_id, result FROM batches WHERE batch_id IN"
                f" ({','.join('?' * len(chunk))})", chunk))
        tasks: list[TaskRow] = []
        named = sorted(set(task_ids))
        for start in range(0, len(named), _CHUNK):
            ids = named[start:start + _CHUNK]
            tasks.extend(task_row(tuple(r)) for r in self._all(
                f"SELECT {TASK_COLUMNS} FROM tasks WHERE task_id IN"
                f" ({','.join('?' * len(ids))}) AND cancelled = 0 ORDER BY task_id", ids))
        return IngestView(batches, frozenset(self.used_nonces(nonces)), tasks,
                          self._named_revocations(revocation_names))

    def _named_revocations(self, names: Sequence[RevocationName]) -> list[Revocation]:
        """The revocations with these (kind, match, value), by the table's unique index."""
        rows: list[Any] = []
        unique = sorted(set(names))
        step = _CHUNK // 3
        for start in range(0, len(unique), step):
            chunk = unique[start:start + step]
            rows += self._all(
                "SELECT revocation_id, kind, match, value, revoked_unix_ns, reason"
                " FROM revocations WHERE (kind, match, value) IN"
                f" (VALUES {','.join(['(?,?,?)'] * len(chunk))})",
                [part for name in chunk for part in name])
        return [Revocation(*r[1:]) for r in sorted(rows, key=lambda r: int(r[0]))]

    def ingest(self, batch_id: str, landmark_id: str, measurements: Sequence[StoredMeasurement],
               result_json: str, now_unix_ns: int) -> None:
        self.ingest_batches([NewBatch(batch_id, landmark_id, measurements, result_json)],
                            now_unix_ns)

    def ingest_batches(self, batches: Sequence[NewBatch], now_unix_ns: int) -> None:
        """Store the batches, their measurements, each answered task and each chip's latest
        response, in one transaction (a reused batch id or nonce fails it all:
        `DuplicateKeyError`)."""
        if not batches:
            return
        # One update per task and per chip, not per record: a batch often holds several
        # answers to the same task, and a group several batches for the same chip.
        latest: dict[str, int] = {}
        task_ids: set[int] = set()
        for batch in batches:
            for m in batch.measurements:
                task_ids.add(m.task_id)
                if m.target_kind == "chip":
                    latest[m.target_id] = max(latest.get(m.target_id, 0), m.sent_unix_ns)
        with self._tx():
            self._write_batches(batches, now_unix_ns, sorted(task_ids), latest)

    def _write_batches(self, batches: Sequence[NewBatch], now_unix_ns: int,
                       task_ids: Sequence[int], latest: dict[str, int]) -> None:
        self._db.executemany("INSERT INTO batches VALUES (?,?,?,?)", [
            (b.batch_id, b.landmark_id, now_unix_ns, b.result_json) for b in batches])
        self._insert_rows("measurements", MEASUREMENT_COLUMNS, measurement_rows(
            batches, now_unix_ns))
        self._db.executemany("UPDATE tasks SET answered = 1 WHERE task_id = ?",
                             [(task_id,) for task_id in task_ids])
        # Each chip's last response time moves forward only.
        self._db.executemany(
            "UPDATE chips SET last_response_unix_ns = ? WHERE chip_id = ?"
            " AND (last_response_unix_ns IS NULL OR last_response_unix_ns < ?)",
            [(sent_unix_ns, chip_id, sent_unix_ns) for chip_id, sent_unix_ns in latest.items()])


def measurement_rows(batches: Sequence[NewBatch], now_unix_ns: int
                     ) -> list[tuple[object, ...]]:
    """The measurements' rows in `MEASUREMENT_COLUMNS` order."""
    return [(m.batch_id, m.landmark_id, m.target_kind, m.target_id, m.nonce, m.sent_unix_ns,
             m.rtt_ns, m.clock_source, m.round_id, m.task_id, m.record_json, now_unix_ns)
            for batch in batches for m in batch.measurements]
