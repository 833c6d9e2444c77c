"""Storage interface (`Store`) and its SQLite implementation.

Domain code talks only to `Store`; a PostgreSQL backend implements the same methods. Every
method is synchronous and called from one dedicated database thread (`verifier.db.Db`), so an
implementation needs no locking of its own. Each mutating method is one transaction: when it
returns, the change is durable against a process crash (WAL; `synchronous=FULL` adds power loss).
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from verifier.model import (
    Alert,
    AlertFilter,
    Chip,
    Landmark,
    MeasurementRow,
    OutboxItem,
    Policy,
    Round,
    StoredMeasurement,
    TaskRow,
    Token,
    VerdictRecord,
)
from verifier.ops_store import OpsStore, SqliteOpsTables, migrate_ops
from verifier.revocation_store import (
    RevocationStore,
    SqliteRevocationTables,
    migrate_revocations,
)


class Store(OpsStore, RevocationStore, Protocol):
    # tokens
    def add_token(self, token_sha256: bytes, role: str, label: str, landmark_id: str | None,
                  now_unix_ns: int) -> int: ...
    def token_by_hash(self, token_sha256: bytes) -> Token | None: ...
    # registries
    def put_policy(self, policy: Policy) -> None: ...
    def policy(self, name: str) -> Policy | None: ...
    def policies(self) -> list[Policy]: ...
    def put_landmark(self, landmark: Landmark) -> None: ...
    def landmark(self, landmark_id: str) -> Landmark | None: ...
    def landmarks(self) -> list[Landmark]: ...
    def touch_landmark(self, landmark_id: str, now_unix_ns: int) -> None: ...
    def set_landmark_audit(self, landmark_id: str, audit: dict[str, Any], faulty: bool) -> None: ...
    def set_landmark_next_mesh(self, landmark_id: str, next_unix_ns: int) -> None: ...
    def put_chip(self, chip: Chip) -> None: ...
    def chip(self, chip_id: str) -> Chip | None: ...
    def chips(self) -> list[Chip]: ...
    def set_chip_state(self, chip_id: str, state: str, now_unix_ns: int) -> None: ...
    def set_chip_next_round(self, chip_id: str, next_unix_ns: int) -> None: ...
    def set_verified_until(self, chip_id: str, until_unix_ns: int | None) -> None: ...
    def expire_verified(self, now_unix_ns: int) -> list[str]: ...
    # scheduling
    def add_round(self, rnd: Round, tasks: Sequence[tuple[str, str, int]]) -> None: ...
    def open_rounds(self) -> list[Round]: ...
    def round_tasks(self, round_id: str) -> list[TaskRow]: ...
    def close_round(self, round_id: str) -> None: ...
    def add_task(self, round_id: str, *, landmark_id: str, target_kind: str, target_id: str,
                 host: str, port: int, issued_unix_ns: int, expires_unix_ns: int) -> int: ...
    def cancel_task(self, task_id: int) -> None: ...
    def take_tasks(self, landmark_id: str, now_unix_ns: int) -> list[TaskRow]: ...
    def find_task(self, landmark_id: str, target_kind: str, target_id: str,
                  sent_unix_ns: int, slack_ns: int) -> TaskRow | None: ...
    def tasks_overlapping(self, landmark_id: str, target_ids: Sequence[str],
                          from_unix_ns: int, until_unix_ns: int) -> list[TaskRow]: ...
    def landmark_task_stats(self, since_unix_ns: int,
                            settled_unix_ns: int) -> dict[str, tuple[int, int, int]]: ...
    # ingestion
    def batch_record(self, batch_id: str) -> tuple[str, str] | None: ...
    def used_nonces(self, nonces: Sequence[bytes]) -> set[bytes]: ...
    def ingest(self, batch_id: str, landmark_id: str, measurements: Sequence[StoredMeasurement],
               result_json: str, now_unix_ns: int) -> None: ...
    def round_measurements(self, round_id: str) -> list[MeasurementRow]: ...
    def mesh_measurements(self, since_unix_ns: int) -> list[MeasurementRow]: ...
    def measurement_records(self, ids: Sequence[int]) -> list[str]: ...
    def count_measurements(self) -> int: ...
    # verdicts
    def add_verdict(self, chip_id: str, *, round_id: str, verdict: str, created_unix_ns: int,
                    measurement_ids: Sequence[int], landmarks: Sequence[dict[str, Any]],
                    assessment: dict[str, Any] | None, reason: str,
                    licence: dict[str, Any], reason_code: str | None = None,
                    key_protection: str = "software") -> VerdictRecord: ...
    def verdicts(self, chip_id: str, before_id: int | None, limit: int) -> list[VerdictRecord]: ...
    def last_verdict(self, chip_id: str) -> VerdictRecord | None: ...
    # alerts (+ webhook outbox in the same transaction)
    def open_alert(self, type_: str, *, severity: str, subject_kind: str, subject_id: str,
                   message: str, details: dict[str, Any], now_unix_ns: int,
                   outbox: Iterable[str]) -> Alert | None: ...
    def update_alert(self, alert_id: int, *, action: str, by: str, reason: str,
                     now_unix_ns: int, outbox: Iterable[str]) -> Alert: ...
    def alert(self, alert_id: int) -> Alert | None: ...
    def unresolved_alert(self, subject_kind: str, subject_id: str, type_: str) -> Alert | None: ...
    def alerts(self, flt: AlertFilter) -> list[Alert]: ...
    def count_open_alerts(self) -> int: ...
    def due_outbox(self, now_unix_ns: int, limit: int) -> list[OutboxItem]: ...
    def outbox_done(self, outbox_id: int, now_unix_ns: int) -> None: ...
    def outbox_retry(self, outbox_id: int, next_unix_ns: int, error: str,
                     give_up: bool) -> None: ...
    # key/value (calibration model)
    def get_kv(self, key: str) -> str | None: ...
    def put_kv(self, key: str, value: str) -> None: ...
    def close(self) -> None: ...
    # grouping: nested calls become savepoints, so a failing part rolls back alone
    def transaction(self) -> AbstractContextManager[None]: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
  token_id INTEGER PRIMARY KEY, token_sha256 BLOB NOT NULL UNIQUE, role TEXT NOT NULL,
  label TEXT NOT NULL, landmark_id TEXT, created_unix_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS policies (
  name TEXT PRIMARY KEY, round_interval_s REAL NOT NULL, landmarks_per_round INTEGER NOT NULL,
  round_timeout_s REAL NOT NULL, dark_window_s REAL NOT NULL,
  tolerate_faulty_landmarks INTEGER NOT NULL DEFAULT 0, verified_ttl_s REAL,
  min_key_protection TEXT NOT NULL DEFAULT 'software');
CREATE TABLE IF NOT EXISTS landmarks (
  landmark_id TEXT PRIMARY KEY, lat_deg REAL NOT NULL, lon_deg REAL NOT NULL, host TEXT NOT NULL,
  port INTEGER NOT NULL, public_key BLOB NOT NULL, certificate TEXT NOT NULL,
  last_seen_unix_ns INTEGER, faulty INTEGER NOT NULL DEFAULT 0, audit TEXT,
  next_mesh_unix_ns INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS chips (
  chip_id TEXT PRIMARY KEY, owner TEXT NOT NULL, model TEXT NOT NULL, serial TEXT NOT NULL,
  host TEXT, port INTEGER, policy TEXT NOT NULL, public_key BLOB NOT NULL,
  certificate TEXT NOT NULL, licence TEXT NOT NULL, state TEXT NOT NULL,
  state_since_unix_ns INTEGER NOT NULL, last_response_unix_ns INTEGER,
  registered_unix_ns INTEGER NOT NULL, next_round_unix_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS rounds (
  round_id TEXT PRIMARY KEY, target_kind TEXT NOT NULL, target_id TEXT NOT NULL,
  started_unix_ns INTEGER NOT NULL, deadline_unix_ns INTEGER NOT NULL,
  closed INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS rounds_open ON rounds(closed) WHERE closed = 0;
CREATE TABLE IF NOT EXISTS tasks (
  task_id INTEGER PRIMARY KEY, round_id TEXT NOT NULL, landmark_id TEXT NOT NULL,
  target_kind TEXT NOT NULL, target_id TEXT NOT NULL, host TEXT NOT NULL, port INTEGER NOT NULL,
  issued_unix_ns INTEGER NOT NULL, expires_unix_ns INTEGER NOT NULL, delivered_unix_ns INTEGER,
  answered INTEGER NOT NULL DEFAULT 0, cancelled INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS tasks_by_target ON tasks(landmark_id, target_kind, target_id,
  issued_unix_ns);
CREATE INDEX IF NOT EXISTS tasks_by_round ON tasks(round_id);
CREATE TABLE IF NOT EXISTS batches (
  batch_id TEXT PRIMARY KEY, landmark_id TEXT NOT NULL, received_unix_ns INTEGER NOT NULL,
  result TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS measurements (
  measurement_id INTEGER PRIMARY KEY, batch_id TEXT NOT NULL, landmark_id TEXT NOT NULL,
  target_kind TEXT NOT NULL, target_id TEXT NOT NULL, nonce BLOB NOT NULL,
  sent_unix_ns INTEGER NOT NULL, rtt_ns INTEGER NOT NULL, clock_source TEXT NOT NULL,
  round_id TEXT NOT NULL, task_id INTEGER NOT NULL, record TEXT NOT NULL,
  received_unix_ns INTEGER NOT NULL);
-- A nonce is accepted once, ever: the unique index is the replay defence's last word.
CREATE UNIQUE INDEX IF NOT EXISTS measurements_nonce ON measurements(nonce);
CREATE INDEX IF NOT EXISTS measurements_round ON measurements(round_id);
CREATE INDEX IF NOT EXISTS measurements_kind_time ON measurements(target_kind, sent_unix_ns);
CREATE TABLE IF NOT EXISTS verdicts (
  verdict_id INTEGER PRIMARY KEY, chip_id TEXT NOT NULL, round_id TEXT NOT NULL,
  verdict TEXT NOT NULL, created_unix_ns INTEGER NOT NULL, measurement_ids TEXT NOT NULL,
  landmarks TEXT NOT NULL, assessment TEXT, reason TEXT NOT NULL, licence TEXT NOT NULL,
  reason_code TEXT, key_protection TEXT NOT NULL DEFAULT 'software');
CREATE INDEX IF NOT EXISTS verdicts_chip ON verdicts(chip_id, verdict_id);
CREATE TABLE IF NOT EXISTS alerts (
  alert_id INTEGER PRIMARY KEY, type TEXT NOT NULL, severity TEXT NOT NULL, status TEXT NOT NULL,
  subject_kind TEXT NOT NULL, subject_id TEXT NOT NULL, message TEXT NOT NULL,
  details TEXT NOT NULL, opened_unix_ns INTEGER NOT NULL, updated_unix_ns INTEGER NOT NULL,
  acknowledged_by TEXT, acknowledged_reason TEXT, acknowledged_unix_ns INTEGER,
  resolved_by TEXT, resolved_reason TEXT, resolved_unix_ns INTEGER);
-- At most one unresolved alert per (subject, type), enforced by the database itself.
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_open ON alerts(subject_kind, subject_id, type)
  WHERE status != 'resolved';
CREATE TABLE IF NOT EXISTS outbox (
  outbox_id INTEGER PRIMARY KEY, url TEXT NOT NULL, body BLOB NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0, next_attempt_unix_ns INTEGER NOT NULL,
  done_unix_ns INTEGER, gave_up INTEGER NOT NULL DEFAULT 0, last_error TEXT);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(next_attempt_unix_ns)
  WHERE done_unix_ns IS NULL AND gave_up = 0;
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- Until when a chip's `verified` state counts (policy TTL); a verified chip without a row here
-- (a database from before the TTL) counts as expired.
CREATE TABLE IF NOT EXISTS verified_until (
  chip_id TEXT PRIMARY KEY, until_unix_ns INTEGER NOT NULL);
"""


