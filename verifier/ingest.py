"""Measurement ingestion: parse, check signatures off the event loop, check tasks, nonces and
freshness on the database thread, then store the batch in one transaction.

Cost model (see docs/verifier.md): `verify_record` does three Ed25519 verifications (landmark
record signature, landmark challenge signature, target response signature), plus one per batch.
PyNaCl calls libsodium through cffi, which releases the GIL, so a small thread pool runs them in
parallel on real cores without pickling batches to worker processes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from protocol.errors import ProtocolError, SignatureError, WireError
from protocol.records import MeasurementBatch, MeasurementRecord, verify_batch, verify_record
from verifier.alerts import Alerts
from verifier.config import VerifierConfig
from verifier.db import Db
from verifier.errors import ForbiddenError, InvalidInputError
from verifier.metrics import Metrics
from verifier.model import StoredMeasurement, Token
from verifier.registry import KeyCache
from verifier.store import Store

logger = logging.getLogger(__name__)

_VERIFY_CHUNK = 32  # records per verification job: big enough to amortise the hand-off


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


class BadBatchError(InvalidInputError):
    """The upload is not a well-formed MeasurementBatch (400, nothing stored)."""

    status_code = 400


def parse_batch(body: bytes) -> MeasurementBatch:
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadBatchError(f"body is not JSON: {exc}") from exc
    try:
        return MeasurementBatch.from_json(obj)
    except ProtocolError as exc:
        raise BadBatchError(f"malformed measurement batch: {exc}") from exc


def _verify_records(records: Sequence[tuple[int, MeasurementRecord]], landmark_key: bytes,
                    keys: KeyCache) -> list[tuple[int, str | None]]:
    """Runs in a worker thread. Returns (index, reason or None when valid)."""
    out: list[tuple[int, str | None]] = []
    for index, record in records:
        target_key = keys.target_key(record.target_kind, record.target_id)
        if target_key is None:
            out.append((index, "unknown_target"))
            continue
        try:
            verify_record(record, landmark_key, target_key)
        except SignatureError:
            out.append((index, "signature"))
        except WireError:
            out.append((index, "wire"))
        else:
            out.append((index, None))
    return out


class Ingestor:
    def __init__(self, *, db: Db, config: VerifierConfig, keys: KeyCache, metrics: Metrics,
                 alerts: Alerts) -> None:
        self._db = db
        self._config = config
        self._keys = keys
        self._metrics = metrics
        self._alerts = alerts
        self._pool = ThreadPoolExecutor(config.verify_threads, thread_name_prefix="verify")

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    async def ingest(self, body: bytes, token: Token) -> IngestResult:
        started = time.perf_counter()
        batch = parse_batch(body)
        if token.role == "landmark" and token.landmark_id != batch.landmark_id:
            raise ForbiddenError(f"this token may only upload for landmark {token.landmark_id}")
        previous = await self._db.run(Store.batch_result, batch.batch_id)
        if previous is not None:
            return self._duplicate(previous)
        landmark_key = self._keys.landmarks.get(batch.landmark_id)
        if landmark_key is None:
            raise InvalidInputError(f"unknown landmark {batch.landmark_id}")
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._pool, verify_batch, batch, landmark_key)
        except ProtocolError as exc:
            self._metrics.count_batch("bad_signature", 0, [])
            await self._db.run(self._batch_signature_alert, batch, str(exc))
            raise InvalidInputError(f"batch signature rejected: {exc}") from exc
        indexed = list(enumerate(batch.records))
        jobs = [loop.run_in_executor(self._pool, _verify_records,
                                     indexed[i:i + _VERIFY_CHUNK], landmark_key, self._keys)
                for i in range(0, len(indexed), _VERIFY_CHUNK)]
        checks = [item for chunk in await asyncio.gather(*jobs) for item in chunk]
        result = await self._db.run(self._commit, batch, checks, time.time_ns())
        if result.duplicate:
            return result
        self._metrics.count_batch("stored", result.accepted, [r for _, r in result.rejected])
        self._metrics.ingest_seconds.observe(time.perf_counter() - started)
        return result

    def _duplicate(self, stored_json: str) -> IngestResult:
        stored = json.loads(stored_json)
        self._metrics.count_batch("duplicate", 0, [])
        return IngestResult(stored["batch_id"], stored["accepted"],
                            tuple((r["index"], r["reason"]) for r in stored["rejected"]), True)

    def _batch_signature_alert(self, store: Store, batch: MeasurementBatch, error: str) -> None:
        self._alerts.raise_alert(
            store, "signature_failure", subject_kind="landmark", subject_id=batch.landmark_id,
            message=f"batch {batch.batch_id} failed the landmark signature check",
            details={"batch_id": batch.batch_id, "error": error}, now_unix_ns=time.time_ns())

    def _commit(self, store: Store, batch: MeasurementBatch,
                checks: list[tuple[int, str | None]], now_unix_ns: int) -> IngestResult:
        """Database thread: task, freshness and replay checks, then one write transaction."""
        previous = store.batch_result(batch.batch_id)
        if previous is not None:  # a concurrent retry of the same batch won the race
            return self._duplicate(previous)
        max_age_ns = int(self._config.max_record_age_s * 1e9)
        skew_ns = int(self._config.max_clock_skew_s * 1e9)
        valid = [(i, batch.records[i]) for i, reason in checks if reason is None]
        used = store.used_nonces([record.nonce for _, record in valid])
        rejected: list[tuple[int, str]] = [(i, r) for i, r in checks if r is not None]
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
            task = store.find_task(batch.landmark_id, record.target_kind, record.target_id,
                                   record.sent_unix_ns, skew_ns)
            if task is None:
                rejected.append((index, "no_task"))
                continue
            seen.add(record.nonce)
            stored.append(StoredMeasurement(
                batch_id=batch.batch_id, landmark_id=batch.landmark_id,
                target_kind=record.target_kind, target_id=record.target_id, nonce=record.nonce,
                sent_unix_ns=record.sent_unix_ns, rtt_ns=record.rtt_ns,
                clock_source=record.clock_source, round_id=task.round_id, task_id=task.task_id,
                record_json=json.dumps(record.to_json(), separators=(",", ":"))))
        rejected.sort()
        result = IngestResult(batch.batch_id, len(stored), tuple(rejected), False)
        store.ingest(batch.batch_id, batch.landmark_id, stored,
                     json.dumps(result.to_json()), now_unix_ns)
        self._attack_alerts(store, batch, rejected, now_unix_ns)
        return result

    def _attack_alerts(self, store: Store, batch: MeasurementBatch,
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
