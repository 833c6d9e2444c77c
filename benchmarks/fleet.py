"""Fleet benchmark: the scheduler and the decider at fleet size, on signed synthetic uploads.

    python -m benchmarks.fleet --chips 2000 100000 [--cycles 4] [--due-per-tick 250]
        [--poll-cycles 3] [--decide-processes 1] [--postgres | --database-url postgresql://...]

For each fleet size: a real verifier app (in-process, ASGI, its background tick idle) gets
`--landmarks` landmarks and N chips through the bulk enrolment API (`enrolment_chips_per_s`),
then runs `--cycles` timed cycles of: `due-per-tick` chips become due; a tick plans their
rounds (scheduling CPU per task); every landmark polls its tasks through the API, signs an
answer to each and uploads it; a second tick closes the answered rounds into verdicts (rounds
decided per second, tick latency). `--poll-cycles` more cycles (default 3), not timed, have
every landmark polling over and over through both ticks: `task_poll_ms_*` is what a poll takes
while the scheduler and the decider run. Then every landmark polls 25 more times with nothing
due (`idle_poll_ms_*`).
Database bytes per chip-day come from the database's growth per decided round (verdicts,
measurements, tasks, evidence log; SQLite's file after a WAL checkpoint, or PostgreSQL's
`pg_database_size`) times the policy's rounds per day.

Each size runs on SQLite, and also on PostgreSQL with `--postgres` (a throw-away cluster,
fsync on, a fresh database per size) or `--database-url`. Prints one JSON object per run, then
a summary per backend comparing the sizes. Scheduling CPU is the CPU time of the event loop's
and the database's threads over the plan ticks (their own clocks, so what else the shared
machine runs does not count); decide CPU is the process's (time.process_time, all threads)
plus its decide worker processes' (`--decide-processes`, default 1; 0 decides on a thread).
Latencies depend on the machine's load.
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

import httpx

from benchmarks.postgres import throwaway_cluster
from geo.geodesy import distance_km
from tests.verifier.fleet import Fleet
from verifier.app import create_app
from verifier.auth import issue_token
from verifier.config import default_config
from verifier.service import Service
from verifier.store import Store

_NS = 1_000_000_000
_ENROL_BATCH = 1_000
_ROUND_INTERVAL_S = 600.0  # the policy's: 144 rounds per chip-day
_CHIP_SITE = (50.0, 8.3)  # every synthetic chip sits near Frankfurt, inside its licence
_LANDMARK_SITES = [(50.11, 8.68), (52.52, 13.40), (48.14, 11.58), (53.55, 9.99),
                   (51.23, 6.78), (49.45, 11.08), (51.34, 12.37), (47.37, 8.54)]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def _landmark_site(i: int) -> tuple[float, float]:
    lat, lon = _LANDMARK_SITES[i % len(_LANDMARK_SITES)]
    return lat + (i // len(_LANDMARK_SITES)) * 0.1, lon


def _honest_rtt_ms(i: int) -> float:
    """What an honest chip at `_CHIP_SITE` answers landmark i in: light in fibre (~200 km/ms)
    there and back, plus 0.5 ms of processing."""
    lat, lon = _landmark_site(i)
    return 2 * distance_km(lat, lon, *_CHIP_SITE) / 200.0 + 0.5


def _children_cpu_s() -> float:
    """CPU seconds of this process's live child processes (the verifier's decide workers),
    from /proc: `time.process_time` counts this process only."""
    ticks = 0
    for thread in Path("/proc/self/task").iterdir():
        for pid in (thread / "children").read_text().split():
            with contextlib.suppress(OSError):  # it ended meanwhile
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _decide_cpu_s() -> float:
    return time.process_time() + _children_cpu_s()


def _threads_cpu_s(idents: list[int]) -> float:
    """CPU seconds these threads have used, from their own clocks."""
    return sum(time.clock_gettime(time.pthread_getcpuclockid(ident)) for ident in idents)


async def _bytes(service: Service) -> int:
    return int(await service.db.run(Store.database_bytes))


async def _enrol(client: httpx.AsyncClient, fleet: Fleet, admin: dict[str, str],
                 chips: int, landmarks: int) -> tuple[dict[str, dict[str, str]], float]:
    (await client.put("/v1/policies/bench", headers=admin, json={
        "round_interval_s": _ROUND_INTERVAL_S, "landmarks_per_round": 4,
        "round_timeout_s": 60.0, "dark_window_s": 86_400})).raise_for_status()
    tokens = {}
    for i in range(landmarks):
        lat, lon = _landmark_site(i)
        landmark_id = f"LM{i:03d}"
        (await client.post("/v1/landmarks", headers=admin, json=fleet.landmark_body(
            landmark_id, lat, lon))).raise_for_status()
        token = (await client.post("/v1/tokens", headers=admin, json={
            "role": "landmark", "label": landmark_id, "landmark_id": landmark_id})).json()
        tokens[landmark_id] = {"Authorization": f"Bearer {token['token']}"}
    bodies = [fleet.chip_body(f"chip-{i:07d}", {"allowed": ["DEU"]}, policy="bench")
              for i in range(chips)]
    started = time.perf_counter()
    for start in range(0, chips, _ENROL_BATCH):
        (await client.post("/v1/chips/bulk", headers=admin, timeout=600.0, json={
            "chips": bodies[start:start + _ENROL_BATCH]})).raise_for_status()
    return tokens, chips / (time.perf_counter() - started)


async def _make_due(service: Service, chip_ids: list[str], now_unix_ns: int) -> None:
    await service.db.run(Store.set_chips_next_round, dict.fromkeys(chip_ids, now_unix_ns))


async def _defer_all(service: Service, chips: int, until_unix_ns: int) -> None:
    """Push every chip's next round past the benchmark (in chunks: one long transaction would
    hold SQLite's write lock past the leader lease's renewal)."""
    for start in range(0, chips, 10_000):
        await service.db.run(Store.set_chips_next_round, {
            f"chip-{i:07d}": until_unix_ns for i in range(start, min(chips, start + 10_000))})


async def _lead(service: Service) -> None:
    """Wait until this (only) replica holds the leader lease."""
    for _ in range(100):
        if await service.leadership.renew():
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("the benchmark's verifier never became the leader")


class _Poller:
    """Every landmark polling its tasks over and over (`wait_s=0`, a few ms apart), as real
    ones keep a poll open, while a tick runs: what a poll costs a landmark while the scheduler
    and the decider hold the database. Keeps the tasks it was handed for `_answer`."""

    def __init__(self, client: httpx.AsyncClient, tokens: dict[str, dict[str, str]]) -> None:
        self._client = client
        self.tokens = tokens
        self.latencies_ms: list[float] = []
        self.during: dict[str, list[float]] = {"plan": [], "decide": []}  # tick -> latencies
        self.taken: dict[str, list[dict[str, Any]]] = {landmark: [] for landmark in tokens}
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def poll(self, landmark_id: str) -> None:
        started = time.perf_counter()
        polled = await self._client.get(f"/v1/landmarks/{landmark_id}/tasks?wait_s=0",
                                        headers=self.tokens[landmark_id])
        self.latencies_ms.append((time.perf_counter() - started) * 1000)
        polled.raise_for_status()
        self.taken[landmark_id].extend(polled.json()["tasks"])

    async def _run(self) -> None:
        while not self._stop.is_set():
            for landmark_id in self.tokens:
                await self.poll(landmark_id)
            await asyncio.sleep(0.005)

    def start(self, tick: str) -> None:
        self.latencies_ms = self.during[tick]
        self._stop.clear()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
        self.latencies_ms = []  # the polls `_answer` makes between ticks are not counted


async def _answer(client: httpx.AsyncClient, fleet: Fleet, poller: _Poller,
                  rtt_ms: dict[str, float]) -> int:
    """Every landmark polls once more and uploads a signed answer to each task it was handed
    (here or by the poller); measurements accepted."""
    uploaded = 0
    for landmark_id, tasks in poller.taken.items():
        await poller.poll(landmark_id)
        records = [fleet.record(landmark_id, t["target_id"], rtt_ms[landmark_id])
                   for t in tasks if t["target_kind"] == "chip"]
        tasks.clear()
        auth = poller.tokens[landmark_id]
        for start in range(0, len(records), 500):
            batch = fleet.batch(landmark_id, records[start:start + 500])
            r = await client.post("/v1/measurements", headers=auth, json=batch.to_json())
            r.raise_for_status()
            uploaded += r.json()["accepted"]
    return uploaded


async def _poll_often(client: httpx.AsyncClient, tokens: dict[str, dict[str, str]],
                      times: int) -> list[float]:
    """Latency of `times` polls per landmark with nothing due (what a landmark's steady
    long-poll costs the verifier between rounds), in ms."""
    latencies = []
    for _ in range(times):
        for landmark_id, auth in tokens.items():
            started = time.perf_counter()
            polled = await client.get(f"/v1/landmarks/{landmark_id}/tasks?wait_s=0",
                                      headers=auth)
            latencies.append((time.perf_counter() - started) * 1000)
            polled.raise_for_status()
    return latencies


async def run_fleet(chips: int, *, landmarks: int, cycles: int, due_per_tick: int,
                    data_dir: Path, database_url: str | None,
                    decide_processes: int = 1, poll_cycles: int = 3) -> dict[str, Any]:
    fleet = Fleet.create()
    overrides: dict[str, Any] = {"data_dir": data_dir, "ca_public_key_b64": fleet.ca_b64,
                                 "tick_s": 3_600.0, "min_key_protection": "software",
                                 "decide_processes": decide_processes}
    if database_url:
        overrides["database_url"] = database_url
    app = create_app(default_config(**overrides))
    result: dict[str, Any] = {"chips": chips, "landmarks": landmarks, "cycles": cycles,
                              "poll_cycles": poll_cycles,
                              "due_per_tick": due_per_tick, "decide_processes": decide_processes,
                              "backend": "postgresql" if database_url else "sqlite"}
    async with app.router.lifespan_context(app):
        service: Service = app.state.service
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench",
                                     timeout=120.0) as client:
            _, secret = await service.db.run(issue_token, role="admin", label="bench",
                                             landmark_id=None, now_unix_ns=time.time_ns())
            admin = {"Authorization": f"Bearer {secret}"}
            tokens, enrol_rate = await _enrol(client, fleet, admin, chips, landmarks)
            rtt_ms = {f"LM{i:03d}": _honest_rtt_ms(i) for i in range(landmarks)}
            result["enrolment_chips_per_s"] = round(enrol_rate, 1)
            now = time.time_ns()
            await _defer_all(service, chips, now + int(_ROUND_INTERVAL_S * _NS))
            await _lead(service)
            poller = _Poller(client, tokens)
            # A plan tick runs on the event loop and the database thread; the lease's own
            # thread renews on a timer, so it is left out (it would charge a slow tick more).
            tick_threads = [threading.get_ident(),
                            await service.db.run(lambda _: threading.get_ident())]
            # Every landmark polls (alive) and answers its mesh tasks before the timed part.
            await _answer(client, fleet, poller, rtt_ms)
            await service.tick(time.time_ns())
            await _answer(client, fleet, poller, rtt_ms)
            await service.tick(time.time_ns())
            plan_cpu_s = plan_tasks = decide_cpu_s = decided = 0.0
            plan_ms: list[float] = []
            decide_ms: list[float] = []
            bytes_before = await _bytes(service)
            verdicts_before = await service.db.run(Store.count_rows, "verdicts")
            # The timed cycles, then `poll_cycles` with every landmark polling throughout
            # (their CPU would count the polls, so they are not timed; their poll latencies
            # are reported).
            for cycle in range(cycles + poll_cycles):
                loaded = cycle >= cycles
                await _lead(service)
                due = [f"chip-{(cycle * due_per_tick + j) % chips:07d}"
                       for j in range(due_per_tick)]
                await _make_due(service, due, time.time_ns())
                tasks_before = await service.db.run(Store.count_rows, "tasks")
                if loaded:
                    poller.start("plan")
                cpu, wall = _threads_cpu_s(tick_threads), time.perf_counter()
                await service.tick(time.time_ns())
                if not loaded:
                    plan_cpu_s += _threads_cpu_s(tick_threads) - cpu
                    plan_ms.append((time.perf_counter() - wall) * 1000)
                    plan_tasks += await service.db.run(Store.count_rows, "tasks") - tasks_before
                await poller.stop()
                await _answer(client, fleet, poller, rtt_ms)
                closed_before = await service.db.run(Store.count_rows, "verdicts")
                if loaded:
                    poller.start("decide")
                cpu, wall = _decide_cpu_s(), time.perf_counter()
                await service.tick(time.time_ns())
                if not loaded:
                    decide_cpu_s += _decide_cpu_s() - cpu
                    decide_ms.append((time.perf_counter() - wall) * 1000)
                    decided += await service.db.run(Store.count_rows, "verdicts") - closed_before
                await poller.stop()
            poll_ms = poller.during["plan"] + poller.during["decide"]
            rounds = await service.db.run(Store.count_rows, "verdicts") - verdicts_before
            idle_poll_ms = await _poll_often(client, tokens, 25)
            grown = await _bytes(service) - bytes_before
    per_round = grown / rounds if rounds else 0.0
    result.update({
        "scheduling_cpu_ms_per_task": round(plan_cpu_s * 1000 / plan_tasks, 4)
        if plan_tasks else None,
        "tasks_planned": int(plan_tasks),
        "plan_tick_ms_p50": round(statistics.median(plan_ms), 1),
        "plan_tick_ms_max": round(max(plan_ms), 1),
        "rounds_decided": int(decided),
        "rounds_decided_per_s": round(decided / (sum(decide_ms) / 1000), 1) if decided else 0,
        "decide_cpu_ms_per_round": round(decide_cpu_s * 1000 / decided, 3) if decided else None,
        "decide_tick_ms_p50": round(statistics.median(decide_ms), 1),
        "decide_tick_ms_max": round(max(decide_ms), 1),
        "task_poll_ms_p50": round(_percentile(poll_ms, 0.5), 2),
        "task_poll_ms_p99": round(_percentile(poll_ms, 0.99), 2),
        "task_poll_ms_max": round(max(poll_ms), 2) if poll_ms else 0.0,
        "task_polls": len(poll_ms),
        "task_poll_ms_p99_during_plan": round(_percentile(poller.during["plan"], 0.99), 2),
        "task_poll_ms_p99_during_decide": round(_percentile(poller.during["decide"], 0.99), 2),
        "idle_poll_ms_p50": round(_percentile(idle_poll_ms, 0.5), 2),
        "idle_poll_ms_p99": round(_percentile(idle_poll_ms, 0.99), 2),
        "db_bytes_per_round": round(per_round),
        "db_bytes_per_chip_day": round(per_round * 86_400 / _ROUND_INTERVAL_S),
    })
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chips", type=int, nargs="+", default=[2_000, 100_000])
    parser.add_argument("--landmarks", type=int, default=8)
    parser.add_argument("--cycles", type=int, default=4)
    parser.add_argument("--due-per-tick", type=int, default=250)
    parser.add_argument("--poll-cycles", type=int, default=3,
                        help="untimed cycles with every landmark polling through both ticks")
    parser.add_argument("--decide-processes", type=int, default=1,
                        help="the verifier's decide_processes (0: decide on a thread)")
    parser.add_argument("--postgres", action="store_true",
                        help="start a throw-away PostgreSQL cluster (fsync on) for the run")
    parser.add_argument("--database-url", default=None,
                        help="also run on this PostgreSQL database (empty; one size only)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # one alert per chip would drown the JSON
    results: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(throwaway_cluster()) if args.postgres else None
        for chips in args.chips:
            urls: list[str | None] = [None]
            if cluster is not None:
                urls.append(cluster.fresh_url())
            elif args.database_url:
                urls.append(args.database_url)
            for url in urls:
                with tempfile.TemporaryDirectory(prefix="lightfence-fleet-") as tmp:
                    results.append(asyncio.run(run_fleet(
                        chips, landmarks=args.landmarks, cycles=args.cycles,
                        due_per_tick=args.due_per_tick, data_dir=Path(tmp),
                        database_url=url, decide_processes=args.decide_processes,
                        poll_cycles=args.poll_cycles)))
                print(json.dumps(results[-1]), flush=True)
    summary = {}
    for backend in ("sqlite", "postgresql"):
        runs = [r for r in results if r["backend"] == backend]
        if len(runs) < 2:
            continue
        cpu = [r["scheduling_cpu_ms_per_task"] for r in runs]
        summary[backend] = {
            "chips": [r["chips"] for r in runs], "scheduling_cpu_ms_per_task": cpu,
            "scheduling_cpu_ratio_largest_to_smallest":
                round(cpu[-1] / cpu[0], 3) if cpu[0] and cpu[-1] else None,
            "task_poll_ms_p99": [r["task_poll_ms_p99"] for r in runs],
            "idle_poll_ms_p99": [r["idle_poll_ms_p99"] for r in runs],
            "db_bytes_per_chip_day": [r["db_bytes_per_chip_day"] for r in runs]}
    if summary:
        print(json.dumps({"summary": summary}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

