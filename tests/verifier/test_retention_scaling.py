"""A retention pass reads what is old enough to prune, not every row it keeps.

Counted in SQLite virtual-machine instructions (deterministic for the same data, unlike time):
one `retention.prune` pass over a database whose rows are all still inside the retention
window, so nothing is due, costs about as much with ten times the rows. Tables whose ids follow
time are read oldest first, at most the pass's batch size (`limit`, here 200, below both sizes);
the others through an index on their time. Until migration 8 each pass (hourly, on the leader)
walked the measurements, batches, tasks, rounds, notifications and outbox tables to find
nothing, and grouped every verdict kept (a year of them) by chip to spare each chip's latest.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from tests.verifier.sqlite_steps import STEPS_PER_CALL, counting_steps
from verifier.model import Round, StoredMeasurement
from verifier.retention import RetentionPolicy, prune
from verifier.store import SqliteStore, Store

_NS = 1_000_000_000
_DAY_NS = 86_400 * _NS
_NOW = 400 * _DAY_NS
_POLICY = RetentionPolicy(measurements_s=30 * 86_400.0, verdicts_s=365 * 86_400.0,
                          log_s=90 * 86_400.0)
_LIMIT = 200  # rows per table per pass


def _fill(store: SqliteStore, rounds: int) -> None:
    """`rounds` closed rounds of one chip each over the last 20 days, each with two tasks, two
    measurements (one upload batch), a verdict, a notification and an outbox row: all younger
    than every cut-off, as in a verifier whose retention keeps up."""
    start = _NOW - 20 * _DAY_NS
    step = 20 * _DAY_NS // rounds
    db = store._raw
    with store.transaction():
        for i in range(rounds):
            t, round_id, chip_id = start + i * step, f"r{i:07d}", f"chip-{i % 500:07d}"
            db.execute("INSERT INTO rounds VALUES (?,?,?,?,?,1)",
                       (round_id, "chip", chip_id, t, t + 30 * _NS))
            for lm in ("lm-a", "lm-b"):
                task_id = db.execute(
                    "INSERT INTO tasks(round_id, landmark_id, target_kind, target_id, host,"
                    " port, issued_unix_ns, expires_unix_ns, delivered_unix_ns, answered)"
                    " VALUES (?,?,?,?,?,?,?,?,?,1)",
                    (round_id, lm, "chip", chip_id, "127.0.0.1", 7000, t, t + 30 * _NS,
                     t)).lastrowid
                db.execute(
                    "INSERT INTO measurements(batch_id, landmark_id, target_kind, target_id,"
                    " nonce, sent_unix_ns, rtt_ns, clock_source, round_id, task_id, record,"
                    " received_unix_ns) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (f"b{i}", lm, "chip", chip_id, f"{round_id}{lm}".encode(), t, 4_000_000,
                     "kernel", round_id, task_id, "{}", t + _NS))
            db.execute("INSERT INTO batches VALUES (?,?,?,?)", (f"b{i}", "lm-a", t + _NS, "{}"))
            db.execute(
                "INSERT INTO verdicts(chip_id, round_id, verdict, created_unix_ns,"
                " measurement_ids, landmarks, reason, licence) VALUES (?,?,?,?,?,?,?,?)",
                (chip_id, round_id, "dark", t + 30 * _NS, "[]", "[]", "", "{}"))
            db.execute("INSERT INTO notifications(channel_id, alert_id, event, body,"
                       " next_attempt_unix_ns, done_unix_ns) VALUES (?,?,?,?,?,?)",
                       ("ops", i, "alert.opened", b"{}", t, t))
            db.execute("INSERT INTO outbox(url, body, next_attempt_unix_ns, done_unix_ns)"
                       " VALUES (?,?,?,?)", ("http://hook", b"{}", t, t))


def _pass_steps(path: Path, rounds: int) -> tuple[int, dict[str, int]]:
    """(SQLite instructions of one retention pass, in tens; rows it deleted per table)."""
    store = SqliteStore(path)
    try:
        _fill(store, rounds)
        with counting_steps(store) as steps:
            deleted = prune(store, _POLICY, _NOW, limit=_LIMIT)
    finally:
        store.close()
    return steps.calls, deleted


def test_a_retention_pass_with_nothing_due_costs_the_same_with_ten_times_the_rows(
        tmp_path: Path) -> None:
    small, small_deleted = _pass_steps(tmp_path / "small.sqlite3", 1_000)
    large, large_deleted = _pass_steps(tmp_path / "large.sqlite3", 10_000)
    assert set(small_deleted.values()) == set(large_deleted.values()) == {0}
    assert large <= small * 1.2 + 50, (
        f"a retention pass with nothing to prune ran {large * STEPS_PER_CALL} SQLite "
        f"instructions over 10,000 rounds against {small * STEPS_PER_CALL} over 1,000: "
        "some statement reads every row kept")


def _round(store: Store, round_id: str, t: int, *, close: bool) -> None:
    """A round of chip-1 at `t` with two tasks, their two measurements (one upload) and, when
    closed, its verdict."""
    store.add_round(Round(round_id, "chip", "chip-1", t, t + 30 * _NS),
                    [("lm-a", "127.0.0.1", 7000), ("lm-b", "127.0.0.1", 7000)])
    tasks = {task.landmark_id: task.task_id for task in store.round_tasks(round_id)}
    store.ingest(f"b-{round_id}", "lm-a", [
        StoredMeasurement(f"b-{round_id}", lm, "chip", "chip-1", secrets.token_bytes(32), t,
                          4_000_000, "kernel", round_id, tasks[lm], "{}") for lm in tasks], "{}", t)
    if close:
        store.close_round(round_id)
        store.add_verdict("chip-1", round_id=round_id, verdict="dark",
                          created_unix_ns=t + 30 * _NS, measurement_ids=[], landmarks=[],
                          assessment=None, reason="", licence={})


def test_passes_prune_everything_due_and_nothing_else(store: Store) -> None:
    """On both backends: old closed rounds go with their tasks, measurements and batches over
    bounded passes; an old round still open keeps its tasks; recent rows and the chip's latest
    verdict stay."""
    old, new = _NOW - 40 * _DAY_NS, _NOW - _DAY_NS
    for i in range(5):
        _round(store, f"old-{i}", old + i * _NS, close=True)
    _round(store, "old-open", old + 10 * _NS, close=False)
    _round(store, "new", new, close=True)
    policy = RetentionPolicy(measurements_s=30 * 86_400.0, verdicts_s=30 * 86_400.0,
                             log_s=90 * 86_400.0)
    passes = [prune(store, policy, _NOW, limit=4) for _ in range(4)]
    assert [p["rounds"] for p in passes] == [4, 1, 0, 0]
    assert sum(p["measurements"] for p in passes) == 12  # the open round's too: by age
    assert sum(p["tasks"] for p in passes) == 10 and sum(p["batches"] for p in passes) == 6
    assert sum(p["verdicts"] for p in passes) == 5
    assert store.round("old-open") is not None  # still open
    assert {t.landmark_id for t in store.round_tasks("old-open")} == {"lm-a", "lm-b"}
    assert [store.count_rows(table) for table in ("rounds", "tasks", "measurements")] == [2, 4, 2]
    assert [v.round_id for v in store.verdicts("chip-1", None, 10)] == ["new"]
