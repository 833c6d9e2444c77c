"""The operations tables of a `Store`: channels, routing, mutes, the channel outbox, the
delivery log, zones and membership, retention. SQL both engines run."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

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
from verifier.store import rows
from verifier.store.sql import SqlBase

_FINISHED_BEFORE = "(done_unix_ns IS NOT NULL OR gave_up = 1) AND next_attempt_unix_ns < ?"


def _oldest_by_id(table: str, key: str, columns: str, where: str) -> str:
    """The ids among the table's `limit` oldest rows (by id) that match `where` (parameters:
    the limit, then `where`'s)."""
    return (f"SELECT {key} FROM (SELECT {key}, {columns} FROM {table} ORDER BY {key}"
            f" LIMIT ?) AS oldest WHERE {where}")


class OpsTables(SqlBase):
    """The `OpsStore` methods (one mutating method = one transaction)."""

    # -- channels and routing --
    def put_channel(self, channel: Channel) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT INTO channels VALUES (?,?,?,?) ON CONFLICT(channel_id) DO UPDATE SET"
                " kind=excluded.kind, settings=excluded.settings, enabled=excluded.enabled",
                (channel.channel_id, channel.kind, json.dumps(channel.settings),
                 int(channel.enabled)))

    def channel(self, channel_id: str) -> Channel | None:
        row = self._db.execute("SELECT * FROM channels WHERE channel_id = ?",
                               (channel_id,)).fetchone()
        return rows.channel(row) if row else None

    def channels(self) -> list[Channel]:
        return [rows.channel(r) for r in self._db.execute(
            "SELECT * FROM channels ORDER BY channel_id")]

    def delete_channel(self, channel_id: str) -> bool:
        with self.transaction():
            self._db.execute("DELETE FROM routing_rules WHERE channel_id = ?", (channel_id,))
            cur = self._db.execute("DELETE FROM channels WHERE channel_id = ?", (channel_id,))
        return cur.rowcount > 0

    def add_routing_rule(self, channel_id: str, *, alert_types: Sequence[str],
                         min_severity: str, groups: Sequence[str],
                         zones: Sequence[str]) -> RoutingRule:
        with self.transaction():
            row = self._one(
                "INSERT INTO routing_rules(channel_id, alert_types, min_severity, groups_, zones)"
                " VALUES (?,?,?,?,?) RETURNING rule_id",
                (channel_id, json.dumps(list(alert_types)), min_severity,
                 json.dumps(list(groups)), json.dumps(list(zones))))
        return RoutingRule(int(row[0]), channel_id, tuple(alert_types),
                           min_severity, tuple(groups), tuple(zones))

    def routing_rules(self) -> list[RoutingRule]:
        return [rows.routing_rule(r) for r in self._db.execute(
            "SELECT * FROM routing_rules ORDER BY rule_id")]

    def delete_routing_rule(self, rule_id: int) -> bool:
        with self.transaction():
            cur = self._db.execute("DELETE FROM routing_rules WHERE rule_id = ?", (rule_id,))
        return cur.rowcount > 0

    # -- mutes --
    def add_mute(self, *, reason: str, chip_id: str | None, group: str | None,
                 zone: str | None, landmark_id: str | None, alert_type: str | None,
                 created_by: str, created_unix_ns: int, expires_unix_ns: int) -> MuteRule:
        with self.transaction():
            row = self._one(
                "INSERT INTO mute_rules(reason, chip_id, group_, zone, landmark_id, alert_type,"
                " created_by, created_unix_ns, expires_unix_ns) VALUES (?,?,?,?,?,?,?,?,?)"
                " RETURNING rule_id",
                (reason, chip_id, group, zone, landmark_id, alert_type, created_by,
                 created_unix_ns, expires_unix_ns))
        return MuteRule(int(row[0]), reason, chip_id, group, zone, landmark_id,
                        alert_type, created_by, created_unix_ns, expires_unix_ns)

    def mutes(self, active_at_unix_ns: int | None) -> list[MuteRule]:
        """Every mute rule, or only those not yet expired at `active_at_unix_ns`."""
        if active_at_unix_ns is None:
            found = self._all("SELECT * FROM mute_rules ORDER BY rule_id")
        else:
            found = self._all("SELECT * FROM mute_rules WHERE expires_unix_ns > ?"
                              " ORDER BY rule_id", (active_at_unix_ns,))
        return [rows.mute(r) for r in found]

    def delete_mute(self, rule_id: int) -> bool:
        with self.transaction():
            cur = self._db.execute("DELETE FROM mute_rules WHERE rule_id = ?", (rule_id,))
        return cur.rowcount > 0

    def mark_alert_muted(self, alert_id: int, rule_id: int | None) -> Alert:
        with self.transaction():
            self._db.execute("UPDATE alerts SET muted_by_rule = ? WHERE alert_id = ?",
                             (rule_id, alert_id))
        alert = self.alert(alert_id)
        assert alert is not None
        return alert

    # -- channel outbox and delivery log --
    def enqueue_notifications(self, channel_ids: Iterable[str], event: str, alert: Alert,
                              now_unix_ns: int) -> None:

        body = json.dumps({"event": event, "alert": alert.to_json()},
                          separators=(",", ":")).encode()
        with self.transaction():
            self._db.executemany(
                "INSERT INTO notifications(channel_id, alert_id, event, body,"
                " next_attempt_unix_ns) VALUES (?,?,?,?,?)",
                [(channel_id, alert.alert_id, event, body, now_unix_ns)
                 for channel_id in channel_ids])

    def due_notifications(self, now_unix_ns: int, limit: int) -> list[Notification]:
        return [Notification(r[0], r[1], r[2], r[3], bytes(r[4]), r[5]) for r in self._db.execute(
            "SELECT notification_id, channel_id, alert_id, event, body, attempts"
            " FROM notifications WHERE done_unix_ns IS NULL AND gave_up = 0"
            " AND next_attempt_unix_ns <= ? ORDER BY notification_id LIMIT ?",
            (now_unix_ns, limit))]

    def notification_done(self, notification_id: int, now_unix_ns: int) -> None:
        self._db.execute("UPDATE notifications SET done_unix_ns = ?, attempts = attempts + 1"
                         " WHERE notification_id = ?", (now_unix_ns, notification_id))

    def notification_retry(self, notification_id: int, next_unix_ns: int,
                           give_up: bool) -> None:
        self._db.execute("UPDATE notifications SET attempts = attempts + 1,"
                         " next_attempt_unix_ns = ?, gave_up = ? WHERE notification_id = ?",
                         (next_unix_ns, int(give_up), notification_id))

    def add_delivery(self, *, destination: str, kind: str, alert_id: int, event: str,
                     attempt: int, time_unix_ns: int, outcome: str, status_code: int | None,
                     error: str | None) -> None:
        self._db.execute(
            "INSERT INTO deliveries(destination, kind, alert_id, event, attempt, time_unix_ns,"
            " outcome, status_code, error) VALUES (?,?,?,?,?,?,?,?,?)",
            (destination, kind, alert_id, event, attempt, time_unix_ns, outcome, status_code,
             error[:500] if error else None))

    def deliveries(self, *, destination: str | None, outcome: str | None,
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
    def put_zone(self, zone: Zone) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT INTO zones VALUES (?,?,?,?,?) ON CONFLICT(zone_id) DO UPDATE SET"
                " name=excluded.name, lat_deg=excluded.lat_deg, lon_deg=excluded.lon_deg,"
                " licence=excluded.licence",
                (zone.zone_id, zone.name, zone.lat_deg, zone.lon_deg,
                 json.dumps(zone.licence) if zone.licence is not None else None))

    def zone(self, zone_id: str) -> Zone | None:
        row = self._db.execute("SELECT * FROM zones WHERE zone_id = ?", (zone_id,)).fetchone()
        return rows.zone(row) if row else None

    def zones(self) -> list[Zone]:
        return [rows.zone(r) for r in self._db.execute("SELECT * FROM zones ORDER BY zone_id")]

    def put_membership(self, membership: Membership) -> None:
        with self.transaction():
            self._db.execute("INSERT INTO chip_membership VALUES (?,?,?) ON CONFLICT(chip_id)"
                             " DO UPDATE SET zone_id=excluded.zone_id, groups_=excluded.groups_",
                             (membership.chip_id, membership.zone_id,
                              json.dumps(list(membership.groups))))

    def membership(self, chip_id: str) -> Membership | None:
        row = self._db.execute("SELECT * FROM chip_membership WHERE chip_id = ?",
                               (chip_id,)).fetchone()
        return rows.membership(row) if row else None

    def memberships(self) -> dict[str, Membership]:
        return {r["chip_id"]: rows.membership(r)
                for r in self._db.execute("SELECT * FROM chip_membership")}

    # -- retention --
    def prune(self, measurements_before_unix_ns: int, log_before_unix_ns: int,
              limit: int) -> dict[str, int]:
        """Delete up to `limit` rows per table: raw measurements (and their batches, tasks and
        closed rounds) received before the first cut-off, finished notifications and
        delivery-log rows before the second. Bounded so a first pass over a large database
        does not hold the database thread for long; call again while a table hits the limit.
        Verdicts keep their measurement ids; the records a verdict used are in the evidence
        log, which is never pruned. Returns rows deleted per table."""
        cut, log_cut = measurements_before_unix_ns, log_before_unix_ns
        # Each statement reads what is due, not the rows kept (migration 8): the oldest rows
        # by id for tables whose ids follow time (a younger row among them waits a pass),
        # an index on the time for the others.
        finished = "done_unix_ns, gave_up, next_attempt_unix_ns"
        selects: list[tuple[str, str, str, tuple[int, ...]]] = [  # table, key, select, args
            ("measurements", "measurement_id",
             _oldest_by_id("measurements", "measurement_id", "received_unix_ns",
                           "received_unix_ns < ?"), (limit, cut)),
            ("batches", "batch_id",
             "SELECT batch_id FROM batches WHERE received_unix_ns < ? LIMIT ?", (cut, limit)),
            # issued <= expires: the range of `tasks_issued` holds every task due. A task
            # whose round is gone goes too: a pass may delete a round before all its tasks
            # (each table has its own limit), and "IN closed rounds" left those forever.
            ("tasks", "task_id",
             "SELECT t.task_id FROM tasks AS t WHERE t.issued_unix_ns < ?"
             " AND t.expires_unix_ns < ? AND NOT EXISTS (SELECT 1 FROM rounds AS r"
             " WHERE r.round_id = t.round_id AND r.closed = 0) LIMIT ?", (cut, cut, limit)),
            ("rounds", "round_id",
             "SELECT round_id FROM rounds WHERE closed = 1 AND deadline_unix_ns < ? LIMIT ?",
             (cut, limit)),
            ("notifications", "notification_id",
             _oldest_by_id("notifications", "notification_id", finished, _FINISHED_BEFORE),
             (limit, log_cut)),
            ("outbox", "outbox_id",
             _oldest_by_id("outbox", "outbox_id", finished, _FINISHED_BEFORE), (limit, log_cut)),
            ("deliveries", "delivery_id",
             "SELECT delivery_id FROM deliveries WHERE time_unix_ns < ? LIMIT ?",
             (log_cut, limit)),
        ]
        deleted: dict[str, int] = {}
        with self.transaction():
            for table, key, select, args in selects:
                deleted[table] = self._db.execute(
                    f"DELETE FROM {table} WHERE {key} IN ({select})", args).rowcount
        return deleted

    def prune_verdicts(self, before_unix_ns: int, limit: int) -> int:
        """Delete up to `limit` verdict rows created before the cut-off, except each chip's
        latest (the chip page and `last_verdict` need it). Their evidence records stay in the
        evidence log."""
        with self.transaction():
            # The old verdicts by age (`verdicts_created`), each checked for a newer one of
            # its chip through `verdicts_chip`: no grouping of every verdict kept.
            cur = self._db.execute(
                "DELETE FROM verdicts WHERE verdict_id IN (SELECT v.verdict_id FROM verdicts AS v"
                " WHERE v.created_unix_ns < ? AND EXISTS (SELECT 1 FROM verdicts AS newer"
                " WHERE newer.chip_id = v.chip_id AND newer.verdict_id > v.verdict_id)"
                " LIMIT ?)",
                (before_unix_ns, limit))
        return cur.rowcount
