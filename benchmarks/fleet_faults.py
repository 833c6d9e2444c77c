"""The leader's landmark-fault check at fleet size: one `verdicts.landmark_faults` pass.

    python -m benchmarks.fleet_faults --chips 2000 100000 [--landmarks 20] [--postgres]
        [--index-cost 20000]

For each size: a fresh database gets `--landmarks` landmarks and, per chip, `--rounds` rounds
of 4 chip tasks inside the check's window (five times `landmark_dead_after_s`, 25 minutes) and
one round before it, nine tasks in ten answered: the tasks a verifier keeps for that fleet. One
more landmark, `lm-dead`, took 200 tasks for 50 chips and answered none. Timed, on the same
database: the first check (it probes every landmark, counts `lm-dead`'s tasks and opens its
alert), then `--passes` steady checks (`lm-dead`'s alert open: what the leader runs every 15 s
until someone resolves it; medians); and beside them the reference `old_aggregate`: the
statement every check ran before migration 9 (grouping every chip task of the window by
landmark), median of a quarter as many runs (at least three). Times are wall and client-CPU
milliseconds; on PostgreSQL also the server's CPU (the postmaster's process tree, from /proc;
the mean over the runs, as /proc counts in 10 ms ticks), after ANALYZE (as
autovacuum leaves a table that size). Each size runs on SQLite, and also on PostgreSQL with
`--postgres` (a throw-away cluster, fsync on). Prints one JSON object per run, then a summary
per backend comparing the sizes. `--index-cost N` adds what the index costs task inserts
(`index_cost`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.ingest import postmaster_pid, server_tree_cpu_s
from benchmarks.postgres import throwaway_cluster
from tests.verifier.pg_cluster import Cluster
from verifier import verdicts
from verifier.alerts import Alerts
from verifier.config import default_config
from verifier.evidence_sink import EvidenceSink
from verifier.hub import Hub
from verifier.metrics import Metrics
from verifier.model import AlertFilter, AlertType, Landmark
from verifier.store import open_store
from verifier.store.sql import SqlBase

_NS = 1_000_000_000
_WINDOW_S = 5 * 300.0  # five times the default landmark_dead_after_s
_SETTLE_S = 30.0  # the default task_ttl_s
_TASKS_PER_ROUND = 4
_WRITE_BATCH = 50_000
_DEAD_TASKS, _DEAD_CHIPS = 200, 50
_COLUMNS = ("round_id", "landmark_id", "target_kind", "target_id", "host", "port",
            "issued_unix_ns", "expires_unix_ns", "delivered_unix_ns", "answered", "cancelled")
# The check's statement before migration 9 (then `Store.landmark_task_stats`).
OLD_AGGREGATE = (
    "SELECT landmark_id, COUNT(*), SUM(answered), COUNT(DISTINCT target_id) FROM tasks"
    " WHERE target_kind = 'chip' AND delivered_unix_ns IS NOT NULL AND issued_unix_ns >= ?"
    " AND expires_unix_ns <= ? AND cancelled = 0 GROUP BY landmark_id")


def _landmark(landmark_id: str) -> Landmark:
    return Landmark(landmark_id, 50.0, 8.0, "127.0.0.1", 7000, b"\0" * 32, {}, None, False,
                    None, 0)


def _task_rows(chips: int, landmarks: int, rounds: int, now_unix_ns: int
               ) -> list[tuple[Any, ...]]:
    """Each chip's round before the window and its `rounds` rounds inside it (issued in time
    order, as a verifier writes them), then `lm-dead`'s unanswered tasks."""
    since = now_unix_ns - int(_WINDOW_S * _NS)
    span_ns = int((_WINDOW_S - 2 * _SETTLE_S) * _NS) // rounds  # all settled by now
    rows: list[tuple[Any, ...]] = []
    for r in range(-1, rounds):
        start = since + r * span_ns if r >= 0 else since - span_ns
        for i in range(chips):
            issued = start + i * span_ns // chips
            for k in range(_TASKS_PER_ROUND):
                lm = (i + k * 7 + r) % landmarks
                rows.append((f"r{r}-{i}", f"lm-{lm:03d}", "chip", f"chip-{i:07d}", "127.0.0.1",
                             7000, issued, issued + int(_SETTLE_S * _NS), issued + _NS,
                             int((i + k + r) % 10 != 0), 0))
    for j in range(_DEAD_TASKS):
        issued = since + j * span_ns // _DEAD_TASKS
        rows.append((f"dead-{j}", "lm-dead", "chip", f"chip-{j % _DEAD_CHIPS:07d}", "127.0.0.1",
                     7000, issued, issued + int(_SETTLE_S * _NS), issued + _NS, 0, 0))
    return rows


