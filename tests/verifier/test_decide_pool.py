"""Verdicts decided in worker processes (verifier/decide_pool.py): the same decisions as on the
thread, no verdict lost when a worker dies or a round cannot be sent to it, and no worker
process outlives the pool or the verifier."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest

from tests.verifier.conftest import open_harness
from tests.verifier.test_decide_all import GERMANY, TOKYO, _inputs
from tests.verifier.test_flow import KASSEL, run_round, setup_germany
from verifier import verdicts
from verifier.config import default_config, load_config
from verifier.decide_pool import DecidePool
from verifier.errors import ConfigError
from verifier.verdicts import Decision, RoundInputs


def _items() -> list[RoundInputs]:
    return [
        _inputs("de-ok", GERMANY, {"allowed": ["DEU"]}),
        _inputs("de-in-jp", TOKYO, {"allowed": ["DEU"]}),
        _inputs("dark", (), {"allowed": ["DEU"]}, dark=True),
        _inputs("robust", GERMANY, {"allowed": ["DEU"]}, tolerate=1),
        _inputs("bad-licence", GERMANY, {"allowed": 5}),  # fails inside the worker
        _inputs("jp-ok", TOKYO, {"allowed": ["JPN"]}),
    ]


def _summary(decisions: list[Decision]) -> list[tuple[Any, ...]]:
    return [(d.inputs.chip.chip_id, d.verdict, d.reason, d.reason_code,
             None if d.assessment is None else d.assessment.excluded_landmarks)
            for d in decisions]


class _KillsTheWorker:
    """Unpickling this in a worker ends that process at once, as a crash would."""

    def __reduce__(self) -> tuple[Any, tuple[int]]:
        return os._exit, (3,)


def _with_licence(inputs: RoundInputs, licence: Any) -> RoundInputs:
    return dataclasses.replace(inputs, chip=dataclasses.replace(inputs.chip, licence=licence))


@pytest.mark.asyncio
async def test_worker_processes_decide_as_the_thread_does() -> None:
    items = _items()
    pool = DecidePool(2)
    try:
        decided = await pool.decide_all(items)
    finally:
        pool.close()
    assert _summary(decided) == _summary(verdicts.decide_all(items))
    assert all(d.inputs is item for d, item in zip(decided, items, strict=True))
    assert [d.verdict for d in decided] == ["verified", "violation", "dark", "verified",
                                           "inconclusive", "verified"]


@pytest.mark.asyncio
async def test_a_worker_that_dies_costs_no_verdict_and_the_next_tick_gets_a_fresh_pool(
        caplog: pytest.LogCaptureFixture) -> None:
    items = _items()
    deadly = _with_licence(items[1], {"allowed": ["DEU"], "crash": _KillsTheWorker()})
    pool = DecidePool(1)
    try:
        decided = await pool.decide_all([items[0], deadly, items[5]])
        # Decided again on the thread: the round that killed its worker gets its own verdict.
        assert [d.verdict for d in decided] == ["verified", "inconclusive", "verified"]
        assert "unknown keys: crash" in decided[1].reason
        assert "BrokenProcessPool" in caplog.text
        again = await pool.decide_all(items)  # a new pool, in new worker processes
        assert _summary(again) == _summary(verdicts.decide_all(items))
    finally:
        pool.close()


@pytest.mark.asyncio
async def test_rounds_that_cannot_be_sent_to_a_worker_are_decided_on_the_thread() -> None:
    items = _items()
    unpicklable = _with_licence(items[0], {"allowed": ["DEU"], "hook": lambda: None})
    pool = DecidePool(1)
    try:
        decided = await pool.decide_all([unpicklable, items[5]])
    finally:
        pool.close()
    assert [d.verdict for d in decided] == ["inconclusive", "verified"]
    assert "unknown keys: hook" in decided[0].reason


@pytest.mark.asyncio
async def test_closing_the_pool_ends_its_workers() -> None:
    before = set(multiprocessing.active_children())
    pool = DecidePool(1)
    pool.start()
    await pool.decide_all(_items())
    assert len(set(multiprocessing.active_children()) - before) >= 1
    pool.close()
    assert set(multiprocessing.active_children()) - before == set()
    assert await DecidePool(0).decide_all([]) == []


@pytest.mark.asyncio
async def test_a_verifier_deciding_in_a_worker_verifies_and_stops_its_workers(
        tmp_path: Path) -> None:
    before = set(multiprocessing.active_children())
    async with open_harness(tmp_path, decide_processes=1) as h:
        await setup_germany(h)
        accepted = await run_round(h, "chip-1", KASSEL)
        assert sum(accepted.values()) >= 3
        chip = (await h.client.get("/v1/chips/chip-1", headers=h.dashboard)).json()
        assert chip["state"] == "verified", chip["last_verdict"]
        assert set(multiprocessing.active_children()) - before  # it decided in a worker
    assert set(multiprocessing.active_children()) - before == set()


def test_a_negative_or_fractional_process_count_is_refused(tmp_path: Path) -> None:
    for bad in (-1, 1.5, True):
        with pytest.raises(ConfigError, match="decide_processes must be 0"):
            default_config(decide_processes=bad)
    config = tmp_path / "v.toml"
    config.write_text("[verifier]\ndecide_processes = -2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="decide_processes must be 0"):
        load_config(config)
    config.write_text("[verifier]\ndecide_processes = 2\n", encoding="utf-8")
    assert load_config(config).decide_processes == 2
