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


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    measurements_s: float
    verdicts_s: float
    log_s: float

    @classmethod
    def from_config(cls, config: VerifierConfig) -> RetentionPolicy:
        return cls(config.retention_measurements_s, config.retention_verdicts_s,
                   config.retention_log_s)


def prune(store: Store, policy: RetentionPolicy, now_unix_ns: int) -> dict[str, int]:
    """One pruning pass; returns rows deleted per table."""
    deleted = store.prune(now_unix_ns - int(policy.measurements_s * _NS),
                          now_unix_ns - int(policy.log_s * _NS))
    deleted["verdicts"] = store.prune_verdicts(now_unix_ns - int(policy.verdicts_s * _NS))
    return deleted


class Pruner:
    def __init__(self, *, db: Db, config: VerifierConfig) -> None:
        self._db = db
        self._policy = RetentionPolicy.from_config(config)
        self._interval_s = config.retention_interval_s

    async def run(self) -> None:
        while True:
            try:
                deleted = await self._db.run(prune, self._policy, time.time_ns())
                if any(deleted.values()):
                    logger.info("retention pruned %s", deleted)
            except Exception:
                logger.exception("retention pass failed")
            await asyncio.sleep(self._interval_s)
