"""Scheduling CPU per task at several fleet sizes, measured turn about so that every size sees
the same machine load:

    python -m benchmarks.fleet_interleaved --chips 2000 20000 100000 [--postgres]

`benchmarks.fleet` runs one size after the other through the whole API; on a machine shared with
other jobs the load moves between those runs by more than the 20 % the flatness goal allows.
Here one verifier per size (and per backend; its background loops not started) gets its store
filled directly with chip rows as enrolment writes them (a real certificate's JSON, one
licence, an agent address; every other chip `verified` until long after the run, so the
`verified_until` table is fleet-sized as in a verified fleet), then `--cycles` cycles each, in
every verifier in turn, make `--due-per-tick` chips due and time

- `plan`: one planning transaction (`verifier.scheduler.plan`) on the database thread's CPU
  clock: the scheduler's per-chip work alone;
- `tick`: then as many chips again due, one whole leader tick (`Service.tick`: planning in
  chunks, the lease checks, looking for finished rounds, expiring `verified` states, the
  periodic checks) on the CPU clocks of the event loop's and that verifier's database thread,
  as `benchmarks.fleet` times its plan ticks. What a tick costs beyond planning and grows with
  the fleet shows here (an expiry query that walked every chip did, 0.05 ms per task at
  100,000 chips);
- `idle tick`: then a tick with nothing due, in ms of CPU: what the leader pays every `tick_s`
  (1 s by default) whatever is planned; with 10-minute rounds a fleet of N chips plans only
  N / 150 tasks a second, so at 2,000 chips this, not the per-task figure, is most of the cost.

Rounds last an hour, so no round reaches its deadline and every tick is a plan tick.
Prints one JSON object: per backend and size the median CPU ms per planned task over the cycles
after the first, for both, the idle tick's median CPU ms, and the ratio of the largest size's
to the smallest's; on PostgreSQL also the server's CPU per task over the ticks (all its
processes, summed over those cycles).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.ingest import postmaster_pid, server_tree_cpu_s
from benchmarks.postgres import throwaway_cluster
from tests.verifier.fleet import Fleet
from verifier import scheduler
from verifier.config import default_config
from verifier.model import Chip, Landmark, Policy
from verifier.service import Service
from verifier.store import Store

_NS = 1_000_000_000
_FAR_NS = 4 * 10**18  # ns, in 2096: chips never due by themselves, landmarks alive
_FILL_BATCH = 10_000
_ROUND_TIMEOUT_S = 3_600.0  # no round of the run reaches its deadline


def fill(store: Store, chips: int, landmarks: int, fleet: Fleet) -> None:
    """`chips` chips (every other one `verified` until 2096) and `landmarks` live landmarks
    under policy "bench", written directly rather than through the API."""
    now = time.time_ns()
    store.put_policy(Policy("bench", 600.0, 4, _ROUND_TIMEOUT_S, 86_400.0))
    for i in range(landmarks):
        body = fleet.landmark_body(f"LM{i:03d}", 50.0 + 0.3 * i, 8.0 + 0.3 * i)
        store.put_landmark(Landmark(f"LM{i:03d}", 50.0 + 0.3 * i, 8.0 + 0.3 * i, "127.0.0.1",
                                    9000 + i, bytes([i]) * 32, body["certificate"], _FAR_NS,
                                    False, None, _FAR_NS))
    certificate = fleet.chip_body("chip-0000000", {"allowed": ["DEU"]})["certificate"]
    for start in range(0, chips, _FILL_BATCH):
        batch = range(start, min(chips, start + _FILL_BATCH))
        store.put_chips([
            Chip(f"chip-{i:07d}", "acme", "H100", f"sn-{i}", "127.0.0.1", 9000, "bench",
                 i.to_bytes(32, "big"), certificate, {"allowed": ["DEU"]},
                 "verified" if i % 2 == 0 else "unknown", now, None, now, _FAR_NS)
            for i in batch])
        with store.transaction():
            for i in batch[::2]:
                store.set_verified_until(f"chip-{i:07d}", _FAR_NS)


def _due(chips: int, turn: int, due_per_tick: int) -> dict[str, int]:
    """The chips due in this turn (each turn takes the next `due_per_tick` of the fleet)."""
    now = time.time_ns()
    return {f"chip-{(turn * due_per_tick + j) % chips:07d}": now for j in range(due_per_tick)}


def _plan_cpu_ms_per_task(store: Store, due: dict[str, int]) -> float:
    """One planning transaction for these due chips, on this (the database) thread's clock."""
    store.set_chips_next_round(due)
    settings = scheduler.SchedulerSettings(landmark_dead_after_s=60.0,
                                           mesh_interval_s=3600.0, task_ttl_s=30.0)
    started = time.thread_time()
    with store.transaction():
        planned = scheduler.plan(store, settings, time.time_ns(), limit=len(due))
    cpu_s = time.thread_time() - started
    tasks = len(planned.round_ids) * 4
    return cpu_s * 1000 / tasks if tasks else float("nan")


def _threads_cpu_s(idents: list[int]) -> float:
    """CPU seconds these threads have used, from their own clocks."""
    return sum(time.clock_gettime(time.pthread_getcpuclockid(ident)) for ident in idents)


