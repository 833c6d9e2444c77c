"""Measurement ingestion: authorise, check signatures in worker processes, check tasks, nonces
and freshness on the database thread, then store the batch (group-committed with concurrent
ones).

What is verified at upload (docs/verifier.md, "Signature cost"): the landmark's batch signature
once, then per record `protocol.records.verify_record_answer` (the challenge↔record bindings,
the nonce opening the challenge's commitment, and the target's response signature): one Ed25519
verification per record instead of three. This is sound because the batch signature
covers every record's digest, SHA-256 over the record's full signed bytes (the exact CHALLENGE and
RESPONSE datagrams included) and its signature: a batch that verifies proves the landmark vouched
for exactly these record bytes, so its per-record and per-challenge signatures add no
authenticity. They stay in the stored record; `verifier.verdicts.collect` re-checks the few
records a verdict uses with the full `verify_record`, and the offline audit checks them all.

The checks (`verifier.checks.check_upload`) run in `verify_processes` worker processes, or in
`verify_threads` threads when that is 0 (docs/verifier.md, "Where the checks run").
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import orjson

from verifier.alerts import Alerts
from verifier.checks import CheckedBatch, CheckedRecord, check_upload, peek_upload
from verifier.config import VerifierConfig
from verifier.db import Db
from verifier.errors import ForbiddenError, InvalidInputError
from verifier.metrics import Metrics
from verifier.model import StoredMeasurement, TaskRow, Token
from verifier.registry import KeyCache
from verifier.store import Store

logger = logging.getLogger(__name__)

_MAX_GROUP = 64  # batches per group commit: bounds how long one transaction holds the writer


@dataclass(frozen=True, slots=True)
class IngestResult:
    batch_id: str
    accepted: int
    rejected: tuple[tuple[int, str], ...]  # (record index, reason)
    duplicate: bool

    def to_json(self) -> dict[str, object]:
        return {"batch_id": self.batch_id, "accepted": self.accepted,
                "rejected": [{"index": i, "reason": r} for i, r in self.rejected],
                "duplicate": self.duplicate}


def _pick_task(tasks: dict[tuple[str, str], list[TaskRow]], record: CheckedRecord,
               slack_ns: int) -> TaskRow | None:
    """The latest-issued task for this record's target that covers its send time (the same
    rule as `Store.find_task`, over the batch's tasks fetched in one query)."""
    best: TaskRow | None = None
    for task in tasks.get((record.target_kind, record.target_id), ()):
        if (task.issued_unix_ns <= record.sent_unix_ns + slack_ns
                and task.expires_unix_ns >= record.sent_unix_ns - slack_ns
                and (best is None or task.issued_unix_ns > best.issued_unix_ns)):
            best = task
    return best


@dataclass(slots=True)
class _Pending:
    batch: CheckedBatch
    future: asyncio.Future[IngestResult]


