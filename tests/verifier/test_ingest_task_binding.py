"""A version-2 record names the round and task it answers (signed by its landmark); ingestion
binds it to exactly that task, and refuses a record naming a task that is not its landmark's,
its target's or its round's. Version-1 records (older landmarks) still get the inferred task."""

from __future__ import annotations

import time
from typing import Any

import pytest

from protocol.records import MeasurementRecord, sign_record
from tests.verifier.conftest import Harness
from tests.verifier.test_mesh_and_faults import KASSEL, TRUE, chip_rtt_ms, poll, register, rtt_ms
from verifier.model import TaskRow

_S = 1_000_000_000


def naming(h: Harness, record: MeasurementRecord, round_id: str,
           task_id: int) -> MeasurementRecord:
    """`record` re-signed by its landmark as version 2, naming `round_id` and `task_id`."""
    return sign_record(
        h.fleet.landmark_keys[record.landmark_id], landmark_id=record.landmark_id,
        target_kind=record.target_kind, target_id=record.target_id, nonce=record.nonce,
        sent_unix_ns=record.sent_unix_ns, rtt_ns=record.rtt_ns,
        clock_source=record.clock_source, challenge=record.challenge,
        response=record.response, round_id=round_id, task_id=task_id)


def measure(h: Harness, landmark_id: str, task: dict[str, Any],
            sent_unix_ns: int | None = None) -> MeasurementRecord:
    """A version-1 record of `task`, with the RTT of the true positions."""
    rtt = (chip_rtt_ms(TRUE[landmark_id], KASSEL) if task["target_kind"] == "chip"
           else rtt_ms(TRUE[landmark_id], TRUE[task["target_id"]]))
    return h.fleet.record(landmark_id, task["target_id"], rtt, target_kind=task["target_kind"],
                          sent_unix_ns=sent_unix_ns)


async def upload(h: Harness, landmark_id: str,
                 records: list[MeasurementRecord]) -> dict[str, Any]:
    r = await h.post("/v1/measurements", h.fleet.batch(landmark_id, records).to_json(),
                     await h.token("landmark", landmark_id))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def task_row(h: Harness, task_id: int) -> TaskRow:
    rows = await h.service.db.run(lambda s: s.tasks_by_id([task_id]))
    assert len(rows) == 1
    return rows[0]


async def planned(h: Harness) -> dict[str, list[dict[str, Any]]]:
    await register(h, TRUE)
    chip = h.fleet.chip_body("chip-1", {"allowed": ["DEU"]}, policy="p")
    assert (await h.post("/v1/chips", chip)).status_code == 200
    await h.service.tick(time.time_ns())
    return {landmark_id: await poll(h, landmark_id) for landmark_id in TRUE}


@pytest.mark.asyncio
async def test_chip_and_mesh_records_are_bound_to_the_task_they_name(harness: Harness) -> None:
    h = harness
    handed = await planned(h)
    kinds = {t["target_kind"] for tasks in handed.values() for t in tasks}
    assert kinds == {"chip", "landmark"}  # chip rounds and mesh rounds alike
    for landmark_id, tasks in handed.items():
        records = [naming(h, measure(h, landmark_id, t), t["round_id"], t["task_id"])
                   for t in tasks]
        body = await upload(h, landmark_id, records)
        assert body["rejected"] == [] and body["accepted"] == len(tasks), body
        for task in tasks:
            assert (await task_row(h, task["task_id"])).answered


@pytest.mark.asyncio
async def test_the_signed_task_wins_over_the_send_time(harness: Harness) -> None:
    """Two live tasks of one landmark cover the send time: the inference would take the later
    one; the record names the earlier one and is stored under it."""
    h = harness
    handed = await planned(h)
    first = next(t for t in handed["FRA"] if t["target_kind"] == "chip")
    later_id = await h.service.db.run(lambda s: s.add_task(
        "c-later-round", landmark_id="FRA", target_kind="chip", target_id=first["target_id"],
        host="127.0.0.1", port=9000, issued_unix_ns=first["issued_unix_ns"] + 1,
        expires_unix_ns=first["expires_unix_ns"]))
    record = naming(h, measure(h, "FRA", first), first["round_id"], first["task_id"])
    assert (await upload(h, "FRA", [record]))["accepted"] == 1
    assert (await task_row(h, first["task_id"])).answered
    assert not (await task_row(h, later_id)).answered
    rows = await h.service.db.run(lambda s: s.round_measurements(first["round_id"]))
    assert [(m.landmark_id, m.target_id) for m in rows] == [("FRA", first["target_id"])]


@pytest.mark.asyncio
async def test_a_version_1_record_still_gets_the_inferred_task(harness: Harness) -> None:
    h = harness
    handed = await planned(h)
    task = handed["BER"][0]
    record = measure(h, "BER", task)
    assert record.version == 1
    assert (await upload(h, "BER", [record]))["accepted"] == 1
    assert (await task_row(h, task["task_id"])).answered


@pytest.mark.asyncio
@pytest.mark.parametrize("case", ["other landmark's task", "other target's task",
                                  "other round", "unknown task", "task id past int64",
                                  "no verifier task", "sent before the task"])
async def test_a_record_naming_a_task_that_is_not_its_own_is_rejected(
        harness: Harness, case: str) -> None:
    h = harness
    handed = await planned(h)
    own = next(t for t in handed["FRA"] if t["target_kind"] == "chip")
    record = measure(h, "FRA", own)
    round_id, task_id, reason = own["round_id"], own["task_id"], "wrong_task"
    if case == "other landmark's task":
        other = next(t for t in handed["BER"] if t["target_id"] == own["target_id"])
        round_id, task_id = other["round_id"], other["task_id"]
    elif case == "other target's task":
        other = next(t for t in handed["FRA"] if t["target_kind"] == "landmark")
        round_id, task_id = other["round_id"], other["task_id"]
    elif case == "other round":
        round_id = "c-some-other-round"
    elif case == "unknown task":
        task_id, reason = 987_654_321, "no_task"
    elif case == "task id past int64":
        task_id, reason = (1 << 64) - 1, "no_task"
    elif case == "no verifier task":
        task_id, reason = 0, "no_task"
    else:  # measured 60 s before the task existed (still fresh, not stale)
        record = measure(h, "FRA", own, sent_unix_ns=own["issued_unix_ns"] - 60 * _S)
        reason = "no_task"
    before = await h.service.db.run(lambda s: s.count_measurements())
    body = await upload(h, "FRA", [naming(h, record, round_id, task_id)])
    assert body["accepted"] == 0 and body["rejected"] == [{"index": 0, "reason": reason}]
    assert await h.service.db.run(lambda s: s.count_measurements()) == before
    assert not (await task_row(h, own["task_id"])).answered
    stats = (await h.client.get("/v1/stats", headers=h.dashboard)).json()
    assert stats["measurements_rejected_by_reason"] == {reason: 1}
