"""Tables and queries for several replicas on one database, and for fleets that must not be
scanned per tick: the leader lease (verifier.lease), the event relay between replicas
(verifier.hub), webhook outbox claims, and indexed reads of what is due (verifier.scheduler)
and of one page of a list (cursor pagination). SQL both engines run; the few places where
PostgreSQL needs row locks say so through `self.dialect`."""

from __future__ import annotations

from collections.abc import Sequence

from verifier.model import Chip, Landmark, OutboxItem, Round, TaskRow
from verifier.store import rows
from verifier.store.sql import Row, SqlBase


def _round(r: Row) -> Round:
    return Round(r["round_id"], r["target_kind"], r["target_id"], r["started_unix_ns"],
                 r["deadline_unix_ns"])


class ReplicaTables(SqlBase):
    """The `Store` methods for replicas and fleet-sized reads (one mutating method = one
    transaction)."""

    # -- leader lease --
    def acquire_lease(self, name: str, holder: str, now_unix_ns: int,
                      ttl_ns: int) -> int | None:
        """Take the lease when free or expired, or renew it when `holder` has it; the fencing
        token it is held under, or None when another live holder has it. Each take from
        another holder increments the token."""
        lock = " FOR UPDATE" if self.dialect == "postgresql" else ""
        with self._tx():
            row = self._one(f"SELECT holder, token, expires_unix_ns FROM leases WHERE name = ?"
                            f"{lock}", (name,))
            if row is None:
                self._db.execute("INSERT INTO leases(name, holder, token, expires_unix_ns)"
                                 " VALUES (?,?,1,?)", (name, holder, now_unix_ns + ttl_ns))
                return 1
            token = int(row["token"])
            if row["holder"] != holder:
                if int(row["expires_unix_ns"]) > now_unix_ns:
                    return None
                token += 1
            self._db.execute("UPDATE leases SET holder = ?, token = ?, expires_unix_ns = ?"
                             " WHERE name = ?", (holder, token, now_unix_ns + ttl_ns, name))
        return token

    def release_lease(self, name: str, holder: str) -> None:
        with self._tx():
            self._db.execute("UPDATE leases SET expires_unix_ns = 0 WHERE name = ?"
                             " AND holder = ?", (name, holder))

    def lease_is(self, name: str, holder: str, token: int) -> bool:
        """Whether `holder` holds `name` under `token` (the fence: call inside the write
        transaction; on PostgreSQL the row stays share-locked until it ends)."""
        lock = " FOR SHARE" if self.dialect == "postgresql" else ""
        row = self._one(f"SELECT holder, token FROM leases WHERE name = ?{lock}", (name,))
        return row is not None and row["holder"] == holder and int(row["token"]) == token

    # -- events relayed between replicas --
    def add_hub_events(self, origin: str, events: Sequence[tuple[str | None, str]],
                       now_unix_ns: int) -> None:
        with self._tx():
            self._insert_rows("hub_events", ("origin", "event", "data", "created_unix_ns"),
                              [(origin, event, data, now_unix_ns) for event, data in events])

    def hub_event_ids_after(self, after_id: int, limit: int) -> list[int]:
        """The ids of the first `limit` events after `after_id` (the primary key alone: the
        relay re-reads its look-back window's ids each poll, not their payloads)."""
        return [int(r[0]) for r in self._all(
            "SELECT event_id FROM hub_events WHERE event_id > ? ORDER BY event_id LIMIT ?",
            (after_id, limit))]

    def hub_events_by_id(self, event_ids: Sequence[int]) -> list[tuple[int, str, str | None, str]]:
        """(event_id, origin, event, data) of these events, by id (pruned ones left out)."""
        found: list[tuple[int, str, str | None, str]] = []
        for start in range(0, len(event_ids), 500):
            chunk = list(event_ids[start:start + 500])
            found.extend((int(r[0]), str(r[1]), r[2], str(r[3])) for r in self._all(
                "SELECT event_id, origin, event, data FROM hub_events WHERE event_id IN"
                f" ({','.join('?' * len(chunk))})", chunk))
        return sorted(found)

    def last_hub_event_id(self) -> int:
        row = self._one("SELECT MAX(event_id) FROM hub_events")
        return int(row[0]) if row and row[0] is not None else 0

    def prune_hub_events(self, before_unix_ns: int) -> int:
        """Delete old events but the newest (SQLite would reuse ids of an emptied table)."""
        with self._tx():
            cur = self._db.execute(
                "DELETE FROM hub_events WHERE created_unix_ns < ? AND event_id <"
                " (SELECT MAX(event_id) FROM hub_events)", (before_unix_ns,))
        return int(cur.rowcount)

    # -- webhook outbox claims --
    def claim_outbox(self, now_unix_ns: int, limit: int,
                     claim_until_unix_ns: int) -> list[OutboxItem]:
        """Due outbox items, each claimed for this caller until `claim_until` (its next attempt
        is pushed there), so no other replica sends it meanwhile; `outbox_done` and
        `outbox_retry` settle the claim. PostgreSQL skips rows another claim has locked."""
        lock = " FOR UPDATE SKIP LOCKED" if self.dialect == "postgresql" else ""
        with self._tx():
            found = self._all(
                "SELECT outbox_id, url, body, attempts FROM outbox WHERE done_unix_ns IS NULL"
                f" AND gave_up = 0 AND next_attempt_unix_ns <= ? ORDER BY outbox_id LIMIT ?{lock}",
                (now_unix_ns, limit))
            self._db.executemany(
                "UPDATE outbox SET next_attempt_unix_ns = ? WHERE outbox_id = ?",
                [(claim_until_unix_ns, r["outbox_id"]) for r in found])
        return [OutboxItem(r["outbox_id"], r["url"], bytes(r["body"]), r["attempts"])
                for r in found]

    # -- what is due, through indexes (never a scan of the fleet) --
    def due_chips(self, now_unix_ns: int, limit: int) -> list[Chip]:
        """Chips with an agent address whose next round is due, earliest first."""
        return [rows.chip(r) for r in self._all(
            "SELECT * FROM chips WHERE next_round_unix_ns <= ? AND host IS NOT NULL"
            " AND port IS NOT NULL ORDER BY next_round_unix_ns LIMIT ?", (now_unix_ns, limit))]

    def rounds_past_deadline(self, now_unix_ns: int, limit: int) -> list[Round]:
        return [_round(r) for r in self._all(
            "SELECT * FROM rounds WHERE closed = 0 AND deadline_unix_ns <= ?"
            " ORDER BY deadline_unix_ns LIMIT ?", (now_unix_ns, limit))]

    def rounds_answered(self, after_measurement_id: int) -> tuple[list[Round], int]:
        """Open rounds with a measurement stored after `after_measurement_id` and no task left
        unanswered; and the largest measurement id seen (the next cursor)."""
        top = self._one("SELECT MAX(measurement_id) FROM measurements")
        last = int(top[0]) if top and top[0] is not None else 0
        found = [_round(r) for r in self._all(
            "SELECT * FROM rounds WHERE closed = 0 AND round_id IN (SELECT round_id FROM"
            " measurements WHERE measurement_id > ? AND measurement_id <= ?) AND NOT EXISTS"
            " (SELECT 1 FROM tasks t WHERE t.round_id = rounds.round_id AND t.cancelled = 0"
            " AND t.answered = 0)", (after_measurement_id, last))]
        return found, last

    def stuck_tasks(self, landmark_ids: Sequence[str], now_unix_ns: int) -> list[TaskRow]:
        """Live tasks never delivered to these landmarks (the ones that are not alive)."""
        found: list[TaskRow] = []
        for start in range(0, len(landmark_ids), 500):
            chunk = list(landmark_ids[start:start + 500])
            found.extend(rows.task(r) for r in self._all(
                f"SELECT * FROM tasks WHERE landmark_id IN ({','.join('?' * len(chunk))})"
                " AND delivered_unix_ns IS NULL AND cancelled = 0 AND expires_unix_ns > ?"
                " ORDER BY task_id", [*chunk, now_unix_ns]))
        return found

    def round(self, round_id: str) -> Round | None:
        row = self._one("SELECT * FROM rounds WHERE round_id = ? AND closed = 0", (round_id,))
        return _round(row) if row else None

    # -- key/value by prefix --
    def kv_with_prefix(self, prefix: str) -> list[tuple[str, str]]:
        """(key, value) of every key starting with `prefix`, by key. A prefix test rather than
        a key range: a PostgreSQL database's collation need not order keys byte-wise."""
        return [(str(r[0]), str(r[1])) for r in self._all(
            "SELECT key, value FROM kv WHERE substr(key, 1, ?) = ? ORDER BY key",
            (len(prefix), prefix))]

    # -- sizes, for benchmarks and capacity planning --
    def count_rows(self, table: str) -> int:
        if table not in _COUNTABLE:
            raise ValueError(f"not a countable table: {table}")
        row = self._one(f"SELECT COUNT(*) FROM {table}")
        return int(row[0]) if row else 0

    def database_bytes(self) -> int:
        """The database's size on disk (SQLite: after folding the WAL into the main file)."""
        if self.dialect == "postgresql":
            row = self._one("SELECT pg_database_size(current_database())")
            return int(row[0])
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = self._one("PRAGMA page_count")
        size = self._one("PRAGMA page_size")
        return int(pages[0]) * int(size[0])

    # -- one page of a list (cursor: the last id of the previous page) --
    def chips_page(self, after_id: str | None, limit: int) -> list[Chip]:
        return [rows.chip(r) for r in self._all(
            "SELECT * FROM chips WHERE chip_id > ? ORDER BY chip_id LIMIT ?",
            (after_id or "", limit))]

    def landmarks_page(self, after_id: str | None, limit: int) -> list[Landmark]:
        return [rows.landmark(r) for r in self._all(
            "SELECT * FROM landmarks WHERE landmark_id > ? ORDER BY landmark_id LIMIT ?",
            (after_id or "", limit))]


_COUNTABLE = frozenset({"chips", "landmarks", "rounds", "tasks", "measurements", "verdicts",
                        "alerts", "outbox", "hub_events"})
