"""A leader tick's database work follows what is due, not the size of the fleet.

Counted in SQLite virtual-machine instructions (deterministic for the same data, unlike time):
a whole `Service.tick` planning the same 40 due chips and expiring the same 3 `verified`
states costs about as much in a fleet of 4,000 chips as in one of 400. A statement that walks
every chip (as the `verified` expiry query did to skip a sort, until f368aa3) runs 2.4 times
more instructions in the larger fleet.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from benchmarks.fleet_interleaved import fill
from tests.verifier.conftest import make_config
from tests.verifier.fleet import Fleet
from verifier.service import Service
from verifier.store import Store
from verifier.store.sqlite import SqliteStore

_DUE = 40
_EXPIRED = ("chip-0000002", "chip-0000004", "chip-0000006")  # `verified`, their TTL run out
_STEPS_PER_CALL = 100  # the progress handler's granularity


async def _tick_steps(data_dir: Path, chips: int) -> tuple[int, int]:
    """(SQLite VM instructions of one leader tick, hundreds; tasks it planned) in a fleet of
    `chips` with `_DUE` chips due and the chips of `_EXPIRED` past their `verified` TTL."""
    fleet = Fleet.create()
    service = Service(make_config(data_dir, fleet))
    calls = 0

    def count() -> int:
        nonlocal calls
        calls += 1
        return 0  # carry on

    def expire_some(store: Store, now_unix_ns: int) -> None:
        with store.transaction():
            for chip_id in _EXPIRED:
                store.set_verified_until(chip_id, now_unix_ns - 1)

    def counting(store: Store, on: bool) -> None:
        assert isinstance(store, SqliteStore)
        store._raw.set_progress_handler(count if on else None, _STEPS_PER_CALL)

    try:
        await service.db.run(fill, chips, 4, fleet)
        now = time.time_ns()
        await service.db.run(Store.set_chips_next_round,
                             {f"chip-{i:07d}": now for i in range(_DUE)})
        await service.db.run(expire_some, now)
        tasks_before = await service.db.run(Store.count_rows, "tasks")
        await service.db.run(counting, True)
        await service.tick(now)
        await service.db.run(counting, False)
        tasks = await service.db.run(Store.count_rows, "tasks") - tasks_before
        for chip_id in _EXPIRED:
            chip = await service.db.run(Store.chip, chip_id)
            assert chip is not None and chip.state == "inconclusive"
    finally:
        await service.stop()
    return calls, tasks


@pytest.mark.asyncio
async def test_a_tick_costs_the_same_in_a_ten_times_larger_fleet(tmp_path: Path) -> None:
    small, small_tasks = await _tick_steps(tmp_path / "small", 400)
    large, large_tasks = await _tick_steps(tmp_path / "large", 4_000)
    assert small_tasks == large_tasks == _DUE * 4  # the same work planned in both
    assert large <= small * 1.2, (
        f"a tick ran {large * _STEPS_PER_CALL} SQLite instructions at 4,000 chips against "
        f"{small * _STEPS_PER_CALL} at 400: some statement reads the whole fleet")
