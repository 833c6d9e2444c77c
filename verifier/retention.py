"""Retention: prune what only operations need, on a schedule, so the database stops growing.

Raw measurements (and their batches, tasks, closed rounds) go after `retention_measurements_s`;
verdict rows after `retention_verdicts_s` (each chip keeps its latest); finished notifications
and delivery-log rows after `retention_log_s`. What a verdict used stays reachable: its evidence
record (chip and landmark certificates, every signed measurement record, the licence, the
parameters, the result) is in the evidence log, which is append-only and never pruned.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from verifier.config import VerifierConfig
from verifier.db import Db
from verifier.store import Store

logger = logging.getLogger(__name__)
_NS = 1_000_000_000
# Rows deleted per table per pass; the pruner yields the database thread between passes.
PRUNE_BATCH_ROWS = 5_000


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    measurements_s: float
    verdicts_s: float
    log_s: float

    @classmethod
    def from_config(cls, config: VerifierConfig) -> RetentionPolicy:
        return cls(config.retention_measurements_s, config.retention_verdicts_s,
                   config.retention_log_s)


def prune(store: Store, policy: RetentionPolicy, now_unix_ns: int,
          limit: int = PRUNE_BATCH_ROWS) -> dict[str, int]:
    """One bounded pruning pass (at most `limit` rows per table); rows deleted per table."""
    deleted = store.prune(now_unix_ns - int(policy.measurements_s * _NS),
                          now_unix_ns - int(policy.log_s * _NS), limit)
    deleted["verdicts"] = store.prune_verdicts(now_unix_ns - int(policy.verdicts_s * _NS),
                                               limit)
    return deleted


class Pruner:
    def __init__(self, *, db: Db, config: VerifierConfig) -> None:
        self._db = db
        self._policy = RetentionPolicy.from_config(config)
        self._interval_s = config.retention_interval_s

    async def run(self) -> None:
        while True:
            try:
                await self.prune_all(time.time_ns())
            except Exception:
                logger.exception("retention pass failed")
            await asyncio.sleep(self._interval_s)

    async def prune_all(self, now_unix_ns: int) -> dict[str, int]:
        """Bounded passes until no table hits the batch limit; totals per table."""
        total: dict[str, int] = {}
        while True:
            deleted = await self._db.run(prune, self._policy, now_unix_ns)
            for table, count in deleted.items():
                total[table] = total.get(table, 0) + count
            if max(deleted.values()) < PRUNE_BATCH_ROWS:
                break
        if any(total.values()):
            logger.info("retention pruned %s", total)
        return total
