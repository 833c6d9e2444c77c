"""Full garbage collections at fleet size, with and without `gc.freeze()` after start-up.

    python -m benchmarks.fleet_gc --chips 2000 100000 [--ticks 8] [--due-per-tick 250]

For each size, two fresh processes, without and with the freeze: the verifier app is built as
`lightfence verifier serve` builds it and, in the second, its start-up objects are frozen as
serve does (`verifier.cli.freeze_start_up`). Then its service starts (SQLite), N chips and 8
landmarks are written, and `--ticks` leader ticks each plan `--due-per-tick` chips' rounds.
Reported: the full collections the collector ran by itself meanwhile (how many, the longest and
the total pause), and one explicit full collection afterwards (median of 5). A full collection
holds the GIL: its time is a pause of the event loop and the database thread alike. Prints one
JSON object per run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def _full_collection_ms() -> float:
    times = []
    for _ in range(5):
        started = time.perf_counter()
        gc.collect(2)
        times.append((time.perf_counter() - started) * 1e3)
    return statistics.median(times)


class _Pauses:
    """The full collections the collector runs by itself, and how long each held the GIL."""

    def __init__(self) -> None:
        self.ms: list[float] = []
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.ms.append((time.perf_counter() - self._started) * 1e3)


async def _run(chips: int, ticks: int, due_per_tick: int, data_dir: Path,
               freeze: bool) -> dict[str, Any]:
    from benchmarks.fleet_interleaved import fill
    from tests.verifier.fleet import Fleet
    from verifier.app import create_app
    from verifier.cli import freeze_start_up
    from verifier.config import default_config
    from verifier.service import Service
    from verifier.store import Store

    fleet = Fleet.create()
    app = create_app(default_config(data_dir=data_dir, ca_public_key_b64=fleet.ca_b64,
                                    tick_s=3600.0, min_key_protection="software"))
    frozen = freeze_start_up() if freeze else 0
    service: Service = app.state.service
    pauses = _Pauses()
    gc.callbacks.append(pauses)
    await service.start()
    try:
        await service.db.run(fill, chips, 8, fleet)
        for turn in range(ticks):
            now = time.time_ns()
            due = {f"chip-{(turn * due_per_tick + j) % chips:07d}": now
                   for j in range(due_per_tick)}
            await service.db.run(Store.set_chips_next_round, due)
            await service.tick(now)
        gc.callbacks.remove(pauses)
        tracked, explicit_ms = len(gc.get_objects()), _full_collection_ms()
    finally:
        await service.stop()
    return {"chips": chips, "ticks": ticks, "freeze": freeze, "objects_frozen": frozen,
            "tracked_objects": tracked, "full_collections": len(pauses.ms),
            "full_collection_pause_ms_max": round(max(pauses.ms, default=0.0), 2),
            "full_collection_pause_ms_total": round(sum(pauses.ms), 2),
            "full_collection_ms": round(explicit_ms, 2)}


def _one_run(chips: int, ticks: int, due_per_tick: int, freeze: bool) -> dict[str, Any]:
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="lightfence-gc-") as tmp:
        return asyncio.run(_run(chips, ticks, due_per_tick, Path(tmp), freeze))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chips", type=int, nargs="+", default=[2_000, 100_000])
    parser.add_argument("--ticks", type=int, default=8)
    parser.add_argument("--due-per-tick", type=int, default=250)
    args = parser.parse_args(argv)
    # A fresh process per run: what a previous run left must not be frozen or counted.
    context = multiprocessing.get_context("spawn")
    for chips in args.chips:
        for freeze in (False, True):
            with context.Pool(1) as pool:
                result = pool.apply(_one_run, (chips, args.ticks, args.due_per_tick, freeze))
            print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