def _fill(store: SqlBase, rows: list[tuple[Any, ...]]) -> None:
    for start in range(0, len(rows), _WRITE_BATCH):
        with store.transaction():
            store._insert_rows("tasks", _COLUMNS, rows[start:start + _WRITE_BATCH])


def run_size(chips: int, *, landmarks: int, rounds: int, passes: int, data_dir: Path,
             database_url: str | None, server_pid: int | None) -> dict[str, Any]:
    opened = open_store(default_config(data_dir=data_dir, database_url=database_url or ""))
    assert isinstance(opened, SqlBase)
    store = opened
    alerts = Alerts(webhook_urls=(), hub=Hub(), metrics=Metrics(),
                    evidence=EvidenceSink(None, b""))
    now = time.time_ns()

    def timed(fn: Callable[[], object], times: int) -> tuple[float, float, float]:
        """(median wall ms, median client CPU ms, mean server CPU ms) of `times` calls: the
        server's CPU is read over all of them (/proc counts in 10 ms ticks)."""
        server = server_tree_cpu_s(server_pid) if server_pid else 0.0
        runs = []
        for _ in range(times):
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            runs.append(((time.perf_counter() - wall) * 1e3, (time.process_time() - cpu) * 1e3))
        server_ms = (server_tree_cpu_s(server_pid) - server) * 1e3 if server_pid else 0.0
        return (round(statistics.median(r[0] for r in runs), 3),
                round(statistics.median(r[1] for r in runs), 3), round(server_ms / times, 3))

    def check() -> None:
        verdicts.landmark_faults(opened, alerts, window_s=_WINDOW_S, settle_s=_SETTLE_S,
                                 now_unix_ns=now)

    def old() -> None:
        store._all(OLD_AGGREGATE, (now - int(_WINDOW_S * _NS), now - int(_SETTLE_S * _NS)))

    try:
        for i in range(landmarks):
            opened.put_landmark(_landmark(f"lm-{i:03d}"))
        opened.put_landmark(_landmark("lm-dead"))
        rows = _task_rows(chips, landmarks, rounds, now)
        fill_start = time.perf_counter()
        _fill(store, rows)
        fill_s = time.perf_counter() - fill_start
        if store.dialect == "postgresql":
            store._db.execute("ANALYZE tasks")
        first = timed(check, 1)
        steady = timed(check, passes)
        reference = timed(old, max(3, passes // 4))
        opened_alerts = [a.subject_id for a in opened.alerts(
            AlertFilter(type=AlertType.LANDMARK_FAULT))]
    finally:
        opened.close()

    result: dict[str, Any] = {
        "backend": store.dialect, "chips": chips, "landmarks": landmarks + 1,
        "tasks_kept": len(rows), "tasks_in_window": len(rows) - chips * _TASKS_PER_ROUND,
        "fill_s": round(fill_s, 1), "alerted": opened_alerts,
        "first_check_ms": first[0], "first_check_cpu_ms": first[1],
        "steady_check_ms": steady[0], "steady_check_cpu_ms": steady[1],
        "old_aggregate_ms": reference[0], "old_aggregate_cpu_ms": reference[1]}
    if server_pid:
        result.update({"first_check_server_cpu_ms": first[2],
                       "steady_check_server_cpu_ms": steady[2],
                       "old_aggregate_server_cpu_ms": reference[2]})
    return result


def index_cost(chips: int, *, landmarks: int, rounds: int, cluster: Cluster | None,
               pairs: int = 3) -> list[dict[str, Any]]:
    """What migration 9's index costs the busiest insert: CPU µs per task to write the rows
    of `chips` chips, 1,000 per transaction (a plan tick's 250 chips times 4 tasks), into fresh
    databases with and without `tasks_by_landmark_time`, in alternating pairs (medians)."""
    rows = _task_rows(chips, landmarks, rounds, time.time_ns())
    found = []
    for backend in ("sqlite", "postgresql") if cluster is not None else ("sqlite",):
        runs: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
        for _ in range(pairs):
            for with_index in (False, True):
                url = cluster.fresh_url() if cluster and backend == "postgresql" else ""
                pid = postmaster_pid(cluster) if url else None
                with tempfile.TemporaryDirectory(prefix="lightfence-faults-") as tmp:
                    store = open_store(default_config(data_dir=Path(tmp), database_url=url))
                    assert isinstance(store, SqlBase)
                    try:
                        if not with_index:
                            store._db.execute("DROP INDEX tasks_by_landmark_time")
                        server = server_tree_cpu_s(pid) if pid else 0.0
                        cpu = time.process_time()
                        for start in range(0, len(rows), 1_000):
                            with store.transaction():
                                store._insert_rows("tasks", _COLUMNS, rows[start:start + 1_000])
                        runs[with_index].append((
                            (time.process_time() - cpu) * 1e6 / len(rows),
                            (server_tree_cpu_s(pid) - server) * 1e6 / len(rows) if pid else 0.0))
                    finally:
                        store.close()
                if cluster and url:
                    cluster.drop(url)
        result: dict[str, Any] = {"index_cost": backend, "tasks": len(rows)}
        for with_index, name in ((False, "without_index"), (True, "with_index")):
            result[f"{name}_cpu_us_per_task"] = round(
                statistics.median(r[0] for r in runs[with_index]), 2)
            if backend == "postgresql":
                result[f"{name}_server_cpu_us_per_task"] = round(
                    statistics.median(r[1] for r in runs[with_index]), 2)
        found.append(result)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chips", type=int, nargs="+", default=[2_000, 100_000])
    parser.add_argument("--landmarks", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2, help="each chip's rounds in the window")
    parser.add_argument("--passes", type=int, default=20)
    parser.add_argument("--postgres", action="store_true",
                        help="also on PostgreSQL (a throw-away cluster, fsync on)")
    parser.add_argument("--index-cost", type=int, metavar="CHIPS",
                        help="also time writing CHIPS chips' tasks with and without the index")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # not one line per alert
    results: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(throwaway_cluster()) if args.postgres else None
        for chips in args.chips:
            urls: list[str | None] = [None] if cluster is None else [None, cluster.fresh_url()]
            for url in urls:
                with tempfile.TemporaryDirectory(prefix="lightfence-faults-") as tmp:
                    results.append(run_size(
                        chips, landmarks=args.landmarks, rounds=args.rounds,
                        passes=args.passes, data_dir=Path(tmp), database_url=url,
                        server_pid=postmaster_pid(cluster) if url else None))
                if cluster is not None and url is not None:
                    cluster.drop(url)
                print(json.dumps(results[-1]), flush=True)
        if args.index_cost:
            for cost in index_cost(args.index_cost, landmarks=args.landmarks,
                                   rounds=args.rounds, cluster=cluster):
                print(json.dumps(cost), flush=True)
    summary = {}
    for backend in ("sqlite", "postgresql"):
        runs = [r for r in results if r["backend"] == backend]
        if len(runs) >= 2:
            summary[backend] = {key: [r[key] for r in runs] for key in (
                "chips", "tasks_in_window", "first_check_cpu_ms", "steady_check_cpu_ms",
                "old_aggregate_cpu_ms", *(["steady_check_server_cpu_ms",
                                           "old_aggregate_server_cpu_ms"]
                                          if backend == "postgresql" else []))}
    if summary:
        print(json.dumps({"summary": summary}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