def _exit_with_parent() -> None:
    """Worker initializer: exit when the verifier process dies. A pool worker blocks on its
    task queue, whose write end it holds itself, so a `kill -9` of the verifier would otherwise
    leave its workers waiting forever."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    sentinel = parent.sentinel

    def watch() -> None:
        multiprocessing.connection.wait([sentinel])
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _worker_ready() -> bool:
    """Submitted once per worker at start, so the first upload does not wait for a spawn."""
    return True


class Ingestor:
    def __init__(self, *, db: Db, config: VerifierConfig, keys: KeyCache, metrics: Metrics,
                 alerts: Alerts) -> None:
        self._db = db
        self._config = config
        self._keys = keys
        self._metrics = metrics
        self._alerts = alerts
        self._pool = self._new_pool()
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None

    def _new_pool(self) -> Executor:
        if self._config.verify_processes == 0:
            return ThreadPoolExecutor(self._config.verify_threads, thread_name_prefix="verify")
        # spawn, not fork: the verifier has threads (database, uvicorn) that fork would copy
        # mid-flight; a spawned worker imports only verifier.checks and its protocol modules.
        return ProcessPoolExecutor(self._config.verify_processes,
                                   mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_exit_with_parent)

    async def start(self) -> None:
        """Start the workers now rather than on the first upload."""
        loop = asyncio.get_running_loop()
        workers = max(self._config.verify_processes, 1)
        await asyncio.gather(*(loop.run_in_executor(self._pool, _worker_ready)
                               for _ in range(workers)))

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    async def _check(self, body: bytes, landmark_key: bytes,
                     target_keys: dict[tuple[str, str], bytes]) -> CheckedBatch:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, check_upload, body, landmark_key,
                                              target_keys)
        except BrokenProcessPool:
            # A worker died (killed, out of memory): the pool refuses all work from then on.
            # Replace it once and retry; the checks are pure, so a retry is harmless.
            logger.error("verification worker died; restarting the worker pool")
            self._pool.shutdown(wait=False)
            self._pool = self._new_pool()
            return await loop.run_in_executor(self._pool, check_upload, body, landmark_key,
                                              target_keys)

    async def ingest(self, body: bytes, token: Token) -> IngestResult:
        started = time.perf_counter()
        header = peek_upload(body)
        if token.role == "landmark" and token.landmark_id != header.landmark_id:
            raise ForbiddenError(f"this token may only upload for landmark {token.landmark_id}")
        previous = await self._db.run(Store.batch_result, header.batch_id)
        if previous is not None:
            return self._duplicate(previous)
        landmark_key = self._keys.landmarks.get(header.landmark_id)
        if landmark_key is None:
            raise InvalidInputError(f"unknown landmark {header.landmark_id}")
        target_keys = {target: key for target in header.targets
                       if (key := self._keys.target_key(*target)) is not None}
        checked = await self._check(body, landmark_key, target_keys)
        if checked.signature_error is not None:
            self._metrics.count_batch("bad_signature", 0, [])
            await self._db.run(self._batch_signature_alert, checked, checked.signature_error)
            raise InvalidInputError(f"batch signature rejected: {checked.signature_error}")
        result = await self._group_commit(checked)
        if result.duplicate:
            return result
        self._metrics.count_batch("stored", result.accepted, [r for _, r in result.rejected])
        self._metrics.ingest_seconds.observe(time.perf_counter() - started)
        return result

    async def _group_commit(self, batch: CheckedBatch) -> IngestResult:
        """Queue the batch for the next group commit: batches that arrive while one transaction
        is being written share the next one (one BEGIN/COMMIT and one database-thread hop for
        all of them). Each batch still gets its own savepoint and its own answer."""
        future: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(batch, future))
        if self._flusher is None or self._flusher.done():
            # A task of its own, so an uploader that disconnects cannot strand the queue.
            self._flusher = asyncio.create_task(self._flush(), name="verifier-group-commit")
        return await future

    async def _flush(self) -> None:
        while self._pending:
            group = self._pending[:_MAX_GROUP]
            del self._pending[:_MAX_GROUP]
            try:
                await self._db.run(self._commit_group, group, time.time_ns())
            except Exception as exc:  # the whole transaction failed (e.g. disk full)
                logger.exception("group commit of %d batches failed", len(group))
                for item in group:
                    _settle(item.future, exc)

    def _commit_group(self, store: Store, group: Sequence[_Pending], now_unix_ns: int) -> None:
        """Database thread: one transaction, one savepoint per batch. Futures are resolved only
        after COMMIT, so no landmark is acknowledged before its batch is durable."""
        outcomes: list[tuple[_Pending, IngestResult | Exception]] = []
        with self._alerts.held(), store.transaction():
            for item in group:
                try:
                    with self._alerts.held(), store.transaction():
                        outcomes.append((item, self._commit(store, item.batch, now_unix_ns)))
                except Exception as exc:
                    logger.exception("batch %s from landmark %s not stored",
                                     item.batch.batch_id, item.batch.landmark_id)
                    outcomes.append((item, exc))
        loop = group[0].future.get_loop()
        for item, outcome in outcomes:
            loop.call_soon_threadsafe(_settle, item.future, outcome)

    def _duplicate(self, stored_json: str) -> IngestResult:
        stored = orjson.loads(stored_json)
        self._metrics.count_batch("duplicate", 0, [])
        return IngestResult(stored["batch_id"], stored["accepted"],
                            tuple((r["index"], r["reason"]) for r in stored["rejected"]), True)

    def _batch_signature_alert(self, store: Store, batch: CheckedBatch, error: str) -> None:
        self._alerts.raise_alert(
            store, "signature_failure", subject_kind="landmark", subject_id=batch.landmark_id,
            message=f"batch {batch.batch_id} failed the landmark signature check",
            details={"batch_id": batch.batch_id, "error": error}, now_unix_ns=time.time_ns())

    def _commit(self, store: Store, batch: CheckedBatch, now_unix_ns: int) -> IngestResult:
        """Database thread: task, freshness and replay checks, then the batch's writes."""
        previous = store.batch_result(batch.batch_id)
        if previous is not None:  # a concurrent retry of the same batch won the race
            return self._duplicate(previous)
        max_age_ns = int(self._config.max_record_age_s * 1e9)
        skew_ns = int(self._config.max_clock_skew_s * 1e9)
        valid = [(i, record) for i, record in enumerate(batch.records) if record.reason is None]
        used = store.used_nonces([record.nonce for _, record in valid])
        rejected: list[tuple[int, str]] = [(i, record.reason)
                                           for i, record in enumerate(batch.records)
                                           if record.reason is not None]
        tasks: dict[tuple[str, str], list[TaskRow]] = {}
        if valid:
            sent = [record.sent_unix_ns for _, record in valid]
            for row in store.tasks_overlapping(batch.landmark_id,
                                                [record.target_id for _, record in valid],
                                                min(sent) - skew_ns, max(sent) + skew_ns):
                tasks.setdefault((row.target_kind, row.target_id), []).append(row)
        seen: set[bytes] = set()
        stored: list[StoredMeasurement] = []
        for index, record in valid:
            if record.nonce in used or record.nonce in seen:
                rejected.append((index, "replay"))
                continue
            if record.sent_unix_ns < now_unix_ns - max_age_ns:
                rejected.append((index, "stale"))
                continue
            if record.sent_unix_ns > now_unix_ns + skew_ns:
                rejected.append((index, "future"))
                continue
            task = _pick_task(tasks, record, skew_ns)
            if task is None:
                rejected.append((index, "no_task"))
                continue
            seen.add(record.nonce)
            stored.append(StoredMeasurement(
                batch_id=batch.batch_id, landmark_id=batch.landmark_id,
                target_kind=record.target_kind, target_id=record.target_id, nonce=record.nonce,
                sent_unix_ns=record.sent_unix_ns, rtt_ns=record.rtt_ns,
                clock_source=record.clock_source, round_id=task.round_id, task_id=task.task_id,
                record_json=record.record_json))
        rejected.sort()
        result = IngestResult(batch.batch_id, len(stored), tuple(rejected), False)
        store.ingest(batch.batch_id, batch.landmark_id, stored,
                     orjson.dumps(result.to_json()).decode(), now_unix_ns)
        self._attack_alerts(store, batch, rejected, now_unix_ns)
        return result

    def _attack_alerts(self, store: Store, batch: CheckedBatch,
                       rejected: list[tuple[int, str]], now_unix_ns: int) -> None:
        for index, reason in rejected:
            record = batch.records[index]
            if reason not in ("signature", "replay"):
                continue
            type_ = "signature_failure" if reason == "signature" else "replay_detected"
            what = ("failed a signature check" if reason == "signature"
                    else "reused a nonce already accepted")
            self._alerts.raise_alert(
                store, type_, subject_kind=record.target_kind, subject_id=record.target_id,
                message=f"measurement from landmark {batch.landmark_id} {what}",
                details={"batch_id": batch.batch_id, "index": index,
                         "landmark_id": batch.landmark_id, "nonce_hex": record.nonce.hex()},
                now_unix_ns=now_unix_ns)


def _settle(future: asyncio.Future[IngestResult], outcome: IngestResult | Exception) -> None:
    if future.done():  # the uploader went away (cancelled request)
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
