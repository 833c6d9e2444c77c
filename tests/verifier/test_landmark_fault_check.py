"""The leader's landmark-fault check (`verdicts.landmark_faults`): the same alerts as the rule
over the whole window's aggregate, at a cost that follows the landmarks, not the fleet.

Until migration 9 the check grouped every chip task the fleet was issued in its window (five
times `landmark_dead_after_s`, 25 minutes by default: hundreds of thousands of tasks at 100,000
chips) by landmark, every 7.5 s on the leader's database thread. It now probes each landmark for
one answer and counts only the tasks of a landmark that has none. Costs are counted in SQLite
virtual-machine instructions (deterministic for the same data, unlike time); PostgreSQL's plan
is checked for the index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.verifier.sqlite_steps import STEPS_PER_CALL, counting_steps
from verifier import verdicts
from verifier.alerts import Alerts
from verifier.evidence_sink import EvidenceSink
from verifier.hub import Hub
from verifier.metrics import Metrics
from verifier.model import AlertFilter, AlertType, Landmark
from verifier.store import Store
from verifier.store.sql import Connection, Cursor, SqlBase
from verifier.store.sqlite import SqliteStore

S = 1_000_000_000
NOW = 1_700_000_000_000_000_000
WINDOW_S, SETTLE_S = 1_500.0, 30.0
SINCE, SETTLED = NOW - int(WINDOW_S * S), NOW - int(SETTLE_S * S)
LANDMARKS = ("lm-0", "lm-1", "lm-2", "lm-3")

# The check's aggregate before migration 9, kept here as the reference the new one must match.
OLD_AGGREGATE = (
    "SELECT landmark_id, COUNT(*) AS n, SUM(answered) AS a, COUNT(DISTINCT target_id) AS c"
    " FROM tasks WHERE target_kind = 'chip' AND delivered_unix_ns IS NOT NULL"
    " AND issued_unix_ns >= ? AND expires_unix_ns <= ? AND cancelled = 0 GROUP BY landmark_id")
_TASK_COLUMNS = ("round_id, landmark_id, target_kind, target_id, host, port, issued_unix_ns,"
                 " expires_unix_ns, delivered_unix_ns, answered, cancelled")


def _landmark(landmark_id: str) -> Landmark:
    return Landmark(landmark_id, 50.0, 8.0, "127.0.0.1", 7000, b"\0" * 32, {}, None, False,
                    None, 0)


def _alerts() -> Alerts:
    return Alerts(webhook_urls=(), hub=Hub(), metrics=Metrics(),
                  evidence=EvidenceSink(None, b""))


def _sql(store: Store) -> SqlBase:
    """The store's SQL connection, for writing rows no method writes and reading plans."""
    assert isinstance(store, SqlBase)
    return store


def _insert_tasks(store: SqlBase, tasks: list[tuple[Any, ...]]) -> None:
    """Rows of (landmark, kind, target, issued, expires, delivered, answered, cancelled)."""
    with store.transaction():
        for start in range(0, len(tasks), 5_000):
            store._db.executemany(
                f"INSERT INTO tasks({_TASK_COLUMNS}) VALUES ('r',?,?,?,'127.0.0.1',7000,?,?,?,?,?)",
                tasks[start:start + 5_000])


def old_rule(store: SqlBase, alerted: set[str]) -> dict[str, tuple[int, int]]:
    """The landmarks the aggregate rule alerts, with (tasks, chips): answered none, at least two
    chips and three tasks, while another landmark answered; minus those whose alert is still
    unresolved (their alert cannot open again)."""
    stats = {r[0]: (int(r[1]), int(r[2] or 0), int(r[3]))
             for r in store._all(OLD_AGGREGATE, (SINCE, SETTLED))}
    answering = {lm for lm, (_, answered, _) in stats.items() if answered > 0}
    return {lm: (delivered, chips) for lm, (delivered, answered, chips) in stats.items()
            if answered == 0 and chips >= 2 and delivered >= 3 and answering - {lm}
            and lm not in alerted}


def _opened_by_check(store: Store) -> dict[str, tuple[int, int]]:
    """The `lost_all_chips` alerts the check opened, with their details' (tasks, chips)."""
    return {a.subject_id: (a.details["tasks"], a.details["chips"])
            for a in store.alerts(AlertFilter(type=AlertType.LANDMARK_FAULT, limit=1_000))
            if a.opened_unix_ns == NOW}


def _check(store: Store) -> None:
    verdicts.landmark_faults(store, _alerts(), window_s=WINDOW_S, settle_s=SETTLE_S,
                             now_unix_ns=NOW)


_OFFSETS_S = st.sampled_from([-1_600, -1_500, -1_499, -100, -31, -30, -29, 0, 10])
_TASK = st.tuples(
    st.sampled_from(LANDMARKS), st.sampled_from(["chip", "chip", "chip", "landmark"]),
    st.sampled_from(["chip-a", "chip-b", "chip-c"]), _OFFSETS_S, st.sampled_from([0, 30, 60]),
    st.booleans(), st.booleans(), st.booleans())
