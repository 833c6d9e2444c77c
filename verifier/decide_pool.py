"""Where a tick's verdicts are decided: in worker processes, or on one thread of this process.

Deciding is pure CPU (the geometry of `verdicts.decide_all`, ~10-15 ms a round). On a thread it
holds the GIL the event loop and the database thread need, so every landmark's task poll waits
for its share during a decide tick. `decide_processes = n > 0` decides in n worker processes
(started with the service, so the first decide tick does not wait for their imports); `0`
keeps the thread.

A worker returns each round's outcome without the round's inputs (the caller already holds
them; sending them back would double the pickling on this side). `decide_all` keeps its
guarantee there: a round whose geometry fails becomes that round's `inconclusive`. A failure
of the worker itself (it died, or a round's inputs would not pickle) costs no verdict either:
that slice is decided again on the thread, and the next tick starts a fresh pool.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from geo.assessment import Assessment, Verdict
from geo.decision import ReasonCode
from verifier import verdicts
from verifier.verdicts import Decision, RoundInputs

logger = logging.getLogger(__name__)
Outcome = tuple[Verdict, Assessment | None, str, ReasonCode | None]


def outcomes(items: Sequence[RoundInputs]) -> list[Outcome]:
    """Worker process: `verdicts.decide_all` without echoing the inputs back."""
    return [(d.verdict, d.assessment, d.reason, d.reason_code)
            for d in verdicts.decide_all(items)]


class DecidePool:
    """Decides a tick's rounds off the event loop; `close()` ends its workers."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        # The thread: the whole job when processes == 0, else the fallback of a failed worker.
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="geo")
        self._pool: ProcessPoolExecutor | None = None

    def _workers(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: this process runs threads (database, lease, geo) whose locks a
            # forked child would inherit held.
            self._pool = ProcessPoolExecutor(self.processes,
                                             mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    def start(self) -> None:
        """Start the workers now (each imports the geometry, ~1 s), without waiting for them."""
        if self.processes > 0:
            pool = self._workers()
            for _ in range(self.processes):  # one job each, submitted before any is idle
                pool.submit(outcomes, [])

    async def decide_all(self, items: Sequence[RoundInputs]) -> list[Decision]:
        """Each round's decision, in order (as `verdicts.decide_all` returns them)."""
        if not items:
            return []
        loop = asyncio.get_running_loop()
        if self.processes == 0:
            return await loop.run_in_executor(self._thread, verdicts.decide_all, items)
        size = -(-len(items) // self.processes)  # one contiguous slice per worker
        slices = [list(items[start:start + size]) for start in range(0, len(items), size)]
        decided = await asyncio.gather(*(self._decide_slice(loop, part) for part in slices))
        return [Decision(inputs, *outcome)
                for part, results in zip(slices, decided, strict=True)
                for inputs, outcome in zip(part, results, strict=True)]

    async def _decide_slice(self, loop: asyncio.AbstractEventLoop,
                            items: list[RoundInputs]) -> list[Outcome]:
        pool = self._workers()
        try:
            return await loop.run_in_executor(pool, outcomes, items)
        except Exception as exc:
            logger.error("deciding %d round(s) in a worker process failed (%s: %s); deciding"
                         " them on a thread instead", len(items), type(exc).__name__, exc)
            if isinstance(exc, BrokenProcessPool) and self._pool is pool:
                self._pool = None  # a dead worker broke the pool: the next tick starts afresh
                pool.shutdown(wait=False, cancel_futures=True)
            return await loop.run_in_executor(self._thread, outcomes, items)

    def close(self) -> None:
        """End the workers (waiting for a slice in flight) and the thread."""
        executors: list[Executor] = [self._thread]
        if self._pool is not None:
            executors.append(self._pool)
            self._pool = None
        for executor in executors:
            executor.shutdown(wait=True, cancel_futures=True)
