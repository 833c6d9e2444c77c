"""Ingestion on PostgreSQL in few round trips: a group commit's reads are pipelined (one round
trip for the four), its writes are one COPY and one statement.

On a 2-core machine a round trip costs both sides CPU (the driver's Python, the server's
parse and the sockets): a batch used to take about ten (a savepoint, four reads, four writes,
releases), which was a quarter of the verifier's and most of the server's CPU per measurement.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import psycopg

from protocol.revocation import Revocation
from verifier.store.ingest import (
    MEASUREMENT_COLUMNS,
    TASK_COLUMNS,
    IngestTables,
    IngestView,
    NewBatch,
    RevocationName,
    measurement_rows,
    task_row,
)

# Data-modifying CTEs all run, in one statement: the batches' rows, each answered task (ids
# sorted by the caller, so concurrent replicas lock task rows in one order), and each chip's
# last response time, moved forward only. `?` placeholders, like all the tables' SQL.
_WRITE = (
    "WITH stored AS (INSERT INTO batches (batch_id, landmark_id, received_unix_ns, result)"
    " SELECT b.batch_id, b.landmark_id, ?, b.result"
    " FROM unnest(?::text[], ?::text[], ?::text[]) AS b(batch_id, landmark_id, result)),"
    " answered AS (UPDATE tasks SET answered = 1 WHERE task_id = ANY(?::bigint[])"
    " AND answered = 0)"
    " UPDATE chips SET last_response_unix_ns = v.sent_unix_ns"
    " FROM unnest(?::text[], ?::bigint[]) AS v(chip_id, sent_unix_ns)"
    " WHERE chips.chip_id = v.chip_id AND (chips.last_response_unix_ns IS NULL"
    " OR chips.last_response_unix_ns < v.sent_unix_ns)")


# Arrays travel as one array literal each: psycopg adapts a Python list element by element in
# Python (about half a millisecond of CPU for a hundred nonces), a literal is one string.
def int_array(values: Iterable[int]) -> str:
    return "{" + ",".join(map(str, values)) + "}"


def text_array(values: Iterable[str]) -> str:
    """Each element double-quoted (so "NULL" stays a string), its `\\` and `"` escaped. Most
    lists (ids, base64 keys) hold neither: those are quoted in one join, not element by
    element (a NUL, which no text on the server can hold, must stay in its element too)."""
    items = list(values)
    if not items:
        return "{}"
    joined = "\0".join(items)
    if '"' not in joined and "\\" not in joined and joined.count("\0") == len(items) - 1:
        return '{"' + joined.replace("\0", '","') + '"}'
    return "{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
                          for v in items) + "}"


def bytea_array(values: Iterable[bytes]) -> str:
    """Each element in bytea's hex form, its backslash escaped for the array literal."""
    return "{" + ",".join('"\\\\x' + v.hex() + '"' for v in values) + "}"


class PostgresIngest(IngestTables):
    """Listed before `IngestTables`' other users would be: the backend supplies `_connection`
    (the thread's transaction connection, or a pooled one) and `_insert_rows` (COPY)."""

    def _connection(self) -> AbstractContextManager[psycopg.Connection[Any]]:
        raise NotImplementedError

    def ingest_view(self, batch_ids: Sequence[str], nonces: Sequence[bytes],
                    task_ids: Sequence[int],
                    revocation_names: Sequence[RevocationName] = ()) -> IngestView:
        names = sorted(set(revocation_names))
        with self._connection() as conn:
            cursors = [conn.cursor() for _ in range(4)]
            with conn.pipeline():  # sent together, answered in one round trip
                cursors[0].execute("SELECT batch_id, landmark_id, result FROM batches"
                                   " WHERE batch_id = ANY(%s::text[])",
                                   (text_array(batch_ids),))
                cursors[1].execute("SELECT nonce FROM measurements"
                                   " WHERE nonce = ANY(%s::bytea[])", (bytea_array(nonces),))
                cursors[2].execute(f"SELECT {TASK_COLUMNS} FROM tasks"
                                   " WHERE task_id = ANY(%s::bigint[]) AND cancelled = 0"
                                   " ORDER BY task_id", (int_array(sorted(set(task_ids))),))
                cursors[3].execute("SELECT kind, match, value, revoked_unix_ns, reason"
                                   " FROM revocations WHERE (kind, match, value) IN"
                                   " (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]))"
                                   " ORDER BY revocation_id",
                                   tuple(text_array(n[i] for n in names) for i in range(3)))
            batches, used, tasks, revoked = (cur.fetchall() for cur in cursors)
            for cur in cursors:
                cur.close()
        return IngestView({r[0]: (r[1], r[2]) for r in batches},
                          frozenset(bytes(r[0]) for r in used),
                          [task_row(r) for r in tasks],
                          [Revocation(*r) for r in revoked])

    def _write_batches(self, batches: Sequence[NewBatch], now_unix_ns: int,
                       task_ids: Sequence[int], latest: dict[str, int]) -> None:
        chip_ids = sorted(latest)
        self._db.execute(_WRITE, (
            now_unix_ns, text_array([b.batch_id for b in batches]),
            text_array([b.landmark_id for b in batches]),
            text_array([b.result_json for b in batches]), int_array(task_ids),
            text_array(chip_ids), int_array([latest[c] for c in chip_ids])))
        self._insert_rows("measurements", MEASUREMENT_COLUMNS,
                          measurement_rows(batches, now_unix_ns))
