"""The core tables of a `Store`: tokens, policies, landmarks, chips, rounds and tasks,
ingestion, verdicts, alerts with their webhook outbox, key/value. SQL both engines run."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import fields
from typing import Any, ClassVar

from verifier.model import (
    Alert,
    AlertFilter,
    Chip,
    Landmark,
    MeasurementRow,
    OutboxItem,
    Policy,
    Round,
    TaskRow,
    VerdictRecord,
)
from verifier.store import rows
from verifier.store.fleet import UPSERT_CHIP, chip_values
from verifier.store.schema import Dialect
from verifier.store.sql import SqlBase

# Every Policy field is a column of the same name (migrations 1 and 6).
_POLICY_COLUMNS = tuple(f.name for f in fields(Policy))
_PUT_POLICY = (f"INSERT INTO policies({', '.join(_POLICY_COLUMNS)})"
               f" VALUES ({', '.join('?' * len(_POLICY_COLUMNS))}) ON CONFLICT(name) DO UPDATE SET "
               + ", ".join(f"{c}=excluded.{c}" for c in _POLICY_COLUMNS[1:]))


class CoreTables(SqlBase):
    """The `Store` methods outside operations and revocations (one mutating method = one
    transaction)."""

    # -- tokens --
    def add_token(self, token_sha256: bytes, role: str, label: str, landmark_id: str | None,
                  now_unix_ns: int) -> int:
        with self._tx():
            row = self._one(
                "INSERT INTO tokens(token_sha256, role, label, landmark_id, created_unix_ns)"
                " VALUES (?,?,?,?,?) RETURNING token_id",
                (token_sha256, role, label, landmark_id, now_unix_ns))
        return int(row[0])

    # -- policies --
    def put_policy(self, policy: Policy) -> None:
        with self._tx():
            self._db.execute(_PUT_POLICY, tuple(getattr(policy, c) for c in _POLICY_COLUMNS))

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
        return rows.landmark(row) if row else None

    def landmarks(self) -> list[Landmark]:
        return [rows.landmark(r) for r in self._all("SELECT * FROM landmarks ORDER BY landmark_id")]

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
            self._db.execute(UPSERT_CHIP, chip_values(chip))

    def chip(self, chip_id: str) -> Chip | None:
        row = self._one("SELECT * FROM chips WHERE chip_id = ?", (chip_id,))
        return rows.chip(row) if row else None

    def chips(self) -> list[Chip]:
        return [rows.chip(r) for r in self._all("SELECT * FROM chips ORDER BY chip_id")]

    def set_chip_state(self, chip_id: str, state: str, now_unix_ns: int) -> None:
        self._db.execute(
            "UPDATE chips SET state_since_unix_ns = CASE WHEN state = ? THEN state_since_unix_ns"
            " ELSE ? END, state = ? WHERE chip_id = ?", (state, now_unix_ns, state, chip_id))

    def set_chip_next_round(self, chip_id: str, next_unix_ns: int) -> None:
        self._db.execute("UPDATE chips SET next_round_unix_ns = ? WHERE chip_id = ?",
                         (next_unix_ns, chip_id))

    def set_verified_until(self, chip_id: str, until_unix_ns: int | None) -> None:
        """Until when `verified` counts; None: not at all (kept as 0, so `expire_verified`
        finds the chip through the index on the time instead of scanning every chip)."""
        self._db.execute("INSERT INTO verified_until VALUES (?,?) ON CONFLICT(chip_id)"
                         " DO UPDATE SET until_unix_ns = excluded.until_unix_ns",
                         (chip_id, 0 if until_unix_ns is None else until_unix_ns))

    def expire_verified(self, now_unix_ns: int) -> list[str]:
        """Move every `verified` chip whose TTL has passed to `inconclusive`; their ids. Reads
        only the TTLs that ran out (migration 2 gave every `verified` chip a row). Sorted here,
        not by ORDER BY: that made SQLite walk the whole chips table in id order (55 ms a tick
        at 100,000 chips, every poll queued behind it) instead of the TTL index."""
        with self._tx():
            expired = sorted(str(r[0]) for r in self._all(
                "SELECT c.chip_id FROM verified_until v JOIN chips c ON c.chip_id = v.chip_id"
                " WHERE v.until_unix_ns <= ? AND c.state = 'verified'", (now_unix_ns,)))
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
        return [rows.task(r) for r in self._all(
            "SELECT * FROM tasks WHERE round_id = ? AND cancelled = 0 ORDER BY task_id",
            (round_id,))]

    def close_round(self, round_id: str) -> bool:
        """Close the round; False when it was closed already (or does not exist)."""
        return self._db.execute("UPDATE rounds SET closed = 1 WHERE round_id = ? AND closed = 0",
                                (round_id,)).rowcount == 1

    def add_task(self, round_id: str, *, landmark_id: str, target_kind: str, target_id: str,
                 host: str, port: int, issued_unix_ns: int, expires_unix_ns: int) -> int:
        row = self._one(
            "INSERT INTO tasks(round_id, landmark_id, target_kind, target_id, host, port,"
            " issued_unix_ns, expires_unix_ns) VALUES (?,?,?,?,?,?,?,?) RETURNING task_id",
            (round_id, landmark_id, target_kind, target_id, host, port, issued_unix_ns,
             expires_unix_ns))
        return int(row[0])

    def cancel_task(self, task_id: int) -> None:
        self._db.execute("UPDATE tasks SET cancelled = 1 WHERE task_id = ?", (task_id,))

    def take_tasks(self, landmark_id: str, now_unix_ns: int) -> list[TaskRow]:
        """Hand out this landmark's undelivered live tasks (oldest first, at most 1,000): one
        statement, so one round trip on PostgreSQL however many there are. The outer
        `delivered_unix_ns IS NULL` makes a concurrent poll through another replica, which waited
        for these rows' locks, skip them instead of handing them out twice."""
        with self._tx():
            taken = self._all(
                "UPDATE tasks SET delivered_unix_ns = ? WHERE delivered_unix_ns IS NULL"
                " AND task_id IN (SELECT task_id FROM tasks WHERE landmark_id = ?"
                " AND delivered_unix_ns IS NULL AND cancelled = 0 AND expires_unix_ns > ?"
                " ORDER BY task_id LIMIT 1000) RETURNING *",
                (now_unix_ns, landmark_id, now_unix_ns))
        return sorted((rows.task(r) for r in taken), key=lambda task: task.task_id)

    def find_task(self, landmark_id: str, target_kind: str, target_id: str,
                  sent_unix_ns: int, slack_ns: int) -> TaskRow | None:
        row = self._one(
            "SELECT * FROM tasks WHERE landmark_id = ? AND target_kind = ? AND target_id = ?"
            " AND issued_unix_ns <= ? AND expires_unix_ns >= ? AND cancelled = 0"
            " ORDER BY issued_unix_ns DESC LIMIT 1",
            (landmark_id, target_kind, target_id, sent_unix_ns + slack_ns,
             sent_unix_ns - slack_ns))
        return rows.task(row) if row else None

    def tasks_overlapping(self, landmark_id: str, target_ids: Sequence[str],
                          from_unix_ns: int, until_unix_ns: int) -> list[TaskRow]:
        """Live tasks of this landmark for these targets whose validity overlaps the interval:
        one query per uploaded batch instead of one per record."""
        found: list[TaskRow] = []
        unique = sorted(set(target_ids))
        for start in range(0, len(unique), 500):
            chunk = unique[start:start + 500]
            found.extend(rows.task(r) for r in self._all(
                f"SELECT * FROM tasks WHERE landmark_id = ? AND target_id IN"
                f" ({','.join('?' * len(chunk))}) AND issued_unix_ns <= ?"
                f" AND expires_unix_ns >= ? AND cancelled = 0",
                [landmark_id, *chunk, until_unix_ns, from_unix_ns]))
        return found

    def tasks_by_id(self, task_ids: Sequence[int]) -> list[TaskRow]:
        """The live (not cancelled) tasks among these ids, whatever their landmark: ingestion
        checks that the task a record names is its landmark's and target's."""
        found: list[TaskRow] = []
        unique = sorted(set(task_ids))
        for start in range(0, len(unique), 500):
            chunk = unique[start:start + 500]
            found.extend(rows.task(r) for r in self._all(
                f"SELECT * FROM tasks WHERE task_id IN ({','.join('?' * len(chunk))})"
                f" AND cancelled = 0", chunk))
        return found

    # The landmark-fault check (verifier.verdicts.landmark_faults) counts a chip task when it
    # was delivered, not cancelled, issued since `since` and due by `settled` (so tasks still in
    # flight never count as lost). Both read each landmark's own tasks through
    # `tasks_by_landmark_time` (migration 9), never the fleet's window.
    _FAULT_TASK_TERMS = (
        "issued_unix_ns >= ? AND delivered_unix_ns IS NOT NULL AND cancelled = 0"
        " AND expires_unix_ns <= ?")
    # The probe's first answer, in the index's order. PostgreSQL plans a `LIMIT 1` for an early
    # match: with the kind and landmark fixed by equality (so the ordering reduces to the time)
    # it would as soon walk `tasks_issued`, the whole fleet's window, which a silent landmark
    # never ends early. A kind bounded by a range is not a constant, so only the landmark's
    # index yields (target_kind, issued) without sorting. SQLite plans the plain equality
    # right, and could not use the time after a range.
    _FAULT_PROBE_ORDER: ClassVar[dict[Dialect, tuple[str, str]]] = {
        "sqlite": ("target_kind = 'chip'", "issued_unix_ns"),
        "postgresql": ("target_kind >= 'chip' AND target_kind <= 'chip'",
                       "target_kind, issued_unix_ns"),
    }

    def landmarks_answered(self, landmark_ids: Sequence[str], since_unix_ns: int,
                           settled_unix_ns: int) -> set[str]:
        """Those of these landmarks with an answered chip task in the window: one statement per
        500 landmarks, a probe per landmark that stops at its first answer (a scalar subquery,
        which PostgreSQL runs per row, never as a join over the window)."""
        found: set[str] = set()
        kind, order = self._FAULT_PROBE_ORDER[self.dialect]
        unique = sorted(set(landmark_ids))
        for start in range(0, len(unique), 500):
            chunk = unique[start:start + 500]
            values = ", ".join(["(CAST(? AS TEXT))"] * len(chunk))
            found.update(r[0] for r in self._all(
                f"WITH probe(landmark_id) AS (VALUES {values})"
                " SELECT landmark_id FROM probe WHERE (SELECT 1 FROM tasks"
                f" WHERE tasks.landmark_id = probe.landmark_id AND {kind} AND answered = 1"
                f" AND {self._FAULT_TASK_TERMS} ORDER BY {order} LIMIT 1) = 1",
                [*chunk, since_unix_ns, settled_unix_ns]))
        return found

    def landmark_task_counts(self, landmark_ids: Sequence[str], since_unix_ns: int,
                             settled_unix_ns: int) -> dict[str, tuple[int, int]]:
        """Per landmark among these with a counted chip task in the window: (tasks, distinct
        chips). Read for landmarks that answered none, so bounded by their own tasks."""
        found: dict[str, tuple[int, int]] = {}
        unique = sorted(set(landmark_ids))
        for start in range(0, len(unique), 500):
            chunk = unique[start:start + 500]
            found.update((r[0], (int(r[1]), int(r[2]))) for r in self._all(
                "SELECT landmark_id, COUNT(*), COUNT(DISTINCT target_id) FROM tasks"
                f" WHERE landmark_id IN ({','.join('?' * len(chunk))})"
                f" AND target_kind = 'chip' AND {self._FAULT_TASK_TERMS} GROUP BY landmark_id",
                [*chunk, since_unix_ns, settled_unix_ns]))
        return found

    # -- ingestion: verifier.store.ingest --
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
        row = self._one(  # one statement: atomic alone, no savepoint inside the caller's
            "INSERT INTO verdicts(chip_id, round_id, verdict, created_unix_ns,"
            " measurement_ids, landmarks, assessment, reason, licence, reason_code,"
            " key_protection) VALUES (?,?,?,?,?,?,?,?,?,?,?) RETURNING verdict_id",
            (chip_id, round_id, verdict, created_unix_ns, json.dumps(list(measurement_ids)),
             json.dumps(list(landmarks)),
             json.dumps(assessment) if assessment is not None else None, reason,
             json.dumps(licence), reason_code, key_protection))
        return VerdictRecord(int(row[0]), chip_id, round_id, verdict, created_unix_ns,
                             tuple(measurement_ids), tuple(landmarks), assessment, reason,
                             licence, reason_code, key_protection)

    def verdicts(self, chip_id: str, before_id: int | None, limit: int) -> list[VerdictRecord]:
        return [rows.verdict(r) for r in self._all(
            "SELECT * FROM verdicts WHERE chip_id = ? AND verdict_id < ?"
            " ORDER BY verdict_id DESC LIMIT ?",
            (chip_id, before_id if before_id is not None else 2**62, limit))]

    def last_verdict(self, chip_id: str) -> VerdictRecord | None:
        latest = self.verdicts(chip_id, None, 1)
        return latest[0] if latest else None

    # -- alerts --
    def open_alert(self, type_: str, *, severity: str, subject_kind: str, subject_id: str,
                   message: str, details: dict[str, Any], now_unix_ns: int,
                   outbox: Iterable[str]) -> Alert | None:
        """Open an alert unless one is unresolved for (subject, type); None if it was."""
        with self._tx():
            row = self._one(
                "INSERT INTO alerts(type, severity, status, subject_kind, subject_id,"
                " message, details, opened_unix_ns, updated_unix_ns)"
                " VALUES (?,?,'open',?,?,?,?,?,?) ON CONFLICT DO NOTHING RETURNING alert_id",
                (type_, severity, subject_kind, subject_id, message, json.dumps(details),
                 now_unix_ns, now_unix_ns))
            if row is None:
                return None
            alert = self.alert(int(row[0]))
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

        body = json.dumps({"event": event, "alert": alert.to_json()},
                          separators=(",", ":")).encode()
        self._db.executemany(
            "INSERT INTO outbox(url, body, next_attempt_unix_ns) VALUES (?,?,?)",
            [(url, body, now_unix_ns) for url in urls])

    def alert(self, alert_id: int) -> Alert | None:
        row = self._one("SELECT * FROM alerts WHERE alert_id = ?", (alert_id,))
        return rows.alert(row) if row else None

    def unresolved_alert(self, subject_kind: str, subject_id: str, type_: str) -> Alert | None:
        row = self._one("SELECT * FROM alerts WHERE subject_kind = ? AND subject_id = ?"
                        " AND type = ? AND status != 'resolved'",
                        (subject_kind, subject_id, type_))
        return rows.alert(row) if row else None

    def unresolved_alert_subjects(self, subject_kind: str, type_: str) -> set[str]:
        """The subjects of this kind with an unresolved alert of this type (through the
        `alerts_one_open` index: bounded by the open alerts, not every alert kept)."""
        return {r[0] for r in self._all(
            "SELECT subject_id FROM alerts WHERE subject_kind = ? AND type = ?"
            " AND status != 'resolved'", (subject_kind, type_))}

    def alerts(self, flt: AlertFilter) -> list[Alert]:
        where, args = ["alert_id < ?"], [flt.before_id if flt.before_id is not None else 2**62]
        for column in ("status", "type", "subject_kind", "subject_id", "severity"):
            value = getattr(flt, column)
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        args.append(flt.limit)
        return [rows.alert(r) for r in self._all(
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
        self._db.execute("INSERT INTO kv VALUES (?,?) ON CONFLICT(key)"
                         " DO UPDATE SET value = excluded.value", (key, value))
