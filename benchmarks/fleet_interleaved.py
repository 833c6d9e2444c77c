"""Scheduling CPU per task at several fleet sizes, measured turn about so that every size sees
the same machine load:

    python -m benchmarks.fleet_interleaved --chips 2000 20000 100000 [--postgres]

`benchmarks.fleet` runs one size after the other through the whole API; on a machine shared with
other jobs the load moves between those runs by more than the 20 % the flatness goal allows.
Here one store per size (and per backend) is filled directly with chip rows as enrolment writes
them (a real certificate's JSON, one licence, an agent address), then `--cycles` cycles each
make `--due-per-tick` chips due in every store in turn and time one planning transaction
(`verifier.scheduler.plan`, the scheduler's whole per-tick planning work) with the planning
thread's own CPU clock (PostgreSQL's server CPU is not counted). Prints one JSON object: per
backend and size the median CPU ms per planned task over the cycles after the first, and the
ratio of the largest size's to the smallest's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.postgres import throwaway_cluster
from tests.verifier.fleet import Fleet
from verifier import scheduler
from verifier.config import default_config
from verifier.model import Chip, Landmark, Policy
from verifier.store import Store, open_store

_NS = 1_000_000_000
_FAR_NS = 4 * 10**18  # ns, in 2096: chips never due by themselves, landmarks alive
_FILL_BATCH = 10_000


def _fill(store: Store, chips: int, landmarks: int, fleet: Fleet) -> None:
    now = time.time_ns()
    store.put_policy(Policy("bench", 600.0, 4, 60.0, 86_400.0))
    for i in range(landmarks):
        body = fleet.landmark_body(f"LM{i:03d}", 50.0 + 0.3 * i, 8.0 + 0.3 * i)
        store.put_landmark(Landmark(f"LM{i:03d}", 50.0 + 0.3 * i, 8.0 + 0.3 * i, "127.0.0.1",
                                    9000 + i, bytes([i]) * 32, body["certificate"], _FAR_NS,
                                    False, None, _FAR_NS))
    certificate = fleet.chip_body("chip-0000000", {"allowed": ["DEU"]})["certificate"]
    for start in range(0, chips, _FILL_BATCH):
        store.put_chips([
            Chip(f"chip-{i:07d}", "acme", "H100", f"sn-{i}", "127.0.0.1", 9000, "bench",
                 i.to_bytes(32, "big"), certificate, {"allowed": ["DEU"]}, "unknown", now,
                 None, now, _FAR_NS)
            for i in range(start, min(chips, start + _FILL_BATCH))])


def _plan_cpu_ms_per_task(store: Store, chips: int, cycle: int, due_per_tick: int) -> float:
    now = time.time_ns()
    store.set_chips_next_round({f"chip-{(cycle * due_per_tick + j) % chips:07d}": now
                                for j in range(due_per_tick)})
    settings = scheduler.SchedulerSettings(landmark_dead_after_s=60.0,
                                           mesh_interval_s=3600.0, task_ttl_s=30.0)
    started = time.thread_time()
    with store.transaction():
        planned = scheduler.plan(store, settings, now, limit=due_per_tick)
    cpu_s = time.thread_time() - started
    tasks = len(planned.round_ids) * 4
    return cpu_s * 1000 / tasks if tasks else float("nan")


def run(sizes: list[int], urls: dict[str, list[str | None]], *, cycles: int, due_per_tick: int,
        landmarks: int, data_dir: Path) -> dict[str, Any]:
    fleet = Fleet.create()
    stores: dict[tuple[str, int], Store] = {}
    for backend, size_urls in urls.items():
        for chips, url in zip(sizes, size_urls, strict=True):
            overrides: dict[str, Any] = {"data_dir": data_dir / f"{backend}-{chips}"}
            if url is not None:
                overrides["database_url"] = url
            store = open_store(default_config(**overrides))
            _fill(store, chips, landmarks, fleet)
            stores[backend, chips] = store
    samples: dict[tuple[str, int], list[float]] = {key: [] for key in stores}
    for cycle in range(cycles):
        for (backend, chips), store in stores.items():
            samples[backend, chips].append(
                _plan_cpu_ms_per_task(store, chips, cycle, due_per_tick))
    for store in stores.values():
        store.close()
    result: dict[str, Any] = {"chips": sizes, "cycles": cycles, "due_per_tick": due_per_tick,
                              "landmarks": landmarks}
    for backend in urls:
        medians = [statistics.median(samples[backend, chips][1:]) for chips in sizes]
        result[backend] = {
            "scheduling_cpu_ms_per_task": [round(m, 4) for m in medians],
            "ratio_largest_to_smallest": round(medians[-1] / medians[0], 3),
            "samples_ms_per_task": {str(chips): [round(x, 4) for x in samples[backend, chips]]
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
    with contextlib.ExitStack() as stack:
        urls: dict[str, list[str | None]] = {"sqlite": [None] * len(args.chips)}
        if args.postgres:
            cluster = stack.enter_context(throwaway_cluster())
            urls["postgresql"] = [cluster.fresh_url() for _ in args.chips]
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lightfence-plan-")))
        print(json.dumps(run(args.chips, urls, cycles=args.cycles,
                             due_per_tick=args.due_per_tick, landmarks=args.landmarks,
                             data_dir=tmp)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
