"""A group commit decides and writes all its batches at once (`Ingestor._commit_together`):
it gives each batch exactly the answer, and leaves exactly the rows and alerts, that storing
the batches one by one in upload order gives (`Ingestor._commit_each`, the path it falls back
to). And when the group's write fails, because another replica stored one of its nonces after
the group read them, every batch is still stored, the reused record refused as a replay."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.keys import SoftwareSigner
from protocol.records import MeasurementRecord
from tests.verifier.conftest import Harness
from tests.verifier.fleet import Fleet
from tests.verifier.test_ingest_task_binding import planned
from verifier.ingest import IngestResult, _Pending, _verify_records, parse_batch
from verifier.model import AlertFilter
from verifier.store import Store
from verifier.store.ingest import IngestView, RevocationName

_S = 1_000_000_000
# What a record in a generated batch is: how it may be refused, or not.
KINDS = ("fresh", "replay_in_group", "replay_stored", "stale", "wrong_task", "bad_signature")


@dataclass(frozen=True)
class Planned:
    h: Harness
    tasks: dict[str, tuple[str, int]]  # landmark id → its chip task (round id, task id)


@dataclass(frozen=True)
class Setup(Planned):
    stored: MeasurementRecord  # a record already stored (its nonce is used)
    stored_batch: tuple[str, str]  # (batch id, landmark id) already stored


def record(s: Planned, landmark_id: str, *, sent_unix_ns: int | None = None,
           task_of: str | None = None, nonce: bytes | None = None,
           target_key: SoftwareSigner | None = None) -> MeasurementRecord:
    """A version-2 record of `landmark_id` for chip-1, naming the chip task of `task_of`."""
    round_id, task_id = s.tasks[task_of or landmark_id]
    return s.h.fleet.record(landmark_id, "chip-1", 3.0, sent_unix_ns=sent_unix_ns,
                            nonce=nonce, target_key=target_key, round_id=round_id,
                            task_id=task_id)


def pending(s: Setup, landmark_id: str, records: Sequence[MeasurementRecord],
            batch_id: str) -> _Pending:
    """An upload as `Ingestor.ingest` queues it: parsed, its records' answers checked."""
    body = orjson.dumps(s.h.fleet.batch(landmark_id, list(records), batch_id).to_json())
    parsed = parse_batch(body)
    checks, _ = _verify_records(list(enumerate(parsed.batch.records)), s.h.service.keys)
    future: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
    return _Pending(parsed, checks, future)


def snapshot(store: Store, group: Sequence[_Pending]) -> tuple[Any, ...]:
    """What the database holds about the group (ids left out: a rolled-back PostgreSQL
    sequence does not go back)."""
    batch_ids = [item.parsed.batch.batch_id for item in group]
    nonces = [r.nonce for item in group for r in item.parsed.batch.records]
    alerts = sorted((a.type, a.subject_kind, a.subject_id, orjson.dumps(a.details))
                    for a in store.alerts(AlertFilter()))
    return ({b: store.batch_record(b) for b in batch_ids}, store.used_nonces(nonces),
            store.count_measurements(), alerts)


class _Undo(Exception):  # control flow: carries the answers out of a rollback
    def __init__(self, found: tuple[Any, ...]) -> None:
        super().__init__("undo")
        self.found = found


def outcome(value: IngestResult | Exception) -> object:
    return value if isinstance(value, IngestResult) else (type(value), str(value))


def together_then_undone(s: Setup, store: Store, group: Sequence[_Pending],
                         now_unix_ns: int) -> tuple[Any, ...]:
    """The group path's answers and database, then a rollback to where it started."""
    ingestor = s.h.service.ingestor
    try:
        with ingestor._alerts.held(), store.transaction():
            answers = ingestor._commit_together(store, group, now_unix_ns)
            raise _Undo(([outcome(a) for _, a in answers], snapshot(store, group)))
    except _Undo as undo:
        return undo.found


def one_by_one(s: Setup, store: Store, group: Sequence[_Pending],
               now_unix_ns: int) -> tuple[Any, ...]:
    answers = s.h.service.ingestor._commit_each(store, group, now_unix_ns)
    return [outcome(a) for _, a in answers], snapshot(store, group)


async def setup(h: Harness) -> Setup:
    handed = await planned(h)
    tasks = {landmark_id: (t["round_id"], t["task_id"]) for landmark_id, ts in handed.items()
             for t in ts if t["target_kind"] == "chip"}
    assert len(tasks) >= 2
    landmark_id = sorted(tasks)[0]
    stored = record(Planned(h, tasks), landmark_id)
    batch_id = f"b-{secrets.token_hex(8)}"
    r = await h.post("/v1/measurements", h.fleet.batch(landmark_id, [stored], batch_id).to_json(),
                     await h.token("landmark", landmark_id))
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    return Setup(h, tasks, stored, (batch_id, landmark_id))


_BATCH = st.tuples(st.integers(0, 3),  # landmark (index into the ones with a chip task)
                   st.sampled_from(("fresh", "earlier", "stored")),  # batch id
                   st.lists(st.sampled_from(KINDS), min_size=1, max_size=4))


