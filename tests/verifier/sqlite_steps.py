"""Counting SQLite virtual-machine instructions: a cost that is the same for the same data on
any machine, unlike time, for the scaling tests (what a periodic pass reads must not grow with
the fleet)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from verifier.store import SqliteStore

STEPS_PER_CALL = 10  # the progress handler's granularity: counts are in tens of instructions


@dataclass(slots=True)
class StepCount:
    calls: int = 0  # progress-handler calls, each STEPS_PER_CALL instructions

    def count(self) -> int:
        self.calls += 1
        return 0  # carry on


@contextmanager
def counting_steps(store: SqliteStore) -> Iterator[StepCount]:
    """`with counting_steps(store) as steps: ...` then `steps.calls`."""
    steps = StepCount()
    store._raw.set_progress_handler(steps.count, STEPS_PER_CALL)
    try:
        yield steps
    finally:
        store._raw.set_progress_handler(None, STEPS_PER_CALL)
