"""What the leader's per-verdict write costs: `verdicts.record` in its fenced transaction.

    python -m benchmarks.verdict_record [--rounds 200] [--chips 50] [--postgres]

A real verifier app (in-process, its background tick idle) gets 4 landmarks around Germany and
``chips`` chips near Kassel. Each cycle makes every chip due, plans their rounds, has every
landmark poll and upload one signed honest answer per task, collects and decides the rounds,
and then records each verdict as the leader does: the round's close, the verdict, the chip's
state, its alerts and its evidence entry in one transaction fenced by the lease. Only that
transaction is timed, from BEGIN to COMMIT: wall and CPU time of the database thread
(`time.thread_time`, so the machine's other work does not count), and on PostgreSQL the
statements the thread sent per verdict (psycopg calls, BEGIN/SAVEPOINT/COMMIT included) and
the server's CPU over the timed transactions (backends and writers, from /proc).

Runs on SQLite, and on a throw-away PostgreSQL cluster (fsync on) with ``--postgres``. Prints
one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg

from benchmarks.ingest import postmaster_pid, server_tree_cpu_s
from benchmarks.postgres import throwaway_cluster
from geo.geodesy import distance_km, vacuum_rtt_ms
from tests.verifier.fleet import Fleet
from verifier import scheduler, verdicts
from verifier.app import create_app
from verifier.auth import issue_token
from verifier.config import default_config
from verifier.service import Service
from verifier.store import Store

_LANDMARKS = {"FRA": (50.11, 8.68), "BER": (52.52, 13.40), "MUC": (48.14, 11.58),
              "HAM": (53.55, 9.99)}
_CHIP_SITE = (51.31, 9.48)  # Kassel: inside the licence, every verdict `verified`


def _rtt_ms(landmark: tuple[float, float]) -> float:
    return vacuum_rtt_ms(distance_km(*landmark, *_CHIP_SITE)) * 1.02 + 0.05


class _StatementCounter:
    """Counts the psycopg calls (execute, executemany) one thread makes while armed."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.thread: int | None = None

    @contextmanager
    def installed(self) -> Iterator[None]:
        original = psycopg.Cursor.execute, psycopg.Cursor.executemany
        counter = self

        def execute(cur: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            counter._count(query)
            return original[0](cur, query, *args, **kwargs)

        def executemany(cur: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            counter._count(query)
            return original[1](cur, query, *args, **kwargs)

        psycopg.Cursor.execute, psycopg.Cursor.executemany = execute, executemany  # type: ignore[assignment, method-assign]
        try:
            yield
        finally:
            psycopg.Cursor.execute, psycopg.Cursor.executemany = original  # type: ignore[method-assign]

    def _count(self, query: Any) -> None:
        if self.thread is not None and threading.get_ident() == self.thread:
            text = str(query).split(None, 1)[0].upper()
            self.counts[text] += 1


async def _setup(client: httpx.AsyncClient, service: Service, fleet: Fleet,
                 chips: int) -> dict[str, dict[str, str]]:
    _, secret = await service.db.run(issue_token, role="admin", label="bench",
                                     landmark_id=None, now_unix_ns=time.time_ns())
    admin = {"Authorization": f"Bearer {secret}"}
    tokens = {}
    for landmark_id, (lat, lon) in _LANDMARKS.items():
        (await client.post("/v1/landmarks", headers=admin,
                           json=fleet.landmark_body(landmark_id, lat, lon))).raise_for_status()
        token = (await client.post("/v1/tokens", headers=admin, json={
            "role": "landmark", "label": landmark_id, "landmark_id": landmark_id})).json()
        tokens[landmark_id] = {"Authorization": f"Bearer {token['token']}"}
    (await client.post("/v1/chips/bulk", headers=admin, json={"chips": [
        fleet.chip_body(f"chip-{i:04d}", {"allowed": ["DEU"]}) for i in range(chips)]})
     ).raise_for_status()
    for landmark_id, headers in tokens.items():  # a landmark that polled is alive
        (await client.get(f"/v1/landmarks/{landmark_id}/tasks?wait_s=0", headers=headers)
         ).raise_for_status()
    return tokens


async def _answer(client: httpx.AsyncClient, fleet: Fleet,
                  tokens: dict[str, dict[str, str]]) -> None:
    """Every landmark polls and uploads an honest signed answer to each of its chip tasks."""
    for landmark_id, site in _LANDMARKS.items():
        r = await client.get(f"/v1/landmarks/{landmark_id}/tasks?wait_s=0",
                             headers=tokens[landmark_id])
        r.raise_for_status()
        records = [fleet.record(landmark_id, t["target_id"], _rtt_ms(site),
                                round_id=t["round_id"], task_id=t["task_id"])
                   for t in r.json()["tasks"] if t["target_kind"] == "chip"]
        if records:
            (await client.post("/v1/measurements", headers=tokens[landmark_id],
                               json=fleet.batch(landmark_id, records).to_json())
             ).raise_for_status()


async def run_backend(rounds: int, chips: int, *, data_dir: Path,
                      database_url: str | None, database_pid: int | None) -> dict[str, Any]:
    fleet = Fleet.create()
    overrides: dict[str, Any] = {"data_dir": data_dir, "ca_public_key_b64": fleet.ca_b64,
                                 "tick_s": 3_600.0, "min_key_protection": "software"}
    if database_url:
        overrides["database_url"] = database_url
    app = create_app(default_config(**overrides))
    counter = _StatementCounter()
    wall_ms: list[float] = []
    cpu_ms: list[float] = []
    server_cpu_s = 0.0
    async with app.router.lifespan_context(app):
        service: Service = app.state.service
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench",
                                     timeout=120.0) as client:
            tokens = await _setup(client, service, fleet, chips)
            counter.thread = await service.db.run(lambda _: threading.get_ident())

            def timed(store: Store, decision: verdicts.Decision) -> tuple[float, float]:
                cpu, wall = time.thread_time(), time.perf_counter()
                with (service.alerts.held(), service.evidence.leading(),
                      service.leadership.fenced(store)):
                    verdicts.record(store, decision, alerts=service.alerts,
                                    metrics=service.metrics, evidence=service.evidence,
                                    now_unix_ns=time.time_ns())
                return time.thread_time() - cpu, time.perf_counter() - wall

            while len(wall_ms) < rounds:
                if not await service.leadership.renew():
                    raise RuntimeError("the benchmark's verifier is not the leader")
                await service.db.run(Store.set_chips_next_round,
                                     {f"chip-{i:04d}": 0 for i in range(chips)})
                await service.tick(time.time_ns())  # plans one round per chip
                await _answer(client, fleet, tokens)
                now = time.time_ns()
                due = await service.db.run(scheduler.due_rounds, now, scheduler.AnswerCursor())
                inputs = await service.db.run(verdicts.collect_all, due, now, service.alerts,
                                              "software")
                decisions = [verdicts.decide(i) for i in inputs]
                if not decisions:
                    raise RuntimeError("no round was due after every landmark answered")
                before = server_tree_cpu_s(database_pid) if database_pid else 0.0
                with counter.installed():
                    for decision in decisions[:rounds - len(wall_ms)]:
                        cpu_s, wall_s = await service.db.run(timed, decision)
                        cpu_ms.append(cpu_s * 1e3)
                        wall_ms.append(wall_s * 1e3)
                if database_pid:
                    server_cpu_s += server_tree_cpu_s(database_pid) - before
            verdict_count = await service.db.run(Store.count_rows, "verdicts")
            entries = (await service.db.run(Store.log_size))
    n = len(wall_ms)
    result: dict[str, Any] = {
        "verdicts": n,
        "wall_ms_mean": round(statistics.fmean(wall_ms), 3),
        "wall_ms_median": round(statistics.median(wall_ms), 3),
        "cpu_ms_mean": round(statistics.fmean(cpu_ms), 3),
        "verdicts_in_db": verdict_count,
        "log_entries": entries,
    }
    if database_url:
        result["statements_per_verdict"] = round(sum(counter.counts.values()) / n, 2)
        result["statements_by_kind"] = {k: round(v / n, 2)
                                        for k, v in counter.counts.most_common()}
        if database_pid:
            result["server_cpu_ms_per_verdict"] = round(server_cpu_s / n * 1e3, 3)
    return result


def run(rounds: int, chips: int, postgres: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"rounds": rounds, "chips": chips,
                           "load_average_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        out["sqlite"] = asyncio.run(run_backend(rounds, chips, data_dir=Path(tmp) / "s",
                                                database_url=None, database_pid=None))
        if postgres:
            with throwaway_cluster() as cluster:
                out["postgresql"] = asyncio.run(run_backend(
                    rounds, chips, data_dir=Path(tmp) / "p", database_url=cluster.fresh_url(),
                    database_pid=postmaster_pid(cluster)))
    out["load_average_end"] = os.getloadavg()[0]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="verdicts recorded per backend")
    parser.add_argument("--chips", type=int, default=50, help="chips (rounds per cycle)")
    parser.add_argument("--postgres", action="store_true",
                        help="also on a throw-away PostgreSQL cluster")
    args = parser.parse_args()
    print(json.dumps(run(args.rounds, args.chips, args.postgres)))


if __name__ == "__main__":
    main()