_PRIOR_ALERT = st.sampled_from([None, "open", "acknowledged", "resolved"])


@pytest.fixture
def with_landmarks(store: Store) -> Iterator[Store]:
    for landmark_id in LANDMARKS:
        store.put_landmark(_landmark(landmark_id))
    yield store


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tasks=st.lists(_TASK, max_size=30),
       prior=st.lists(_PRIOR_ALERT, min_size=len(LANDMARKS), max_size=len(LANDMARKS)))
def test_the_check_alerts_exactly_as_the_window_aggregate_rule(
        with_landmarks: Store, tasks: list[tuple[Any, ...]], prior: list[str | None]) -> None:
    """On both backends, on random task tables (tasks inside, at and outside the window's
    edges, mesh tasks, undelivered, cancelled, answered or not) and random prior alerts."""
    store, sql = with_landmarks, _sql(with_landmarks)
    with store.transaction():
        for table in ("tasks", "alerts", "outbox", "notifications"):
            sql._db.execute(f"DELETE FROM {table}")
    _insert_tasks(sql, [
        (lm, kind, target, NOW + offset_s * S, NOW + (offset_s + ttl_s) * S,
         NOW + offset_s * S if delivered else None, int(answered), int(cancelled))
        for lm, kind, target, offset_s, ttl_s, delivered, answered, cancelled in tasks])
    for landmark_id, status in zip(LANDMARKS, prior, strict=True):
        if status is None:
            continue
        alert = store.open_alert(AlertType.LANDMARK_FAULT, severity="critical",
                                 subject_kind="landmark", subject_id=landmark_id, message="m",
                                 details={}, now_unix_ns=NOW - S, outbox=())
        assert alert is not None
        if status != "open":
            action = {"acknowledged": "acknowledge", "resolved": "resolve"}[status]
            store.update_alert(alert.alert_id, action=action, by="t", reason="t",
                               now_unix_ns=NOW - S, outbox=())
    alerted = {lm for lm, status in zip(LANDMARKS, prior, strict=True)
               if status in ("open", "acknowledged")}
    expected = old_rule(sql, alerted)
    _check(store)
    assert _opened_by_check(store) == expected


def _fleet_tasks(chips: int, dead_tasks: int) -> list[tuple[Any, ...]]:
    """A round per chip in the window (and one before it) to each of the four landmarks, nine
    in ten answered; and `lm-dead`'s `dead_tasks` delivered, unanswered tasks to ten chips."""
    rows: list[tuple[Any, ...]] = []
    for i in range(chips):
        for lm_index, lm in enumerate(LANDMARKS):
            for issued in (SINCE - 600 * S + i * 1_000, SINCE + 60 * S + i * 1_000):
                answered = (i + lm_index) % 10 != 0
                rows.append((lm, "chip", f"chip-{i:06d}", issued, issued + 30 * S, issued + S,
                             int(answered), 0))
    rows.extend(("lm-dead", "chip", f"chip-{i % 10:06d}", SINCE + (60 + i) * S,
                 SINCE + (90 + i) * S, SINCE + (61 + i) * S, 0, 0) for i in range(dead_tasks))
    return rows


def _steps(path: Path, chips: int, dead_tasks: int, *, alert_open: bool,
           run: Callable[[SqliteStore], object]) -> tuple[int, dict[str, tuple[int, int]]]:
    """(SQLite instructions of `run`, in tens; the alerts the check opened)."""
    store = SqliteStore(path)
    try:
        for landmark_id in (*LANDMARKS, "lm-dead"):
            store.put_landmark(_landmark(landmark_id))
        _insert_tasks(store, _fleet_tasks(chips, dead_tasks))
        if alert_open:
            store.open_alert(AlertType.LANDMARK_FAULT, severity="critical",
                             subject_kind="landmark", subject_id="lm-dead", message="m",
                             details={}, now_unix_ns=NOW - S, outbox=())
        with counting_steps(store) as steps:
            run(store)
        return steps.calls, _opened_by_check(store)
    finally:
        store.close()


def test_a_fault_check_costs_the_same_in_a_ten_times_larger_fleet(tmp_path: Path) -> None:
    """1,000 and 10,000 chips (8,000 and 80,000 tasks kept, half of them in the window), the
    same five landmarks, one of which lost all its 30 tasks: the same alert, the same cost."""
    small, small_alerts = _steps(tmp_path / "s.sqlite3", 1_000, 30, alert_open=False, run=_check)
    large, large_alerts = _steps(tmp_path / "l.sqlite3", 10_000, 30, alert_open=False, run=_check)
    assert small_alerts == large_alerts == {"lm-dead": (30, 10)}
    assert large <= small * 1.2 + 50, (
        f"a fault check ran {large * STEPS_PER_CALL} SQLite instructions at 10,000 chips "
        f"against {small * STEPS_PER_CALL} at 1,000: it reads the fleet's window")

    def old(store: SqliteStore) -> None:
        store._all(OLD_AGGREGATE, (SINCE, SETTLED))

    # The measure sees a fleet-sized read: the old aggregate's cost grows with the fleet.
    old_small, _ = _steps(tmp_path / "os.sqlite3", 1_000, 30, alert_open=False, run=old)
    old_large, _ = _steps(tmp_path / "ol.sqlite3", 10_000, 30, alert_open=False, run=old)
    assert old_large > 5 * old_small


