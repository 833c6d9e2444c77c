"""Measurement ingestion: parse, check signatures off the event loop, check tasks, nonces and
freshness on the database thread, then store the batch (group-committed with concurrent ones).

What is verified at upload (docs/verifier.md, "Signature cost"): the landmark's batch signature
once, then per record `protocol.records.verify_record_answer` (the challenge↔record bindings,
the nonce opening the challenge's commitment, and the target's response signature): one Ed25519
verification per record instead of three. This is sound because the batch signature
covers every record's digest, SHA-256 over the record's full signed bytes (the exact CHALLENGE and
RESPONSE datagrams included) and its signature: a batch that verifies proves the landmark vouched
for exactly these record bytes, so its per-record and per-challenge signatures add no
authenticity. They stay in the stored record; `verifier.verdicts.collect` re-checks the few
records a verdict uses with the full `verify_record`, and the offline audit checks them all.

PyNaCl calls libsodium through cffi, which releases the GIL, so a small thread pool runs the
verifications in parallel on real cores without pickling batches to worker processes.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import orjson

from protocol.errors import ProtocolError, SignatureError, WireError
from protocol.records import (
    MeasurementBatch,
    MeasurementRecord,
    verify_batch,
    verify_record_answer,
)
from protocol.revocation import Revocation, RevocationIndex, key_names
from verifier.alerts import Alerts
from verifier.config import VerifierConfig
from verifier.db import Db
from verifier.errors import ConflictError, ForbiddenError, InvalidInputError
from verifier.ingest_tasks import WRONG_TASK, BatchTasks, named_task_ids
from verifier.metrics import Metrics
from verifier.model import AlertType, StoredMeasurement, Token
from verifier.registry import KeyCache
from verifier.revocations import refusal, untrusted_alert
from verifier.store import Store
from verifier.store.ingest import NewBatch, RevocationName

logger = logging.getLogger(__name__)

_MIN_VERIFY_CHUNK = 16  # records per verification job: big enough to amortise the hand-off
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


class BadBatchError(InvalidInputError):
    """The upload is not a well-formed MeasurementBatch (400, nothing stored)."""

    status_code = 400


@dataclass(frozen=True, slots=True)
class ParsedBatch:
    batch: MeasurementBatch
    record_json: tuple[str, ...]  # each record's fields as uploaded, re-serialised compactly


def parse_batch(body: bytes) -> ParsedBatch:
    """Parse (not verify) an upload. The stored record text is built from the uploaded fields
    (unknown ones dropped) rather than re-encoded from the parsed record: same content, since
    `MeasurementRecord.from_json` accepted exactly these values, at a tenth of the cost."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadBatchError(f"body is not JSON: {exc}") from exc
    try:
        batch = MeasurementBatch.from_json(obj)
    except ProtocolError as exc:
        raise BadBatchError(f"malformed measurement batch: {exc}") from exc
    texts = tuple(orjson.dumps(_record_fields(item, record.json_fields())).decode()
                  for item, record in zip(obj["records"], batch.records, strict=True))
    return ParsedBatch(batch, texts)


def _record_fields(item: dict[str, object], fields: tuple[str, ...]) -> dict[str, object]:
    """The record's fields in `to_json` order, unknown ones dropped: `item` itself when it
    holds exactly those in that order (as landmarks send them; half the cost of a copy)."""
    return item if tuple(item) == fields else {name: item[name] for name in fields}


def _verify_records(records: Sequence[tuple[int, MeasurementRecord]], keys: KeyCache,
                    batch: tuple[MeasurementBatch, bytes] | None = None,
                    ) -> tuple[list[tuple[int, str | None]], ProtocolError | None]:
    """Runs in a worker thread. Returns (index, reason or None when valid) of each record,
    and, given a batch and its landmark's key, why its signature fails (None: it holds)."""
    signature_error: ProtocolError | None = None
    if batch is not None:
        try:
            verify_batch(*batch)
        except ProtocolError as exc:
            signature_error = exc
    out: list[tuple[int, str | None]] = []
    for index, record in records:
        target_key = keys.target_key(record.target_kind, record.target_id)
        if target_key is None:
            out.append((index, "unknown_target"))
            continue
        try:
            verify_record_answer(record, target_key)
        except SignatureError:
            out.append((index, "signature"))
        except WireError:
            out.append((index, "wire"))
        else:
            out.append((index, None))
    return out, signature_error


