"""A landmark's task poll queues behind whatever the database thread is doing: the poll itself
and the statements every tick runs must read through an index, never walk a fleet-sized table
(at 100,000 chips one walk of `chips` held every poll for 55 ms a tick). Checked on SQLite's
query plan for the statements the store actually sends (traced, parameters bound), on a
database without ANALYZE statistics, as the verifier runs it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from verifier.model import Chip, Round
from verifier.store.sqlite import SqliteStore

T0 = 1_700_000_000_000_000_000
S = 1_000_000_000
CHIPS = 300


def _chip(chip_id: str) -> Chip:
    return Chip(chip_id, "acme", "model", "serial", "127.0.0.1", 9000, "default", b"\0" * 32,
                {}, {"allowed": ["DEU"]}, "verified", T0, None, T0, T0 + 600 * S)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "plans.sqlite3")
    s.put_chips([_chip(f"chip-{i:05d}") for i in range(CHIPS)])
    for i in range(0, CHIPS, 3):
        s.set_verified_until(f"chip-{i:05d}", T0 + (i + 1) * S)
    s.add_rounds([(Round(f"r-{i}", "chip", f"chip-{i:05d}", T0, T0 + 30 * S),
                   [("lm-1", "127.0.0.1", 7000), ("lm-2", "127.0.0.1", 7000)])
                  for i in range(CHIPS)])
    yield s
    s.close()


def _full_scans(store: SqliteStore, call: str, *args: object) -> list[str]:
    """Run `store.<call>(*args)`; the plan lines of its statements that walk a whole table."""
    traced: list[str] = []
    store._raw.set_trace_callback(traced.append)
    try:
        getattr(store, call)(*args)
    finally:
        store._raw.set_trace_callback(None)
    scans = []
    for sql in traced:
        if not sql.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE", "WITH")):
            continue
        for row in store._raw.execute(f"EXPLAIN QUERY PLAN {sql}"):
            detail = str(row[3])
            if detail.startswith("SCAN") and "CONSTANT ROW" not in detail:
                scans.append(f"{sql} -> {detail}")
    return scans


def test_expiring_verified_states_reads_only_the_ttls_that_ran_out(store: SqliteStore) -> None:
    assert store.expire_verified(T0 + 2 * S) == ["chip-00000"]  # the contract: who expired
    assert _full_scans(store, "expire_verified", T0 + 50 * S) == []


def test_a_task_poll_reads_only_its_landmarks_undelivered_tasks(store: SqliteStore) -> None:
    assert _full_scans(store, "touch_landmark", "lm-1", T0) == []
    assert _full_scans(store, "take_tasks", "lm-1", T0 + S) == []
    assert store.take_tasks("lm-2", T0 + S) != []  # and they are still handed out