def _alert(row: sqlite3.Row) -> Alert:
    values = dict(row)
    values["details"] = json.loads(values["details"])
    return Alert(**values)


def _task(row: sqlite3.Row) -> TaskRow:
    values = dict(row)
    values.pop("cancelled", None)
    values["answered"] = bool(values["answered"])
    return TaskRow(**values)


def _landmark(row: sqlite3.Row) -> Landmark:
    values = dict(row)
    values["certificate"] = json.loads(values["certificate"])
    values["audit"] = json.loads(values["audit"]) if values["audit"] else None
    values["faulty"] = bool(values["faulty"])
    return Landmark(**values)


def _chip(row: sqlite3.Row) -> Chip:
    values = dict(row)
    values["certificate"] = json.loads(values["certificate"])
    values["licence"] = json.loads(values["licence"])
    return Chip(**values)


def _verdict(row: sqlite3.Row) -> VerdictRecord:
    values = dict(row)
    values["measurement_ids"] = tuple(json.loads(values["measurement_ids"]))
    values["landmarks"] = tuple(json.loads(values["landmarks"]))
    values["assessment"] = json.loads(values["assessment"]) if values["assessment"] else None
    values["licence"] = json.loads(values["licence"])
    return VerdictRecord(**values)


class SqliteStore(SqliteOpsTables, SqliteRevocationTables):
    """`Store` on one SQLite connection in WAL mode; used from a single thread at a time."""

    def __init__(self, path: Path, synchronous: str = "NORMAL") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves so a method is one transaction.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self._migrate()
        migrate_ops(self._db)
        migrate_revocations(self._db)

    def _migrate(self) -> None:
        """Columns added after a database was created (CREATE TABLE IF NOT EXISTS keeps the
        old table); the defaults give old rows their previous meaning."""
        columns = {r["name"] for r in self._all("PRAGMA table_info(policies)")}
        if "tolerate_faulty_landmarks" not in columns:
            self._db.execute("ALTER TABLE policies ADD COLUMN"
                             " tolerate_faulty_landmarks INTEGER NOT NULL DEFAULT 0")
        if "verified_ttl_s" not in columns:  # NULL: round interval + timeout
            self._db.execute("ALTER TABLE policies ADD COLUMN verified_ttl_s REAL")
        if "min_key_protection" not in columns:
            self._db.execute("ALTER TABLE policies ADD COLUMN"
                             " min_key_protection TEXT NOT NULL DEFAULT 'software'")
        columns = {r["name"] for r in self._all("PRAGMA table_info(verdicts)")}
        if "reason_code" not in columns:
            self._db.execute("ALTER TABLE verdicts ADD COLUMN reason_code TEXT")
        if "key_protection" not in columns:
            self._db.execute("ALTER TABLE verdicts ADD COLUMN"
                             " key_protection TEXT NOT NULL DEFAULT 'software'")

    def close(self) -> None:
        self._db.close()

    def _tx(self) -> _Tx:
        return _Tx(self._db)

    def transaction(self) -> _Tx:
        """One transaction around several store calls (their own transactions nest inside)."""
        return _Tx(self._db)

    def _one(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._db.execute(sql, args).fetchone()
        return row

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return list(self._db.execute(sql, args).fetchall())

    # -- tokens --
    def add_token(self, token_sha256: bytes, role: str, label: str, landmark_id: str | None,
                  now_unix_ns: int) -> int:
        with self._tx():
            cur = self._db.execute(
                "INSERT INTO tokens(token_sha256, role, label, landmark_id, created_unix_ns)"
                " VALUES (?,?,?,?,?)", (token_sha256, role, label, landmark_id, now_unix_ns))
        assert cur.lastrowid is not None
        return cur.lastrowid

    def token_by_hash(self, token_sha256: bytes) -> Token | None:
        row = self._one("SELECT token_id, role, label, landmark_id FROM tokens"
                        " WHERE token_sha256 = ?", (token_sha256,))
        return Token(**dict(row)) if row else None

    # -- policies --
    def put_policy(self, policy: Policy) -> None:
        with self._tx():
            self._db.execute(
                "INSERT OR REPLACE INTO policies(name, round_interval_s, landmarks_per_round,"
                " round_timeout_s, dark_window_s, tolerate_faulty_landmarks, verified_ttl_s,"
                " min_key_protection) VALUES (?,?,?,?,?,?,?,?)",
                (policy.name, policy.round_interval_s, policy.landmarks_per_round,
                 policy.round_timeout_s, policy.dark_window_s, policy.tolerate_faulty_landmarks,
                 policy.verified_ttl_s, policy.min_key_protection))

    def policy(self, name: str) -> Policy | None:
        row = self._one("SELECT * FROM policies WHERE name = ?", (name,))
        return Policy(**dict(row)) if row else None

    def policies(self) -> list[Policy]:
        return [Policy(**dict(r)) for r in self._all("SELECT * FROM policies ORDER BY name")]

    # -- landmarks --
    def put_landmark(self, landmark: Landmark) -> None:
        with self._tx():
            self._db.execute(
                "INSERT INTO landmarks VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(landmark_id)"
                " DO UPDATE SET lat_deg=excluded.lat_deg, lon_deg=excluded.lon_deg,"
                " host=excluded.host, port=excluded.port, public_key=excluded.public_key,"
                " certificate=excluded.certificate, faulty=excluded.faulty,"
                " audit=excluded.audit",
                (landmark.landmark_id, landmark.lat_deg, landmark.lon_deg, landmark.host,
                 landmark.port, landmark.public_key, json.dumps(landmark.certificate),
                 landmark.last_seen_unix_ns, int(landmark.faulty),
                 json.dumps(landmark.audit) if landmark.audit else None,
                 landmark.next_mesh_unix_ns))

    def landmark(self, landmark_id: str) -> Landmark | None:
        row = self._one("SELECT * FROM landmarks WHERE landmark_id = ?", (landmark_id,))
        return _landmark(row) if row else None

    def landmarks(self) -> list[Landmark]:
        return [_landmark(r) for r in self._all("SELECT * FROM landmarks ORDER BY landmark_id")]

    def touch_landmark(self, landmark_id: str, now_unix_ns: int) -> None:
        self._db.execute("UPDATE landmarks SET last_seen_unix_ns = ? WHERE landmark_id = ?",
                         (now_unix_ns, landmark_id))

    def set_landmark_audit(self, landmark_id: str, audit: dict[str, Any], faulty: bool) -> None:
        self._db.execute("UPDATE landmarks SET audit = ?, faulty = ? WHERE landmark_id = ?",
                         (json.dumps(audit), int(faulty), landmark_id))

    def set_landmark_next_mesh(self, landmark_id: str, next_unix_ns: int) -> None:
        self._db.execute("UPDATE landmarks SET next_mesh_unix_ns = ? WHERE landmark_id = ?",
                         (next_unix_ns, landmark_id))

    # -- chips --
    def put_chip(self, chip: Chip) -> None:
        with self._tx():
            self._db.execute(
                "INSERT INTO chips VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(chip_id)"
                " DO UPDATE SET owner=excluded.owner, host=excluded.host, port=excluded.port,"
                " policy=excluded.policy, public_key=excluded.public_key,"
                " certificate=excluded.certificate, licence=excluded.licence,"
                " model=excluded.model, serial=excluded.serial",
                (chip.chip_id, chip.owner, chip.model, chip.serial, chip.host, chip.port,
                 chip.policy, chip.public_key, json.dumps(chip.certificate),
                 json.dumps(chip.licence), chip.state, chip.state_since_unix_ns,
                 chip.last_response_unix_ns, chip.registered_unix_ns, chip.next_round_unix_ns))

    def chip(self, chip_id: str) -> Chip | None:
        row = self._one("SELECT * FROM chips WHERE chip_id = ?", (chip_id,))
        return _chip(row) if row else None

    def chips(self) -> list[Chip]:
        return [_chip(r) for r in self._all("SELECT * FROM chips ORDER BY chip_id")]

    def set_chip_state(self, chip_id: str, state: str, now_unix_ns: int) -> None:
        self._db.execute(
            "UPDATE chips SET state_since_unix_ns = CASE WHEN state = ? THEN state_since_unix_ns"
            " ELSE ? END, state = ? WHERE chip_id = ?", (state, now_unix_ns, state, chip_id))

    def set_chip_next_round(self, chip_id: str, next_unix_ns: int) -> None:
        self._db.execute("UPDATE chips SET next_round_unix_ns = ? WHERE chip_id = ?",
                         (next_unix_ns, chip_id))

    def set_verified_until(self, chip_id: str, until_unix_ns: int | None) -> None:
        if until_unix_ns is None:
            self._db.execute("DELETE FROM verified_until WHERE chip_id = ?", (chip_id,))
        else:
            self._db.execute("INSERT OR REPLACE INTO verified_until VALUES (?,?)",
                             (chip_id, until_unix_ns))

    def expire_verified(self, now_unix_ns: int) -> list[str]:
        """Move every `verified` chip whose TTL has passed to `inconclusive`; their ids."""
        with self._tx():
            expired = [str(r[0]) for r in self._all(
                "SELECT chip_id FROM chips WHERE state = 'verified' AND NOT EXISTS (SELECT 1"
                " FROM verified_until v WHERE v.chip_id = chips.chip_id"
                " AND v.until_unix_ns > ?) ORDER BY chip_id", (now_unix_ns,))]
            self._db.executemany(
                "UPDATE chips SET state = 'inconclusive', state_since_unix_ns = ?"
                " WHERE chip_id = ?", [(now_unix_ns, chip_id) for chip_id in expired])
            self._db.execute("DELETE FROM verified_until WHERE until_unix_ns <= ?",
                             (now_unix_ns,))
        return expired

    # -- rounds and tasks --
    def add_round(self, rnd: Round, tasks: Sequence[tuple[str, str, int]]) -> None:
        """Create a round and one task per (landmark_id, host, port) target address."""
        with self._tx():
            self._db.execute("INSERT INTO rounds VALUES (?,?,?,?,?,0)",
                             (rnd.round_id, rnd.target_kind, rnd.target_id,
                              rnd.started_unix_ns, rnd.deadline_unix_ns))
            self._db.executemany(
                "INSERT INTO tasks(round_id, landmark_id, target_kind, target_id, host, port,"
                " issued_unix_ns, expires_unix_ns) VALUES (?,?,?,?,?,?,?,?)",
                [(rnd.round_id, lm, rnd.target_kind, rnd.target_id, host, port,
                  rnd.started_unix_ns, rnd.deadline_unix_ns) for lm, host, port in tasks])

    def open_rounds(self) -> list[Round]:
        return [Round(r["round_id"], r["target_kind"], r["target_id"], r["started_unix_ns"],
                      r["deadline_unix_ns"])
                for r in self._all("SELECT * FROM rounds WHERE closed = 0")]

    def round_tasks(self, round_id: str) -> list[TaskRow]:
        return [_task(r) for r in self._all(
            "SELECT * FROM tasks WHERE round_id = ? AND cancelled = 0", (round_id,))]

    def close_round(self, round_id: str) -> None:
        self._db.execute("UPDATE rounds SET closed = 1 WHERE round_id = ?", (round_id,))

    def add_task(self, round_id: str, *, landmark_id: str, target_kind: str, target_id: str,
                 host: str, port: int, issued_unix_ns: int, expires_unix_ns: int) -> int:
        cur = self._db.execute(
            "INSERT INTO tasks(round_id, landmark_id, target_kind, target_id, host, port,"
            " issued_unix_ns, expires_unix_ns) VALUES (?,?,?,?,?,?,?,?)",
            (round_id, landmark_id, target_kind, target_id, host, port, issued_unix_ns,
             expires_unix_ns))
        assert cur.lastrowid is not None
        return cur.lastrowid

    def cancel_task(self, task_id: int) -> None:
        self._db.execute("UPDATE tasks SET cancelled = 1 WHERE task_id = ?", (task_id,))

    def take_tasks(self, landmark_id: str, now_unix_ns: int) -> list[TaskRow]:
        with self._tx():
            rows = self._all(
                "SELECT * FROM tasks WHERE landmark_id = ? AND delivered_unix_ns IS NULL"
                " AND cancelled = 0 AND expires_unix_ns > ? ORDER BY task_id LIMIT 1000",
                (landmark_id, now_unix_ns))
            self._db.executemany("UPDATE tasks SET delivered_unix_ns = ? WHERE task_id = ?",
                                 [(now_unix_ns, r["task_id"]) for r in rows])
        return [_task(r) for r in rows]

    def find_task(self, landmark_id: str, target_kind: str, target_id: str,
                  sent_unix_ns: int, slack_ns: int) -> TaskRow | None:
        row = self._one(
            "SELECT * FROM tasks WHERE landmark_id = ? AND target_kind = ? AND target_id = ?"
            " AND issued_unix_ns <= ? AND expires_unix_ns >= ? AND cancelled = 0"
            " ORDER BY issued_unix_ns DESC LIMIT 1",
            (landmark_id, target_kind, target_id, sent_unix_ns + slack_ns,
             sent_unix_ns - slack_ns))
        return _task(row) if row else None

    def tasks_overlapping(self, landmark_id: str, target_ids: Sequence[str],
                          from_unix_ns: int, until_unix_ns: int) -> list[TaskRow]:
        """Live tasks of this landmark for these targets whose validity overlaps the interval:
        one query per uploaded batch instead of one per record."""
        found: list[TaskRow] = []
        unique = sorted(set(target_ids))
        for start in range(0, len(unique), 500):
            chunk = unique[start:start + 500]
            found.extend(_task(r) for r in self._all(
                f"SELECT * FROM tasks WHERE landmark_id = ? AND target_id IN"
                f" ({','.join('?' * len(chunk))}) AND issued_unix_ns <= ?"
                f" AND expires_unix_ns >= ? AND cancelled = 0",
                [landmark_id, *chunk, until_unix_ns, from_unix_ns]))
        return found

    def landmark_task_stats(self, since_unix_ns: int,
                            settled_unix_ns: int) -> dict[str, tuple[int, int, int]]:
        """Per landmark, chip tasks issued since `since` whose answers are due by `settled`
        (so tasks still in flight never count as lost): (delivered, answered, distinct chips)."""
        rows = self._all(
            "SELECT landmark_id, COUNT(*) AS n, SUM(answered) AS a,"
            " COUNT(DISTINCT target_id) AS c FROM tasks WHERE target_kind = 'chip'"
            " AND delivered_unix_ns IS NOT NULL AND issued_unix_ns >= ?"
            " AND expires_unix_ns <= ? AND cancelled = 0"
            " GROUP BY landmark_id", (since_unix_ns, settled_unix_ns))
        return {r["landmark_id"]: (r["n"], r["a"] or 0, r["c"]) for r in rows}

    # -- ingestion --
    def batch_record(self, batch_id: str) -> tuple[str, str] | None:
        """(landmark id, stored result JSON) of an ingested batch id."""
        row = self._one("SELECT landmark_id, result FROM batches WHERE batch_id = ?",
                        (batch_id,))
        return (str(row["landmark_id"]), str(row["result"])) if row else None

    def used_nonces(self, nonces: Sequence[bytes]) -> set[bytes]:
        found: set[bytes] = set()
        for start in range(0, len(nonces), 500):
            chunk = nonces[start:start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(bytes(r[0]) for r in self._db.execute(
                f"SELECT nonce FROM measurements WHERE nonce IN ({marks})", chunk))
        return found

    def ingest(self, batch_id: str, landmark_id: str, measurements: Sequence[StoredMeasurement],
               result_json: str, now_unix_ns: int) -> None:
        with self._tx():
            self._db.execute("INSERT INTO batches VALUES (?,?,?,?)",
                             (batch_id, landmark_id, now_unix_ns, result_json))
            self._db.executemany(
                "INSERT INTO measurements(batch_id, landmark_id, target_kind, target_id, nonce,"
                " sent_unix_ns, rtt_ns, clock_source, round_id, task_id, record,"
                " received_unix_ns) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [(m.batch_id, m.landmark_id, m.target_kind, m.target_id, m.nonce,
                  m.sent_unix_ns, m.rtt_ns, m.clock_source, m.round_id, m.task_id,
                  m.record_json, now_unix_ns) for m in measurements])
            # One update per task and per chip, not per record: a batch often holds several
            # answers to the same task.
            latest: dict[str, int] = {}
            for m in measurements:
                if m.target_kind == "chip":
                    latest[m.target_id] = max(latest.get(m.target_id, 0), m.sent_unix_ns)
            self._db.executemany("UPDATE tasks SET answered = 1 WHERE task_id = ?",
                                 [(task_id,) for task_id in sorted({m.task_id
                                                                    for m in measurements})])
            self._db.executemany(
                "UPDATE chips SET last_response_unix_ns = MAX(COALESCE(last_response_unix_ns,"
                " 0), ?) WHERE chip_id = ?",
                [(sent_unix_ns, chip_id) for chip_id, sent_unix_ns in latest.items()])

    def round_measurements(self, round_id: str) -> list[MeasurementRow]:
        return [MeasurementRow(**dict(r)) for r in self._all(
            "SELECT measurement_id, landmark_id, target_kind, target_id, rtt_ns, sent_unix_ns,"
            " round_id FROM measurements WHERE round_id = ?", (round_id,))]

    def mesh_measurements(self, since_unix_ns: int) -> list[MeasurementRow]:
        return [MeasurementRow(**dict(r)) for r in self._all(
            "SELECT measurement_id, landmark_id, target_kind, target_id, rtt_ns, sent_unix_ns,"
            " round_id FROM measurements WHERE target_kind = 'landmark' AND sent_unix_ns >= ?",
            (since_unix_ns,))]

    def measurement_records(self, ids: Sequence[int]) -> list[str]:
        """The uploaded record JSON of each id, in the order given."""
        by_id = {r[0]: str(r[1]) for r in self._all(
            f"SELECT measurement_id, record FROM measurements WHERE measurement_id IN"
            f" ({','.join('?' * len(ids))})", list(ids))} if ids else {}
        return [by_id[i] for i in ids if i in by_id]

    def count_measurements(self) -> int:
        row = self._one("SELECT COUNT(*) FROM measurements")
        return int(row[0]) if row else 0

    # -- verdicts --
    def add_verdict(self, chip_id: str, *, round_id: str, verdict: str, created_unix_ns: int,
                    measurement_ids: Sequence[int], landmarks: Sequence[dict[str, Any]],
                    assessment: dict[str, Any] | None, reason: str,
                    licence: dict[str, Any], reason_code: str | None = None,
                    key_protection: str = "software") -> VerdictRecord:
        with self._tx():
            cur = self._db.execute(
                "INSERT INTO verdicts(chip_id, round_id, verdict, created_unix_ns,"
                " measurement_ids, landmarks, assessment, reason, licence, reason_code,"
                " key_protection) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (chip_id, round_id, verdict, created_unix_ns, json.dumps(list(measurement_ids)),
                 json.dumps(list(landmarks)),
                 json.dumps(assessment) if assessment is not None else None, reason,
                 json.dumps(licence), reason_code, key_protection))
        assert cur.lastrowid is not None
        return VerdictRecord(cur.lastrowid, chip_id, round_id, verdict, created_unix_ns,
                             tuple(measurement_ids), tuple(landmarks), assessment, reason,
                             licence, reason_code, key_protection)

    def verdicts(self, chip_id: str, before_id: int | None, limit: int) -> list[VerdictRecord]:
        return [_verdict(r) for r in self._all(
            "SELECT * FROM verdicts WHERE chip_id = ? AND verdict_id < ?"
            " ORDER BY verdict_id DESC LIMIT ?",
            (chip_id, before_id if before_id is not None else 2**62, limit))]

    def last_verdict(self, chip_id: str) -> VerdictRecord | None:
        rows = self.verdicts(chip_id, None, 1)
        return rows[0] if rows else None

    # -- alerts --
    def open_alert(self, type_: str, *, severity: str, subject_kind: str, subject_id: str,
                   message: str, details: dict[str, Any], now_unix_ns: int,
                   outbox: Iterable[str]) -> Alert | None:
        """Open an alert unless one is unresolved for (subject, type); None if it was."""
        with self._tx():
            cur = self._db.execute(
                "INSERT OR IGNORE INTO alerts(type, severity, status, subject_kind, subject_id,"
                " message, details, opened_unix_ns, updated_unix_ns)"
                " VALUES (?,?,'open',?,?,?,?,?,?)",
                (type_, severity, subject_kind, subject_id, message, json.dumps(details),
                 now_unix_ns, now_unix_ns))
            if cur.rowcount == 0:
                return None
            alert = self.alert(int(cur.lastrowid or 0))
            assert alert is not None
            self._enqueue(outbox, "alert.opened", alert, now_unix_ns)
        return alert

    def update_alert(self, alert_id: int, *, action: str, by: str, reason: str,
                     now_unix_ns: int, outbox: Iterable[str]) -> Alert:
        column = {"acknowledge": "acknowledged", "resolve": "resolved"}[action]
        with self._tx():
            self._db.execute(
                f"UPDATE alerts SET status = ?, {column}_by = ?, {column}_reason = ?,"
                f" {column}_unix_ns = ?, updated_unix_ns = ? WHERE alert_id = ?",
                (column, by, reason, now_unix_ns, now_unix_ns, alert_id))
            alert = self.alert(alert_id)
            assert alert is not None
            self._enqueue(outbox, f"alert.{column}", alert, now_unix_ns)
        return alert

    def _enqueue(self, urls: Iterable[str], event: str, alert: Alert, now_unix_ns: int) -> None:
        from verifier.alerts import alert_json  # one JSON shape for webhooks, SSE and REST

        body = json.dumps({"event": event, "alert": alert_json(alert)},
                          separators=(",", ":")).encode()
        self._db.executemany(
            "INSERT INTO outbox(url, body, next_attempt_unix_ns) VALUES (?,?,?)",
            [(url, body, now_unix_ns) for url in urls])

    def alert(self, alert_id: int) -> Alert | None:
        row = self._one("SELECT * FROM alerts WHERE alert_id = ?", (alert_id,))
        return _alert(row) if row else None

    def unresolved_alert(self, subject_kind: str, subject_id: str, type_: str) -> Alert | None:
        row = self._one("SELECT * FROM alerts WHERE subject_kind = ? AND subject_id = ?"
                        " AND type = ? AND status != 'resolved'",
                        (subject_kind, subject_id, type_))
        return _alert(row) if row else None

    def alerts(self, flt: AlertFilter) -> list[Alert]:
        where, args = ["alert_id < ?"], [flt.before_id if flt.before_id is not None else 2**62]
        for column in ("status", "type", "subject_kind", "subject_id", "severity"):
            value = getattr(flt, column)
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        args.append(flt.limit)
        return [_alert(r) for r in self._all(
            f"SELECT * FROM alerts WHERE {' AND '.join(where)} ORDER BY alert_id DESC LIMIT ?",
            args)]

    def count_open_alerts(self) -> int:
        row = self._one("SELECT COUNT(*) FROM alerts WHERE status != 'resolved'")
        return int(row[0]) if row else 0

    def due_outbox(self, now_unix_ns: int, limit: int) -> list[OutboxItem]:
        return [OutboxItem(r["outbox_id"], r["url"], bytes(r["body"]), r["attempts"])
                for r in self._all(
                    "SELECT outbox_id, url, body, attempts FROM outbox WHERE done_unix_ns IS NULL"
                    " AND gave_up = 0 AND next_attempt_unix_ns <= ? ORDER BY outbox_id LIMIT ?",
                    (now_unix_ns, limit))]

    def outbox_done(self, outbox_id: int, now_unix_ns: int) -> None:
        self._db.execute("UPDATE outbox SET done_unix_ns = ?, attempts = attempts + 1"
                         " WHERE outbox_id = ?", (now_unix_ns, outbox_id))

    def outbox_retry(self, outbox_id: int, next_unix_ns: int, error: str, give_up: bool) -> None:
        self._db.execute("UPDATE outbox SET attempts = attempts + 1, next_attempt_unix_ns = ?,"
                         " last_error = ?, gave_up = ? WHERE outbox_id = ?",
                         (next_unix_ns, error[:500], int(give_up), outbox_id))

    # -- kv --
    def get_kv(self, key: str) -> str | None:
        row = self._one("SELECT value FROM kv WHERE key = ?", (key,))
        return str(row["value"]) if row else None

    def put_kv(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO kv VALUES (?,?)", (key, value))


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