@pytest.mark.asyncio
async def test_a_group_commit_equals_storing_its_batches_one_by_one(harness: Harness) -> None:
    s = await setup(harness)
    loop = asyncio.get_running_loop()
    landmarks = sorted(s.tasks)
    stranger = SoftwareSigner.generate()

    def build(spec: list[tuple[int, str, list[str]]]) -> list[_Pending]:
        now = time.time_ns()
        group: list[_Pending] = []
        fresh: list[bytes] = [s.stored.nonce]  # the nonces of records that could be stored
        for landmark_index, batch_kind, kinds in spec:
            landmark_id = landmarks[landmark_index % len(landmarks)]
            other = landmarks[(landmark_index + 1) % len(landmarks)]
            records = []
            for kind in kinds:
                nonce = {"replay_in_group": fresh[-1], "replay_stored": s.stored.nonce}.get(kind)
                records.append(record(
                    s, landmark_id, nonce=nonce,
                    sent_unix_ns=now - 3_600 * _S if kind == "stale" else None,
                    task_of=other if kind == "wrong_task" else None,
                    target_key=stranger if kind == "bad_signature" else None))
                if kind == "fresh":
                    fresh.append(records[-1].nonce)
            batch_id = {"fresh": f"b-{secrets.token_hex(8)}", "stored": s.stored_batch[0],
                        "earlier": (group[-1].parsed.batch.batch_id if group
                                    else s.stored_batch[0])}[batch_kind]
            group.append(asyncio.run_coroutine_threadsafe(
                _pending_on_loop(s, landmark_id, records, batch_id), loop).result())
        return group

    @settings(max_examples=25, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.too_slow])
    @given(st.lists(_BATCH, min_size=1, max_size=4))
    def check(spec: list[tuple[int, str, list[str]]]) -> None:
        group = build(spec)
        now = time.time_ns()

        def both(store: Store) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
            return (together_then_undone(s, store, group, now),
                    one_by_one(s, store, group, now))

        together, each = asyncio.run_coroutine_threadsafe(
            s.h.service.db.run(both), loop).result()
        assert together == each

    await asyncio.to_thread(check)


async def _pending_on_loop(s: Setup, landmark_id: str, records: Sequence[MeasurementRecord],
                           batch_id: str) -> _Pending:
    return pending(s, landmark_id, records, batch_id)


class _StaleView:
    """A store whose first `ingest_view` misses one used nonce: the view of a group read just
    before another replica committed a batch with that nonce."""

    def __init__(self, store: Store, nonce: bytes) -> None:
        self._store = store
        self._nonce: bytes | None = nonce

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def ingest_view(self, batch_ids: Sequence[str], nonces: Sequence[bytes],
                    task_ids: Sequence[int],
                    revocation_names: Sequence[RevocationName] = ()) -> IngestView:
        view = self._store.ingest_view(batch_ids, nonces, task_ids, revocation_names)
        if self._nonce is None:
            return view
        missed, self._nonce = self._nonce, None
        return IngestView(view.batches, view.used_nonces - {missed}, view.tasks,
                          view.revocations)


@pytest.mark.asyncio
async def test_a_failed_group_write_stores_its_batches_one_by_one(harness: Harness) -> None:
    s = await setup(harness)
    landmark_id = s.stored_batch[1]
    first = pending(s, landmark_id, [record(s, landmark_id), record(s, landmark_id)],
                    f"b-{secrets.token_hex(8)}")
    reused = pending(s, landmark_id, [record(s, landmark_id),
                                      record(s, landmark_id, nonce=s.stored.nonce)],
                     f"b-{secrets.token_hex(8)}")
    group = [first, reused]
    ingestor = s.h.service.ingestor
    await s.h.service.db.run(lambda store: ingestor._commit_group(
        _StaleView(store, s.stored.nonce), group, time.time_ns()))
    answers = [await item.future for item in group]
    assert [(a.accepted, a.rejected, a.duplicate) for a in answers] == [
        (2, (), False), (1, ((1, "replay"),), False)]
    stored = await s.h.service.db.run(lambda store: snapshot(store, group))
    assert stored[2] == 1 + 3  # the record stored before, and the three accepted now
    assert any(a[0] == "replay_detected" for a in stored[3])


@settings(max_examples=30, deadline=None)
@given(order=st.permutations(range(12)), extra=st.booleans())
def test_a_stored_record_is_its_known_fields_in_order(order: list[int], extra: bool) -> None:
    """Whatever the key order of an uploaded record and whatever unknown keys it carries, the
    stored text is the record's `to_json`, compact: the text the offline audit re-parses."""
    pki = Fleet.create()
    pki.landmark_certificate("FRA", 50.11, 8.68)
    pki.chip_certificate("chip-1")
    records = [pki.record("FRA", "chip-1", 3.0, round_id="r-1", task_id=7) for _ in range(2)]
    body = pki.batch("FRA", records).to_json()
    sent = body["records"][1]
    keys = list(sent)
    body["records"][1] = {keys[i]: sent[keys[i]] for i in order} | (
        {"comment": "ignored"} if extra else {})
    parsed = parse_batch(orjson.dumps(body))
    assert parsed.record_json == tuple(orjson.dumps(r.to_json()).decode() for r in records)
