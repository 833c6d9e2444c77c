"""The landmark mesh (calibration refresh, position audit), re-planning around a dead landmark,
the verdict-time full record check, group commit, and verdict events on the SSE stream: all
through the real verifier with real keys, real signatures, the real store and the real geo code."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from geo.calibration import CalibrationModel
from geo.geodesy import distance_km, vacuum_rtt_ms
from protocol.keys import SIGNATURE_BYTES
from tests.verifier.conftest import Harness
from verifier import verdicts
from verifier.store import Store

_NS = 1_000_000_000
# True positions. HAM is where it really is; a test may register it with another claim.
TRUE = {"FRA": (50.11, 8.68), "BER": (52.52, 13.40), "MUC": (48.14, 11.58),
        "HAM": (53.55, 9.99), "STR": (48.78, 9.18)}
LISBON = (38.72, -9.14)
KASSEL = (51.31, 9.48)


def rtt_ms(a: tuple[float, float], b: tuple[float, float]) -> float:
    """A mesh RTT over fibre: slower than light in vacuum, plus a little processing."""
    return vacuum_rtt_ms(distance_km(*a, *b)) * 1.5 + 0.3


def chip_rtt_ms(landmark: tuple[float, float], chip: tuple[float, float]) -> float:
    """A near-ideal path, so four German landmarks pin a chip in Kassel inside Germany."""
    return vacuum_rtt_ms(distance_km(*landmark, *chip)) * 1.02 + 0.05


async def register(h: Harness, claims: dict[str, tuple[float, float]], *,
                   policy: dict[str, float] | None = None) -> None:
    for landmark_id, (lat, lon) in claims.items():
        r = await h.post("/v1/landmarks", h.fleet.landmark_body(landmark_id, lat, lon))
        assert r.status_code == 200, r.text
    r = await h.client.put("/v1/policies/p", headers=h.admin, json=policy or {
        "round_interval_s": 0.01, "landmarks_per_round": 4, "round_timeout_s": 600,
        "dark_window_s": 86_400})
    assert r.status_code == 200, r.text
    for landmark_id in claims:  # every landmark polls once: alive
        await poll(h, landmark_id)


async def poll(h: Harness, landmark_id: str) -> list[dict[str, Any]]:
    headers = await h.token("landmark", landmark_id)
    r = await h.client.get(f"/v1/landmarks/{landmark_id}/tasks?wait_s=0", headers=headers)
    assert r.status_code == 200, r.text
    tasks: list[dict[str, Any]] = r.json()["tasks"]
    return tasks


async def answer(h: Harness, landmark_id: str, tasks: list[dict[str, Any]],
                 chip_at: tuple[float, float]) -> dict[str, Any]:
    """Upload one signed measurement per task, RTTs from true positions."""
    records = []
    for task in tasks:
        rtt = (chip_rtt_ms(TRUE[landmark_id], chip_at) if task["target_kind"] == "chip"
               else rtt_ms(TRUE[landmark_id], TRUE[task["target_id"]]))
        records.append(h.fleet.record(landmark_id, task["target_id"], rtt,
                                      target_kind=task["target_kind"]))
    batch = h.fleet.batch(landmark_id, records)
    r = await h.post("/v1/measurements", batch.to_json(), await h.token("landmark", landmark_id))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["rejected"] == [] and body["accepted"] == len(records), body
    return body


async def full_pass(h: Harness, chip_at: tuple[float, float] = KASSEL,
                    skip: frozenset[str] = frozenset(), silent: frozenset[str] = frozenset()
                    ) -> dict[str, list[dict[str, Any]]]:
    """Plan, let every landmark (but `skip`) poll and answer every task (but `silent` ones,
    which take their tasks and never answer), close due rounds."""
    await h.service.tick(time.time_ns())
    handed: dict[str, list[dict[str, Any]]] = {}
    for landmark_id in TRUE:
        if landmark_id in skip:
            continue
        tasks = await poll(h, landmark_id)
        handed[landmark_id] = tasks
        if tasks and landmark_id not in silent:
            await answer(h, landmark_id, tasks, chip_at)
    await h.service.tick(time.time_ns())
    return handed


async def refresh_mesh(h: Harness) -> None:
    now = time.time_ns()
    await h.service.db.run(verdicts.refresh_mesh_models, h.service.alerts,
                           since_unix_ns=now - 3600 * _NS, now_unix_ns=now)


async def alerts_of(h: Harness, query: str) -> list[dict[str, Any]]:
    r = await h.client.get(f"/v1/alerts?{query}", headers=h.dashboard)
    items: list[dict[str, Any]] = r.json()["items"]
    return items


@pytest.mark.asyncio
async def test_landmark_with_false_position_is_faulted_and_no_longer_scheduled(
        harness: Harness) -> None:
    h = harness
    await register(h, {**TRUE, "HAM": LISBON})  # HAM sits in Hamburg but claims Lisbon
    handed = await full_pass(h)
    assert sum(t["target_kind"] == "landmark" for ts in handed.values() for t in ts) == 20
    await refresh_mesh(h)
    landmarks = {lm["landmark_id"]: lm for lm in
                 (await h.client.get("/v1/landmarks", headers=h.dashboard)).json()["items"]}
    assert landmarks["HAM"]["health"] == "faulty"
    assert landmarks["HAM"]["audit"]["status"] == "impossible"
    assert {e["kind"] for e in landmarks["HAM"]["audit"]["evidence"]} == {"faster_than_light"}
    assert all(landmarks[i]["audit"]["status"] != "impossible" for i in TRUE if i != "HAM")
    faults = await alerts_of(h, "type=landmark_fault")
    assert [(a["subject_id"], a["severity"]) for a in faults] == [("HAM", "critical")]
    await refresh_mesh(h)  # the same evidence again: still one open alert
    assert len(await alerts_of(h, "type=landmark_fault")) == 1
    # A chip registered now is never measured by the faulty landmark.
    chip = h.fleet.chip_body("chip-1", {"allowed": ["DEU"]}, policy="p")
    assert (await h.post("/v1/chips", chip)).status_code == 200
    handed = await full_pass(h)
    chip_tasks = {i for i, ts in handed.items() for t in ts if t["target_kind"] == "chip"}
    assert len(chip_tasks) == 4 and "HAM" not in chip_tasks
    state = (await h.client.get("/v1/chips/chip-1", headers=h.dashboard)).json()
    assert state["state"] == "verified"


@pytest.mark.asyncio
async def test_faulty_landmark_stays_faulty_without_new_evidence_until_moved(
        harness: Harness) -> None:
    h = harness
    await register(h, {**TRUE, "HAM": LISBON})
    await full_pass(h)
    await refresh_mesh(h)
    # A later window holds no mesh measurement of HAM (it is no longer probed): still faulty.
    now = time.time_ns()
    await h.service.db.run(verdicts.refresh_mesh_models, h.service.alerts,
                           since_unix_ns=now, now_unix_ns=now)
    await full_pass(h)
    await h.service.db.run(verdicts.refresh_mesh_models, h.service.alerts,
                           since_unix_ns=now, now_unix_ns=time.time_ns())
    landmarks = {lm["landmark_id"]: lm for lm in
                 (await h.client.get("/v1/landmarks", headers=h.dashboard)).json()["items"]}
    assert landmarks["HAM"]["health"] == "faulty"
    assert landmarks["HAM"]["audit"]["status"] == "impossible"
    # Re-registered at its true position, the operator's correction clears the flag.
    await register(h, {"HAM": TRUE["HAM"]})
    landmarks = {lm["landmark_id"]: lm for lm in
                 (await h.client.get("/v1/landmarks", headers=h.dashboard)).json()["items"]}
    assert landmarks["HAM"]["health"] != "faulty"


@pytest.mark.asyncio
async def test_calibration_refresh_from_the_mesh_feeds_the_next_verdict(harness: Harness) -> None:
    h = harness
    await register(h, TRUE)
    assert (await h.post("/v1/chips", h.fleet.chip_body("chip-1", {"allowed": ["DEU"]},
                                                         policy="p"))).status_code == 200
    await full_pass(h)  # chip round + mesh rounds; no calibration model yet
    first = (await h.client.get("/v1/chips/chip-1", headers=h.dashboard)).json()["last_verdict"]
    assert first["verdict"] == "verified"
    assert first["assessment"]["confidence"] is None
    assert await h.service.db.run(Store.get_kv, verdicts.CALIBRATION_KEY) is None
    await refresh_mesh(h)
    stored = await h.service.db.run(Store.get_kv, verdicts.CALIBRATION_KEY)
    assert stored is not None
    model = CalibrationModel.from_json(json.loads(stored))
    # Fitted from the 20 mesh RTTs, each 1.5x the vacuum RTT: about 100 km per RTT ms.
    assert model.global_model.samples == 20
    assert 95.0 < model.global_model.mid_km_per_ms < 105.0
    landmarks = (await h.client.get("/v1/landmarks", headers=h.dashboard)).json()["items"]
    assert {lm["audit"]["status"] for lm in landmarks} == {"ok"}
    assert await alerts_of(h, "type=landmark_fault") == []
    await full_pass(h)
    second = (await h.client.get("/v1/chips/chip-1", headers=h.dashboard)).json()["last_verdict"]
    assert second["verdict_id"] > first["verdict_id"]
    assert second["verdict"] == "verified"  # calibration never changes the sound verdict
    assert second["assessment"]["confidence"] is not None
    assert second["assessment"]["likely_region"]["type"] in ("Polygon", "MultiPolygon")
    assert second["assessment"]["sound_area_km2"] == first["assessment"]["sound_area_km2"]


@pytest.mark.asyncio
async def test_task_of_a_landmark_that_died_moves_to_a_live_one(harness: Harness) -> None:
    h = harness
    await register(h, TRUE, policy={"round_interval_s": 3600, "landmarks_per_round": 3,
                                     "round_timeout_s": 600, "dark_window_s": 86_400})
    assert (await h.post("/v1/chips", h.fleet.chip_body("chip-1", {"allowed": ["DEU"]},
                                                         policy="p"))).status_code == 200
    await h.service.tick(time.time_ns())
    rnd = next(r for r in await h.service.db.run(Store.open_rounds) if r.target_kind == "chip")
    planned = {t.landmark_id for t in await h.service.db.run(Store.round_tasks, rnd.round_id)}
    assert len(planned) == 3
    dead = sorted(planned)[0]
    # The dead landmark last polled two minutes ago (dead after 60 s) and never took its task.
    await h.service.db.run(Store.touch_landmark, dead, time.time_ns() - 120 * _NS)
    handed = await full_pass(h, skip=frozenset({dead}))
    takers = {i for i, ts in handed.items() for t in ts if t["round_id"] == rnd.round_id}
    assert len(takers) == 3 and dead not in takers and len(takers - planned) == 1
    verdict = (await h.client.get("/v1/chips/chip-1", headers=h.dashboard)).json()["last_verdict"]
    assert verdict["round_id"] == rnd.round_id and verdict["verdict"] == "verified"
    assert {row["landmark_id"] for row in verdict["landmarks"]} == takers
    # Back from the dead, it finds nothing left of that round.
    assert all(t["round_id"] != rnd.round_id for t in await poll(h, dead))


# SQLite only: with a 0.3 s round timeout, a pass of five landmarks (poll, measure, upload) must
# finish inside the round's window, and on a loaded 2-core machine the extra round trips of a
# database server push it past; the rule under test does not depend on the backend.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.asyncio
async def test_landmark_that_loses_every_chip_is_blamed_not_the_chips(harness: Harness) -> None:
    h = harness
    await register(h, TRUE, policy={"round_interval_s": 0.01, "landmarks_per_round": 5,
                                     "round_timeout_s": 0.3, "dark_window_s": 600})
    for chip_id in ("chip-1", "chip-2"):
        body = h.fleet.chip_body(chip_id, {"allowed": ["DEU"]}, policy="p")
        assert (await h.post("/v1/chips", body)).status_code == 200
    for _ in range(2):  # FRA takes its tasks for both chips, twice, and never answers
        handed = await full_pass(h, silent=frozenset({"FRA"}))
        # Both chips, or more when a pass took longer than the 10 ms round interval.
        assert {t["target_id"] for t in handed["FRA"] if t["target_kind"] == "chip"} == {
            "chip-1", "chip-2"}
    # Once the tasks have expired and a task TTL has passed (answers may sit in a landmark's
    # upload queue until then), FRA's unanswered tasks count as lost.
    await h.service.tick(time.time_ns() + int((h.service.config.task_ttl_s + 1) * _NS))
    faults = await alerts_of(h, "type=landmark_fault")
    assert [(a["subject_id"], a["details"]["reason"]) for a in faults] == [
        ("FRA", "lost_all_chips")]
    assert await alerts_of(h, "type=went_dark") == []
    for chip_id in ("chip-1", "chip-2"):  # answered rounds verified, none blamed on the chip
        verdicts = (await h.client.get(f"/v1/chips/{chip_id}/verdicts",
                                       headers=h.dashboard)).json()["items"]
        found = {v["verdict"] for v in verdicts}
        assert "verified" in found and "dark" not in found, found


@pytest.mark.asyncio
async def test_record_with_a_bad_landmark_signature_never_reaches_a_verdict(
        harness: Harness) -> None:
    """Ingestion trusts the batch signature for the landmark's own per-record signatures; the
    verdict re-checks each record it uses in full, so a record whose own signature is bad (a
    landmark bug or a tampered spool) is dropped there and raises `signature_failure`."""
    h = harness
    await register(h, TRUE)
    assert (await h.post("/v1/chips", h.fleet.chip_body("chip-1", {"allowed": ["DEU"]},
                                                         policy="p"))).status_code == 200
    await h.service.tick(time.time_ns())
    used = sorted([i for i in TRUE
                   if any(t["target_kind"] == "chip" for t in await poll(h, i))])
    broken = used[0]
    for landmark_id in used:
        record = h.fleet.record(landmark_id, "chip-1", chip_rtt_ms(TRUE[landmark_id], KASSEL))
        if landmark_id == broken:
            record = replace(record, signature=bytes(SIGNATURE_BYTES))
        batch = h.fleet.batch(landmark_id, [record])  # the batch signature itself is valid
        r = await h.post("/v1/measurements", batch.to_json(),
                         await h.token("landmark", landmark_id))
        assert r.json()["accepted"] == 1
    await h.service.tick(time.time_ns())
    verdict = (await h.client.get("/v1/chips/chip-1", headers=h.dashboard)).json()["last_verdict"]
    assert {row["landmark_id"] for row in verdict["landmarks"]} == set(used) - {broken}
    alerts = await alerts_of(h, "type=signature_failure")
    assert [(a["subject_kind"], a["subject_id"]) for a in alerts] == [("landmark", broken)]


@pytest.mark.asyncio
async def test_concurrent_uploads_share_commits_without_losing_or_doubling(
        harness: Harness) -> None:
    h = harness
    await register(h, TRUE)
    assert (await h.post("/v1/chips", h.fleet.chip_body("chip-1", {"allowed": ["DEU"]},
                                                         policy="p"))).status_code == 200
    await h.service.tick(time.time_ns())
    for landmark_id in TRUE:
        await poll(h, landmark_id)
    headers = await h.token("landmark", "FRA")
    batches = [h.fleet.batch("FRA", [h.fleet.record("FRA", "chip-1", 2.0) for _ in range(5)])
               for _ in range(12)]
    shared = h.fleet.record("FRA", "chip-1", 2.0)  # the same nonce in two different batches
    pair = [h.fleet.batch("FRA", [shared]), h.fleet.batch("FRA", [shared])]
    uploads = [*batches, batches[0], *pair]  # batches[0] twice: a retry racing the original
    responses = await asyncio.gather(*(h.post("/v1/measurements", b.to_json(), headers)
                                       for b in uploads))
    bodies = [r.json() for r in responses]
    assert all(r.status_code == 200 for r in responses)
    first, retry = bodies[0], bodies[12]
    assert {first["duplicate"], retry["duplicate"]} == {False, True}
    assert first["accepted"] == retry["accepted"] == 5
    assert sorted(b["accepted"] for b in bodies[13:]) == [0, 1]
    assert [b["rejected"] for b in bodies[13:] if b["accepted"] == 0] == [
        [{"index": 0, "reason": "replay"}]]
    assert await h.service.db.run(Store.count_measurements) == 12 * 5 + 1
    assert [a["type"] for a in await alerts_of(h, "chip_id=chip-1")] == ["replay_detected"]


async def next_frame(stream: AsyncIterator[str], kind: str) -> str:
    async def find() -> str:
        async for frame in stream:
            if f"event: {kind}\n" in frame:
                return frame
        raise AssertionError("stream ended")

    return await asyncio.wait_for(find(), 10.0)


@pytest.mark.asyncio
async def test_verdicts_are_pushed_on_the_event_stream(harness: Harness) -> None:
    h = harness
    await register(h, TRUE)
    assert (await h.post("/v1/chips", h.fleet.chip_body("chip-1", {"allowed": ["DEU"]},
                                                         policy="p"))).status_code == 200
    stream = h.service.hub.subscribe(ping_s=5.0)
    assert await anext(stream) == ": connected\n\n"  # subscribed from here on
    await full_pass(h)
    frame = await next_frame(stream, "verdict")
    event = json.loads(frame.split("data: ", 1)[1])
    chip = (await h.client.get("/v1/chips/chip-1", headers=h.dashboard)).json()
    assert event["verdict_id"] == chip["last_verdict"]["verdict_id"]
    assert (event["chip_id"], event["verdict"]) == ("chip-1", "verified")
    await stream.aclose()


@pytest.mark.asyncio
async def test_probably_misplaced_landmark_warns_after_two_windows_and_stays_in_use(
        harness: Harness) -> None:
    h = harness
    # HAM sits in Hamburg but claims a point ~150 km north-west: its paths to Berlin, Munich and
    # Frankfurt look faster than fibre, none faster than light. Probable, not proven.
    await register(h, {**TRUE, "HAM": (54.5, 8.3)})
    await full_pass(h)
    await refresh_mesh(h)
    landmarks = {lm["landmark_id"]: lm for lm in
                 (await h.client.get("/v1/landmarks", headers=h.dashboard)).json()["items"]}
    assert landmarks["HAM"]["audit"]["status"] == "suspect"
    assert landmarks["HAM"]["audit"]["suspect_windows"] == 1
    assert landmarks["HAM"]["health"] != "faulty"
    assert await alerts_of(h, "type=landmark_suspect") == []  # one window is not enough
    await refresh_mesh(h)
    [warning] = await alerts_of(h, "type=landmark_suspect")
    assert (warning["subject_id"], warning["severity"]) == ("HAM", "low")
    assert {e["kind"] for e in warning["details"]["audit"]["evidence"]} == {"faster_than_peers"}
    assert await alerts_of(h, "type=landmark_fault") == []
    await refresh_mesh(h)  # still suspect: still the one warning
    assert len(await alerts_of(h, "type=landmark_suspect")) == 1
    # Re-registered at its true position, the next window clears the warning.
    await register(h, {"HAM": TRUE["HAM"]})
    await refresh_mesh(h)
    [warning] = await alerts_of(h, "type=landmark_suspect")
    assert warning["status"] == "resolved"
