"""Store methods for operations (channels, routing, mutes, delivery log, zones, retention):
the interface (`OpsStore`) and its SQLite implementation (`SqliteOpsTables`, mixed into
`verifier.store.SqliteStore` so both share one connection and one transaction)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from verifier.model import Alert
from verifier.ops_model import (
    Channel,
    Delivery,
    Membership,
    MuteRule,
    Notification,
    RoutingRule,
    Zone,
)

OPS_SCHEMA = """
CREATE TABLE IF NOT EXISTS channels (
  channel_id TEXT PRIMARY KEY, kind TEXT NOT NULL, settings TEXT NOT NULL,
  enabled INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS routing_rules (
  rule_id INTEGER PRIMARY KEY, channel_id TEXT NOT NULL REFERENCES channels ON DELETE CASCADE,
  alert_types TEXT NOT NULL, min_severity TEXT NOT NULL, groups_ TEXT NOT NULL,
  zones TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS mute_rules (
  rule_id INTEGER PRIMARY KEY, reason TEXT NOT NULL, chip_id TEXT, group_ TEXT, zone TEXT,
  landmark_id TEXT, alert_type TEXT, created_by TEXT NOT NULL,
  created_unix_ns INTEGER NOT NULL, expires_unix_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS notifications (
  notification_id INTEGER PRIMARY KEY, channel_id TEXT NOT NULL, alert_id INTEGER NOT NULL,
  event TEXT NOT NULL, body BLOB NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_unix_ns INTEGER NOT NULL, done_unix_ns INTEGER,
  gave_up INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS notifications_due ON notifications(next_attempt_unix_ns)
  WHERE done_unix_ns IS NULL AND gave_up = 0;
CREATE TABLE IF NOT EXISTS deliveries (
  delivery_id INTEGER PRIMARY KEY, destination TEXT NOT NULL, kind TEXT NOT NULL,
  alert_id INTEGER NOT NULL, event TEXT NOT NULL, attempt INTEGER NOT NULL,
  time_unix_ns INTEGER NOT NULL, outcome TEXT NOT NULL, status_code INTEGER, error TEXT);
CREATE INDEX IF NOT EXISTS deliveries_time ON deliveries(time_unix_ns);
CREATE TABLE IF NOT EXISTS zones (
  zone_id TEXT PRIMARY KEY, name TEXT NOT NULL, lat_deg REAL NOT NULL, lon_deg REAL NOT NULL,
  licence TEXT);
CREATE TABLE IF NOT EXISTS chip_membership (
  chip_id TEXT PRIMARY KEY, zone_id TEXT, groups_ TEXT NOT NULL);
"""


def migrate_ops(db: sqlite3.Connection) -> None:
    """Create the operations tables and add the alert's mute column to older databases."""
    db.executescript(OPS_SCHEMA)
    columns = {r[1] for r in db.execute("PRAGMA table_info(alerts)")}
    if "muted_by_rule" not in columns:
        db.execute("ALTER TABLE alerts ADD COLUMN muted_by_rule INTEGER")


class OpsStore(Protocol):
    # channels and routing
    def put_channel(self, channel: Channel) -> None: ...
    def channel(self, channel_id: str) -> Channel | None: ...
    def channels(self) -> list[Channel]: ...
    def delete_channel(self, channel_id: str) -> bool: ...
    def add_routing_rule(self, channel_id: str, *, alert_types: Sequence[str],
                         min_severity: str, groups: Sequence[str],
                         zones: Sequence[str]) -> RoutingRule: ...
    def routing_rules(self) -> list[RoutingRule]: ...
    def delete_routing_rule(self, rule_id: int) -> bool: ...
    # mutes
    def add_mute(self, *, reason: str, chip_id: str | None, group: str | None,
                 zone: str | None, landmark_id: str | None, alert_type: str | None,
                 created_by: str, created_unix_ns: int, expires_unix_ns: int) -> MuteRule: ...
    def mutes(self, active_at_unix_ns: int | None) -> list[MuteRule]: ...
    def delete_mute(self, rule_id: int) -> bool: ...
    def mark_alert_muted(self, alert_id: int, rule_id: int | None) -> Alert: ...
    # channel outbox and the delivery log
    def enqueue_notifications(self, channel_ids: Iterable[str], event: str, alert: Alert,
                              now_unix_ns: int) -> None: ...
    def due_notifications(self, now_unix_ns: int, limit: int) -> list[Notification]: ...
    def notification_done(self, notification_id: int, now_unix_ns: int) -> None: ...
    def notification_retry(self, notification_id: int, next_unix_ns: int,
                           give_up: bool) -> None: ...
    def add_delivery(self, *, destination: str, kind: str, alert_id: int, event: str,
                     attempt: int, time_unix_ns: int, outcome: str, status_code: int | None,
                     error: str | None) -> None: ...
    def deliveries(self, *, destination: str | None, outcome: str | None,
                   before_id: int | None, limit: int) -> list[Delivery]: ...
    # zones and membership
    def put_zone(self, zone: Zone) -> None: ...
    def zone(self, zone_id: str) -> Zone | None: ...
    def zones(self) -> list[Zone]: ...
    def put_membership(self, membership: Membership) -> None: ...
    def membership(self, chip_id: str) -> Membership | None: ...
    def memberships(self) -> dict[str, Membership]: ...
    # retention
    def prune(self, measurements_before_unix_ns: int, log_before_unix_ns: int,
              limit: int) -> dict[str, int]: ...
    def prune_verdicts(self, before_unix_ns: int, limit: int) -> int: ...


class _Sql(Protocol):
    _db: sqlite3.Connection

    def transaction(self) -> AbstractContextManager[None]: ...
    def alert(self, alert_id: int) -> Alert | None: ...


def _rule(row: sqlite3.Row) -> RoutingRule:
    return RoutingRule(row["rule_id"], row["channel_id"], tuple(json.loads(row["alert_types"])),
                       row["min_severity"], tuple(json.loads(row["groups_"])),
                       tuple(json.loads(row["zones"])))


def _mute(row: sqlite3.Row) -> MuteRule:
    values = dict(row)
    values["group"] = values.pop("group_")
    return MuteRule(**values)


def _channel(row: sqlite3.Row) -> Channel:
    return Channel(row["channel_id"], row["kind"], json.loads(row["settings"]),
                   bool(row["enabled"]))


def _zone(row: sqlite3.Row) -> Zone:
    return Zone(row["zone_id"], row["name"], row["lat_deg"], row["lon_deg"],
                json.loads(row["licence"]) if row["licence"] else None)


def _membership(row: sqlite3.Row) -> Membership:
    return Membership(row["chip_id"], row["zone_id"], tuple(json.loads(row["groups_"])))


class SqliteOpsTables:
    """The `OpsStore` methods of `SqliteStore` (one mutating method = one transaction)."""

    # -- channels and routing --
    def put_channel(self: _Sql, channel: Channel) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT INTO channels VALUES (?,?,?,?) ON CONFLICT(channel_id) DO UPDATE SET"
                " kind=excluded.kind, settings=excluded.settings, enabled=excluded.enabled",
                (channel.channel_id, channel.kind, json.dumps(channel.settings),
                 int(channel.enabled)))

    def channel(self: _Sql, channel_id: str) -> Channel | None:
        row = self._db.execute("SELECT * FROM channels WHERE channel_id = ?",
                               (channel_id,)).fetchone()
        return _channel(row) if row else None

    def channels(self: _Sql) -> list[Channel]:
        return [_channel(r) for r in self._db.execute(
            "SELECT * FROM channels ORDER BY channel_id")]

    def delete_channel(self: _Sql, channel_id: str) -> bool:
        with self.transaction():
            self._db.execute("DELETE FROM routing_rules WHERE channel_id = ?", (channel_id,))
            cur = self._db.execute("DELETE FROM channels WHERE channel_id = ?", (channel_id,))
        return cur.rowcount > 0

    def add_routing_rule(self: _Sql, channel_id: str, *, alert_types: Sequence[str],
                         min_severity: str, groups: Sequence[str],
                         zones: Sequence[str]) -> RoutingRule:
        with self.transaction():
            cur = self._db.execute(
                "INSERT INTO routing_rules(channel_id, alert_types, min_severity, groups_, zones)"
                " VALUES (?,?,?,?,?)", (channel_id, json.dumps(list(alert_types)), min_severity,
                                        json.dumps(list(groups)), json.dumps(list(zones))))
        return RoutingRule(int(cur.lastrowid or 0), channel_id, tuple(alert_types),
                           min_severity, tuple(groups), tuple(zones))

    def routing_rules(self: _Sql) -> list[RoutingRule]:
        return [_rule(r) for r in self._db.execute(
            "SELECT * FROM routing_rules ORDER BY rule_id")]

    def delete_routing_rule(self: _Sql, rule_id: int) -> bool:
        with self.transaction():
            cur = self._db.execute("DELETE FROM routing_rules WHERE rule_id = ?", (rule_id,))
        return cur.rowcount > 0

    # -- mutes --
    def add_mute(self: _Sql, *, reason: str, chip_id: str | None, group: str | None,
                 zone: str | None, landmark_id: str | None, alert_type: str | None,
                 created_by: str, created_unix_ns: int, expires_unix_ns: int) -> MuteRule:
        with self.transaction():
            cur = self._db.execute(
                "INSERT INTO mute_rules(reason, chip_id, group_, zone, landmark_id, alert_type,"
                " created_by, created_unix_ns, expires_unix_ns) VALUES (?,?,?,?,?,?,?,?,?)",
                (reason, chip_id, group, zone, landmark_id, alert_type, created_by,
                 created_unix_ns, expires_unix_ns))
        return MuteRule(int(cur.lastrowid or 0), reason, chip_id, group, zone, landmark_id,
                        alert_type, created_by, created_unix_ns, expires_unix_ns)

    def mutes(self: _Sql, active_at_unix_ns: int | None) -> list[MuteRule]:
        """Every mute rule, or only those not yet expired at `active_at_unix_ns`."""
        if active_at_unix_ns is None:
            rows = self._db.execute("SELECT * FROM mute_rules ORDER BY rule_id")
        else:
            rows = self._db.execute("SELECT * FROM mute_rules WHERE expires_unix_ns > ?"
                                    " ORDER BY rule_id", (active_at_unix_ns,))
        return [_mute(r) for r in rows]

    def delete_mute(self: _Sql, rule_id: int) -> bool:
        with self.transaction():
            cur = self._db.execute("DELETE FROM mute_rules WHERE rule_id = ?", (rule_id,))
        return cur.rowcount > 0

    def mark_alert_muted(self: _Sql, alert_id: int, rule_id: int | None) -> Alert:
        with self.transaction():
            self._db.execute("UPDATE alerts SET muted_by_rule = ? WHERE alert_id = ?",
                             (rule_id, alert_id))
        alert = self.alert(alert_id)
        assert alert is not None
        return alert

    # -- channel outbox and delivery log --
    def enqueue_notifications(self: _Sql, channel_ids: Iterable[str], event: str, alert: Alert,
                              now_unix_ns: int) -> None:
        from verifier.alerts import alert_json  # one JSON shape for every channel

        body = json.dumps({"event": event, "alert": alert_json(alert)},
                          separators=(",", ":")).encode()
        with self.transaction():
            self._db.executemany(
                "INSERT INTO notifications(channel_id, alert_id, event, body,"
                " next_attempt_unix_ns) VALUES (?,?,?,?,?)",
                [(channel_id, alert.alert_id, event, body, now_unix_ns)
                 for channel_id in channel_ids])

    def due_notifications(self: _Sql, now_unix_ns: int, limit: int) -> list[Notification]:
        return [Notification(r[0], r[1], r[2], r[3], bytes(r[4]), r[5]) for r in self._db.execute(
            "SELECT notification_id, channel_id, alert_id, event, body, attempts"
            " FROM notifications WHERE done_unix_ns IS NULL AND gave_up = 0"
            " AND next_attempt_unix_ns <= ? ORDER BY notification_id LIMIT ?",
            (now_unix_ns, limit))]

    def notification_done(self: _Sql, notification_id: int, now_unix_ns: int) -> None:
        self._db.execute("UPDATE notifications SET done_unix_ns = ?, attempts = attempts + 1"
                         " WHERE notification_id = ?", (now_unix_ns, notification_id))

    def notification_retry(self: _Sql, notification_id: int, next_unix_ns: int,
                           give_up: bool) -> None:
        self._db.execute("UPDATE notifications SET attempts = attempts + 1,"
                         " next_attempt_unix_ns = ?, gave_up = ? WHERE notification_id = ?",
                         (next_unix_ns, int(give_up), notification_id))

    def add_delivery(self: _Sql, *, destination: str, kind: str, alert_id: int, event: str,
                     attempt: int, time_unix_ns: int, outcome: str, status_code: int | None,
                     error: str | None) -> None:
        self._db.execute(
            "INSERT INTO deliveries(destination, kind, alert_id, event, attempt, time_unix_ns,"
            " outcome, status_code, error) VALUES (?,?,?,?,?,?,?,?,?)",
            (destination, kind, alert_id, event, attempt, time_unix_ns, outcome, status_code,
             error[:500] if error else None))

    def deliveries(self: _Sql, *, destination: str | None, outcome: str | None,
                   before_id: int | None, limit: int) -> list[Delivery]:
        where = ["delivery_id < ?"]
        args: list[Any] = [before_id if before_id is not None else 2**62]
        for column, value in (("destination", destination), ("outcome", outcome)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        args.append(limit)
        return [Delivery(**dict(r)) for r in self._db.execute(
            f"SELECT * FROM deliveries WHERE {' AND '.join(where)}"
            f" ORDER BY delivery_id DESC LIMIT ?", args)]

    # -- zones and membership --
    def put_zone(self: _Sql, zone: Zone) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO zones VALUES (?,?,?,?,?)",
                (zone.zone_id, zone.name, zone.lat_deg, zone.lon_deg,
                 json.dumps(zone.licence) if zone.licence is not None else None))

    def zone(self: _Sql, zone_id: str) -> Zone | None:
        row = self._db.execute("SELECT * FROM zones WHERE zone_id = ?", (zone_id,)).fetchone()
        return _zone(row) if row else None

    def zones(self: _Sql) -> list[Zone]:
        return [_zone(r) for r in self._db.execute("SELECT * FROM zones ORDER BY zone_id")]

    def put_membership(self: _Sql, membership: Membership) -> None:
        with self.transaction():
            self._db.execute("INSERT OR REPLACE INTO chip_membership VALUES (?,?,?)",
                             (membership.chip_id, membership.zone_id,
                              json.dumps(list(membership.groups))))

    def membership(self: _Sql, chip_id: str) -> Membership | None:
        row = self._db.execute("SELECT * FROM chip_membership WHERE chip_id = ?",
                               (chip_id,)).fetchone()
        return _membership(row) if row else None

    def memberships(self: _Sql) -> dict[str, Membership]:
        return {r["chip_id"]: _membership(r)
                for r in self._db.execute("SELECT * FROM chip_membership")}

    # -- retention --
    def prune(self: _Sql, measurements_before_unix_ns: int, log_before_unix_ns: int,
              limit: int) -> dict[str, int]:
        """Delete up to `limit` rows per table: raw measurements (and their batches, tasks and
        closed rounds) received before the first cut-off, finished notifications and
        delivery-log rows before the second. Bounded so a first pass over a large database
        does not hold the database thread for long; call again while a table hits the limit.
        Verdicts keep their measurement ids; the records a verdict used are in the evidence
        log, which is never pruned. Returns rows deleted per table."""
        cut = measurements_before_unix_ns
        conditions: dict[str, tuple[str, int]] = {
            "measurements": ("received_unix_ns < ?", cut),
            "batches": ("received_unix_ns < ?", cut),
            "tasks": ("expires_unix_ns < ? AND round_id IN"
                      " (SELECT round_id FROM rounds WHERE closed = 1)", cut),
            "rounds": ("closed = 1 AND deadline_unix_ns < ?", cut),
            "notifications": ("(done_unix_ns IS NOT NULL OR gave_up = 1)"
                              " AND next_attempt_unix_ns < ?", log_before_unix_ns),
            "outbox": ("(done_unix_ns IS NOT NULL OR gave_up = 1)"
                       " AND next_attempt_unix_ns < ?", log_before_unix_ns),
            "deliveries": ("time_unix_ns < ?", log_before_unix_ns),
        }
        deleted: dict[str, int] = {}
        with self.transaction():
            for table, (where, before) in conditions.items():
                deleted[table] = self._db.execute(
                    f"DELETE FROM {table} WHERE rowid IN"
                    f" (SELECT rowid FROM {table} WHERE {where} LIMIT ?)",
                    (before, limit)).rowcount
        return deleted

    def prune_verdicts(self: _Sql, before_unix_ns: int, limit: int) -> int:
        """Delete up to `limit` verdict rows created before the cut-off, except each chip's
        latest (the chip page and `last_verdict` need it). Their evidence records stay in the
        evidence log."""
        with self.transaction():
            cur = self._db.execute(
                "DELETE FROM verdicts WHERE verdict_id IN (SELECT verdict_id FROM verdicts"
                " WHERE created_unix_ns < ? AND verdict_id NOT IN"
                " (SELECT MAX(verdict_id) FROM verdicts GROUP BY chip_id) LIMIT ?)",
                (before_unix_ns, limit))
        return cur.rowcount