def test_a_landmark_whose_alert_is_open_is_not_counted_again(tmp_path: Path) -> None:
    """Its alert cannot open twice, so however many tasks it keeps losing (30 or 3,000 in the
    window), the checks while its alert is unresolved cost the same and open nothing."""
    few, few_alerts = _steps(tmp_path / "f.sqlite3", 200, 30, alert_open=True, run=_check)
    many, many_alerts = _steps(tmp_path / "m.sqlite3", 200, 3_000, alert_open=True, run=_check)
    assert few_alerts == many_alerts == {}
    assert many <= few * 1.2 + 50, (
        f"a check ran {many * STEPS_PER_CALL} SQLite instructions with 3,000 lost tasks of a "
        f"landmark already alerted against {few * STEPS_PER_CALL} with 30")


def test_postgresql_reads_the_window_per_landmark_through_the_index(
        store: Store) -> None:
    """The plans PostgreSQL picks, with statistics, for the statements the check sends: each
    reads `tasks` through `tasks_by_landmark_time`, never the fleet's window or the table."""
    sql = _sql(store)
    if sql.dialect != "postgresql":
        pytest.skip("SQLite's costs are counted by the tests above")
    for landmark_id in (*LANDMARKS, "lm-dead"):
        store.put_landmark(_landmark(landmark_id))
    _insert_tasks(sql, _fleet_tasks(5_000, 30))
    sql._db.execute("ANALYZE tasks")
    sent: list[tuple[str, tuple[Any, ...]]] = []
    connection = sql._db

    class Recording:
        """The connection, recording the statements that read `tasks`."""

        def execute(self, statement: str, args: Sequence[Any] = (), /) -> Cursor:
            if "FROM tasks" in statement:
                sent.append((statement, tuple(args)))
            return connection.execute(statement, args)

        def executemany(self, statement: str, args: Iterable[Sequence[Any]], /) -> Cursor:
            return connection.executemany(statement, args)

    recording: Connection = Recording()
    sql._db = recording
    try:
        _check(store)
    finally:
        sql._db = connection
    assert _opened_by_check(store) == {"lm-dead": (30, 10)}
    assert len(sent) == 2  # one probe of every landmark, one count of the silent one
    for statement, args in sent:
        plan = "\n".join(str(r[0]) for r in sql._all(f"EXPLAIN {statement}", args))
        assert "tasks_by_landmark_time" in plan, plan
        assert "Seq Scan on tasks" not in plan and "tasks_issued" not in plan, plan


def test_sqlite_reads_tasks_and_alerts_through_their_indexes(tmp_path: Path) -> None:
    """Every statement of a check, traced with its parameters bound, on a database without
    statistics (as the verifier runs SQLite): `tasks` and `alerts` are searched, never walked
    (the landmarks themselves are read whole: one row per landmark)."""

    def traced_check(store: SqliteStore) -> None:
        store.open_alert(AlertType.WENT_DARK, severity="high", subject_kind="chip",
                         subject_id="chip-000001", message="m", details={},
                         now_unix_ns=NOW - S, outbox=())
        traced: list[str] = []
        store._raw.set_trace_callback(traced.append)
        try:
            _check(store)
        finally:
            store._raw.set_trace_callback(None)
        plans = [str(row[3]) for statement in traced
                 if statement.lstrip().upper().startswith(("SELECT", "WITH"))
                 for row in store._raw.execute(f"EXPLAIN QUERY PLAN {statement}")]
        walks = [p for p in plans if p.startswith("SCAN") and p.split()[1] in ("tasks", "alerts")]
        assert walks == [], plans
        assert any("tasks_by_landmark_time" in p for p in plans), plans
        assert any("alerts_one_open" in p for p in plans), plans

    _, opened = _steps(tmp_path / "t.sqlite3", 100, 30, alert_open=False, run=traced_check)
    assert opened == {"lm-dead": (30, 10)}


def test_many_landmarks_are_probed_and_counted_in_chunks(store: Store) -> None:
    """More landmarks than one statement's chunk (500): every one is probed and counted."""
    ids = [f"lm-{i:04d}" for i in range(1_203)]
    _insert_tasks(_sql(store), [
        (lm, "chip", f"chip-{i % 3}", SINCE + S, SINCE + 2 * S, SINCE + S, int(i % 2 == 0), 0)
        for i, lm in enumerate(ids)])
    answered = {lm for i, lm in enumerate(ids) if i % 2 == 0}
    assert store.landmarks_answered([*ids, "lm-none"], SINCE, SETTLED) == answered
    assert store.landmark_task_counts(ids, SINCE, SETTLED) == {lm: (1, 1) for lm in ids}