# A batch's refused records: (index, reason) sorted, and the revoked keys' indices by
# (kind, id, reason), for the alerts raised once the batch is written.
_Refusals = tuple[list[tuple[int, str]], dict[tuple[str, str, str], list[int]]]


@dataclass(slots=True)
class _Pending:
    parsed: ParsedBatch
    checks: list[tuple[int, str | None]]
    future: asyncio.Future[IngestResult]


class Ingestor:
    def __init__(self, *, db: Db, config: VerifierConfig, keys: KeyCache, metrics: Metrics,
                 alerts: Alerts) -> None:
        self._db = db
        self._config = config
        self._keys = keys
        self._metrics = metrics
        self._alerts = alerts
        self._pool = ThreadPoolExecutor(config.verify_threads, thread_name_prefix="verify")
        self._pending: list[_Pending] = []
        self._verifying = 0  # uploads whose signatures the pool is checking now
        self._flusher: asyncio.Task[None] | None = None

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    async def ingest(self, body: bytes, token: Token) -> IngestResult:
        started = time.perf_counter()
        parsed = parse_batch(body)
        batch = parsed.batch
        if token.role == "landmark" and token.landmark_id != batch.landmark_id:
            raise ForbiddenError(f"this token may only upload for landmark {token.landmark_id}")
        landmark_key = self._keys.landmarks.get(batch.landmark_id)
        if landmark_key is None:
            raise InvalidInputError(f"unknown landmark {batch.landmark_id}")
        loop = asyncio.get_running_loop()
        # The batch signature and the records are checked in parallel; no record counts unless
        # the batch signature holds, so nothing is stored before both are done. A retry is
        # found by the group commit, which reads the batch ids anyway, and gets its first
        # answer, but only once the batch signature proves it comes from the landmark that
        # stored it: no one reads another landmark's result by id. Retries are rare, so its
        # records' needless checks cost less than a database trip for every upload.
        # The first job also checks the batch signature: one hand-off fewer per upload. A
        # batch is split across the threads only as far as other uploads leave them idle:
        # when they are all busy, more jobs are only more hand-offs.
        indexed = list(enumerate(batch.records))
        parts = max(1, self._config.verify_threads - self._verifying)
        chunk = max(_MIN_VERIFY_CHUNK, math.ceil(len(indexed) / parts))
        jobs = [loop.run_in_executor(self._pool, _verify_records, indexed[i:i + chunk],
                                     self._keys, (batch, landmark_key) if i == 0 else None)
                for i in range(0, max(1, len(indexed)), chunk)]
        self._verifying += 1
        try:
            chunks = await asyncio.gather(*jobs)
        finally:
            self._verifying -= 1
        signature_error = chunks[0][1]
        if signature_error is not None:
            await self._signature_rejected(batch, signature_error)
        checks = [item for part, _ in chunks for item in part]
        result = await self._group_commit(parsed, checks)
        if result.duplicate:
            self._metrics.count_batch("duplicate", 0, [])
            return result
        self._metrics.count_batch("stored", result.accepted, [r for _, r in result.rejected])
        self._metrics.ingest_seconds.observe(time.perf_counter() - started)
        return result

    async def _signature_rejected(self, batch: MeasurementBatch, exc: ProtocolError) -> None:
        self._metrics.count_batch("bad_signature", 0, [])
        await self._db.run(self._batch_signature_alert, batch, str(exc))
        raise InvalidInputError(f"batch signature rejected: {exc}") from exc

    async def _group_commit(self, parsed: ParsedBatch,
                            checks: list[tuple[int, str | None]]) -> IngestResult:
        """Queue the batch for the next group commit: batches that arrive while one transaction
        is being written share the next one (one BEGIN/COMMIT and one database-thread hop for
        all of them). Each batch still gets its own savepoint and its own answer."""
        future: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(parsed, checks, future))
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
        """Database thread: one transaction for the group, with one read and one write for
        all its batches. Should it fail (a nonce or batch id another replica stored meanwhile,
        a deadlock), it rolls back and the batches are stored one by one, each in its own
        savepoint, so one bad batch cannot cost the others theirs. Futures are resolved only
        after COMMIT, so no landmark is acknowledged before its batch is durable."""
        try:
            with self._alerts.held(), store.transaction():
                outcomes = self._commit_together(store, group, now_unix_ns)
        except Exception:
            logger.warning("group commit of %d batches failed; storing them one by one",
                           len(group), exc_info=True)
            outcomes = self._commit_each(store, group, now_unix_ns)
        loop = group[0].future.get_loop()
        for item, outcome in outcomes:
            loop.call_soon_threadsafe(_settle, item.future, outcome)

    def _commit_each(self, store: Store, group: Sequence[_Pending], now_unix_ns: int
                     ) -> list[tuple[_Pending, IngestResult | Exception]]:
        """One transaction, one savepoint per batch: a batch that fails rolls back alone."""
        outcomes: list[tuple[_Pending, IngestResult | Exception]] = []
        with self._alerts.held(), store.transaction():
            for item in group:
                try:
                    with self._alerts.held(), store.transaction():
                        outcomes += self._commit_together(store, [item], now_unix_ns)
                except Exception as exc:
                    logger.exception("batch %s from landmark %s not stored",
                                     item.parsed.batch.batch_id, item.parsed.batch.landmark_id)
                    outcomes.append((item, exc))
        return outcomes

    def _commit_together(self, store: Store, group: Sequence[_Pending], now_unix_ns: int
                         ) -> list[tuple[_Pending, IngestResult | Exception]]:
        """Database thread, inside the caller's transaction: the replay, task and revocation
        checks of every batch in `group` against one `ingest_view`, in upload order (a batch
        sees the nonces and batch ids of those before it), then one write for all."""
        valid = [[(i, item.parsed.batch.records[i]) for i, reason in item.checks
                  if reason is None] for item in group]
        view = store.ingest_view(
            [item.parsed.batch.batch_id for item in group],
            [record.nonce for records in valid for _, record in records],
            sorted(named_task_ids(record for records in valid for _, record in records)),
            self._revocation_names(group, valid))
        tasks_by_id = {task.task_id: task for task in view.tasks}
        revoked = _BatchRevocations(view.revocations)
        stored_batches = dict(view.batches)
        used = set(view.used_nonces)
        outcomes: list[tuple[_Pending, IngestResult | Exception]] = []
        written: list[tuple[MeasurementBatch, NewBatch, _Refusals]] = []
        for item, records in zip(group, valid, strict=True):
            batch = item.parsed.batch
            previous = stored_batches.get(batch.batch_id)
            if previous is not None:  # a retry, maybe concurrent with the first upload
                try:
                    outcomes.append((item, self._duplicate(batch, previous)))
                except ConflictError as exc:
                    outcomes.append((item, exc))
                continue
            tasks = BatchTasks.fetch(store, batch.landmark_id, [r for _, r in records],
                                     int(self._config.max_clock_skew_s * 1e9), tasks_by_id)
            result, new, refusals = self._decide(item, records, used=used, tasks=tasks,
                                                 revoked=revoked, now_unix_ns=now_unix_ns)
            stored_batches[batch.batch_id] = (batch.landmark_id, new.result_json)
            outcomes.append((item, result))
            written.append((batch, new, refusals))
        store.ingest_batches([new for _, new, _ in written], now_unix_ns)
        for batch, _, (rejected, untrusted) in written:
            self._refusal_alerts(store, batch, rejected, untrusted, now_unix_ns)
        return outcomes

    def _revocation_names(self, group: Sequence[_Pending],
                          valid: Sequence[Sequence[tuple[int, MeasurementRecord]]]
                          ) -> list[RevocationName]:
        """Every name a revocation could give the keys `_untrusted` will judge (each batch's
        landmark, each signature-checked record's target): the revocations to read."""
        subjects = {("landmark", item.parsed.batch.landmark_id) for item in group}
        subjects.update((record.target_kind, record.target_id)
                        for records in valid for _, record in records)
        names: list[RevocationName] = []
        for kind, subject_id in subjects:
            info = self._keys.infos.get((kind, subject_id))
            if info is None:
                continue  # `_untrusted` judges no key it does not know
            names += key_names(kind, subject_id, info.public_key, info.serial)
        return names

    def _duplicate(self, batch: MeasurementBatch, previous: tuple[str, str]) -> IngestResult:
        """The stored answer to a retry of `batch`; 409 when another landmark owns the id
        (random ids make that a misconfiguration, never a retry)."""
        owner, stored_json = previous
        if owner != batch.landmark_id:
            raise ConflictError(f"batch id {batch.batch_id} was used by another landmark; "
                                "upload under a new id")
        stored = orjson.loads(stored_json)
        return IngestResult(stored["batch_id"], stored["accepted"],
                            tuple((r["index"], r["reason"]) for r in stored["rejected"]), True)

    def _batch_signature_alert(self, store: Store, batch: MeasurementBatch, error: str) -> None:
        self._alerts.raise_alert(
            store, AlertType.SIGNATURE_FAILURE, subject_kind="landmark",
            subject_id=batch.landmark_id,
            message=f"batch {batch.batch_id} failed the landmark signature check",
            details={"batch_id": batch.batch_id, "error": error}, now_unix_ns=time.time_ns())

    def _decide(self, item: _Pending, valid: Sequence[tuple[int, MeasurementRecord]], *,
                used: set[bytes], tasks: BatchTasks, revoked: RevocationIndex,
                now_unix_ns: int) -> tuple[IngestResult, NewBatch, _Refusals]:
        """Freshness, replay, revocation and task checks of one batch's signature-checked
        records; adds the accepted nonces to `used`."""
        batch, parsed = item.parsed.batch, item.parsed
        max_age_ns = int(self._config.max_record_age_s * 1e9)
        skew_ns = int(self._config.max_clock_skew_s * 1e9)
        rejected: list[tuple[int, str]] = [(i, r) for i, r in item.checks if r is not None]
        stored: list[StoredMeasurement] = []
        untrusted: dict[tuple[str, str, str], list[int]] = {}  # (kind, id, reason) → indices
        for index, record in valid:
            if record.nonce in used:
                rejected.append((index, "replay"))
                continue
            if record.sent_unix_ns < now_unix_ns - max_age_ns:
                rejected.append((index, "stale"))
                continue
            if record.sent_unix_ns > now_unix_ns + skew_ns:
                rejected.append((index, "future"))
                continue
            refused = self._untrusted(revoked, batch.landmark_id, record, now_unix_ns)
            if refused is not None:
                rejected.append((index, refused[2]))
                untrusted.setdefault(refused, []).append(index)
                continue
            task = tasks.match(batch.landmark_id, record, skew_ns)
            if isinstance(task, str):
                if task == WRONG_TASK:
                    logger.warning("landmark %s batch %s record %d: signed task %d of round %s "
                                   "is not its task for %s %s", batch.landmark_id,
                                   batch.batch_id, index, record.task_id, record.round_id,
                                   record.target_kind, record.target_id)
                rejected.append((index, task))
                continue
            used.add(record.nonce)
            stored.append(StoredMeasurement(
                batch_id=batch.batch_id, landmark_id=batch.landmark_id,
                target_kind=record.target_kind, target_id=record.target_id, nonce=record.nonce,
                sent_unix_ns=record.sent_unix_ns, rtt_ns=record.rtt_ns,
                clock_source=record.clock_source, round_id=task.round_id, task_id=task.task_id,
                record_json=parsed.record_json[index]))
        rejected.sort()
        result = IngestResult(batch.batch_id, len(stored), tuple(rejected), False)
        new = NewBatch(batch.batch_id, batch.landmark_id, stored,
                       orjson.dumps(result.to_json()).decode())
        return result, new, (rejected, untrusted)

    def _refusal_alerts(self, store: Store, batch: MeasurementBatch,
                        rejected: list[tuple[int, str]],
                        untrusted: dict[tuple[str, str, str], list[int]],
                        now_unix_ns: int) -> None:
        self._attack_alerts(store, batch, rejected, now_unix_ns)
        for (kind, subject_id, reason), indices in untrusted.items():
            untrusted_alert(store, self._alerts, kind=kind, subject_id=subject_id,
                            reason=reason, now_unix_ns=now_unix_ns,
                            details={"batch_id": batch.batch_id, "indices": indices,
                                     "landmark_id": batch.landmark_id})

    def _untrusted(self, revoked: RevocationIndex, landmark_id: str,
                   record: MeasurementRecord, now_unix_ns: int) -> tuple[str, str, str] | None:
        """(kind, id, reason) of the first key that may not vouch for this record: the
        landmark's, then the target's (`verifier.revocations.refusal`)."""
        for kind, subject_id in (("landmark", landmark_id),
                                 (record.target_kind, record.target_id)):
            info = self._keys.infos.get((kind, subject_id))
            if info is None:
                continue  # an unknown target was already rejected (`unknown_target`)
            reason = refusal(revoked, kind, subject_id, info, sent_unix_ns=record.sent_unix_ns,
                             now_unix_ns=now_unix_ns)
            if reason is not None:
                return kind, subject_id, reason
        return None

    def _attack_alerts(self, store: Store, batch: MeasurementBatch,
                       rejected: list[tuple[int, str]], now_unix_ns: int) -> None:
        for index, reason in rejected:
            record = batch.records[index]
            if reason not in ("signature", "replay"):
                continue
            type_ = (AlertType.SIGNATURE_FAILURE if reason == "signature"
                     else AlertType.REPLAY_DETECTED)
            what = ("failed a signature check" if reason == "signature"
                    else "reused a nonce already accepted")
            self._alerts.raise_alert(
                store, type_, subject_kind=record.target_kind, subject_id=record.target_id,
                message=f"measurement from landmark {batch.landmark_id} {what}",
                details={"batch_id": batch.batch_id, "index": index,
                         "landmark_id": batch.landmark_id, "nonce_hex": record.nonce.hex()},
                now_unix_ns=now_unix_ns)


class _BatchRevocations(RevocationIndex):
    """The revocation index for one batch's records, each key looked up once: a batch has one
    landmark and few targets, and `find` encodes the key each time (a twelfth of a batch's
    database-thread time). The answers are `RevocationIndex`'s, judged at one time."""

    def __init__(self, revocations: Iterable[Revocation]) -> None:
        super().__init__(revocations)
        self._found: dict[tuple[str, str, bytes, str | None, int], Revocation | None] = {}

    def find(self, *, kind: str, subject_id: str, public_key: bytes, serial: str | None = None,
             as_of_unix_ns: int) -> Revocation | None:
        key = (kind, subject_id, public_key, serial, as_of_unix_ns)
        if key not in self._found:
            self._found[key] = super().find(kind=kind, subject_id=subject_id,
                                            public_key=public_key, serial=serial,
                                            as_of_unix_ns=as_of_unix_ns)
        return self._found[key]


def _settle(future: asyncio.Future[IngestResult], outcome: IngestResult | Exception) -> None:
    if future.done():  # the uploader went away (cancelled request)
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