async def _tick(service: Service, due: dict[str, int],
                server_pid: int | None) -> tuple[float, float, int]:
    """One whole leader tick with these chips due: (CPU s of the event loop's and the database
    thread's clocks (the lease's own thread renews on a timer and is left out), CPU s of the
    PostgreSQL server's processes (0 on SQLite), tasks planned)."""
    await service.db.run(Store.set_chips_next_round, due)
    threads = [threading.get_ident(), await service.db.run(lambda _: threading.get_ident())]
    tasks_before = await service.db.run(Store.count_rows, "tasks")
    server = server_tree_cpu_s(server_pid) if server_pid else 0.0
    started = _threads_cpu_s(threads)
    await service.tick(time.time_ns())
    cpu_s = _threads_cpu_s(threads) - started
    server = server_tree_cpu_s(server_pid) - server if server_pid else 0.0
    tasks = await service.db.run(Store.count_rows, "tasks") - tasks_before
    return cpu_s, server, tasks


async def run(sizes: list[int], urls: dict[str, list[str | None]], *, cycles: int,
              due_per_tick: int, landmarks: int, data_dir: Path,
              server_pid: int | None = None) -> dict[str, Any]:
    fleet = Fleet.create()
    services: dict[tuple[str, int], Service] = {}
    load_before = os.getloadavg()
    try:
        for backend, size_urls in urls.items():
            for chips, url in zip(sizes, size_urls, strict=True):
                overrides: dict[str, Any] = {
                    "data_dir": data_dir / f"{backend}-{chips}", "ca_public_key_b64": fleet.ca_b64,
                    "tick_s": 3_600.0, "min_key_protection": "software"}
                if url is not None:
                    overrides["database_url"] = url
                service = services[backend, chips] = Service(default_config(**overrides))
                await service.db.run(fill, chips, landmarks, fleet)
        plan: dict[tuple[str, int], list[float]] = {key: [] for key in services}
        tick: dict[tuple[str, int], list[float]] = {key: [] for key in services}
        idle: dict[tuple[str, int], list[float]] = {key: [] for key in services}
        # The server's CPU comes in 10 ms clock ticks: summed over the cycles, not per tick.
        server: dict[tuple[str, int], list[float]] = {key: [0.0, 0.0] for key in services}
        for cycle in range(cycles):
            for (backend, chips), service in services.items():
                plan[backend, chips].append(await service.db.run(
                    _plan_cpu_ms_per_task, _due(chips, 2 * cycle, due_per_tick)))
                cpu_s, server_s, tasks = await _tick(
                    service, _due(chips, 2 * cycle + 1, due_per_tick),
                    server_pid if backend == "postgresql" else None)
                tick[backend, chips].append(cpu_s * 1000 / tasks if tasks else float("nan"))
                idle_s, _, _ = await _tick(service, {}, None)
                idle[backend, chips].append(idle_s * 1000)
                if cycle:
                    server[backend, chips][0] += server_s
                    server[backend, chips][1] += tasks
    finally:
        for service in services.values():
            await service.stop()
    result: dict[str, Any] = {"chips": sizes, "cycles": cycles, "due_per_tick": due_per_tick,
                              "landmarks": landmarks,
                              "load_before": [round(x, 2) for x in load_before],
                              "load_after": [round(x, 2) for x in os.getloadavg()]}
    for backend in urls:
        plan_ms = [statistics.median(plan[backend, chips][1:]) for chips in sizes]
        tick_ms = [statistics.median(tick[backend, chips][1:]) for chips in sizes]
        result[backend] = {
            "scheduling_cpu_ms_per_task": [round(m, 4) for m in plan_ms],
            "ratio_largest_to_smallest": round(plan_ms[-1] / plan_ms[0], 3),
            "tick_cpu_ms_per_task": [round(m, 4) for m in tick_ms],
            "tick_ratio_largest_to_smallest": round(tick_ms[-1] / tick_ms[0], 3),
            "idle_tick_cpu_ms": [round(statistics.median(idle[backend, chips][1:]), 3)
                                 for chips in sizes],
            **({"server_tick_cpu_ms_per_task": [
                round(server[backend, chips][0] * 1000 / server[backend, chips][1], 4)
                if server[backend, chips][1] else None for chips in sizes]}
               if backend == "postgresql" else {}),
            "samples_ms_per_task": {str(chips): [round(x, 4) for x in plan[backend, chips]]
                                    for chips in sizes},
            "tick_samples_ms_per_task": {str(chips): [round(x, 4) for x in tick[backend, chips]]
                                         for chips in sizes}}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chips", type=int, nargs="+", default=[2_000, 100_000])
    parser.add_argument("--cycles", type=int, default=12)
    parser.add_argument("--due-per-tick", type=int, default=250)
    parser.add_argument("--landmarks", type=int, default=8)
    parser.add_argument("--postgres", action="store_true",
                        help="also on PostgreSQL (a throw-away cluster, fsync on)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # not the verifiers' "now the leader" lines
    with contextlib.ExitStack() as stack:
        urls: dict[str, list[str | None]] = {"sqlite": [None] * len(args.chips)}
        cluster = stack.enter_context(throwaway_cluster()) if args.postgres else None
        if cluster is not None:
            urls["postgresql"] = [cluster.fresh_url() for _ in args.chips]
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lightfence-plan-")))
        print(json.dumps(asyncio.run(run(args.chips, urls, cycles=args.cycles,
                                         due_per_tick=args.due_per_tick,
                                         landmarks=args.landmarks, data_dir=tmp,
                                         server_pid=postmaster_pid(cluster)))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
