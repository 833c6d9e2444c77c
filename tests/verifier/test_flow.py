"""End-to-end through the HTTP API with real keys, real signatures and the real geo verdict."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from geo.geodesy import distance_km, vacuum_rtt_ms
from tests.verifier.conftest import Harness
from tests.verifier.fleet import Fleet

GERMANY = {"FRA": (50.11, 8.68), "BER": (52.52, 13.40), "MUC": (48.14, 11.58),
           "HAM": (53.55, 9.99)}
KASSEL = (51.31, 9.48)
TOKYO = (35.68, 139.69)


def rtt_from(landmark: tuple[float, float], chip: tuple[float, float]) -> float:
    return vacuum_rtt_ms(distance_km(*landmark, *chip)) * 1.02 + 0.05


async def setup_germany(h: Harness, chip_id: str = "chip-1",
                        licence: dict[str, object] | None = None) -> None:
    for landmark_id, (lat, lon) in GERMANY.items():
        r = await h.post("/v1/landmarks", h.fleet.landmark_body(landmark_id, lat, lon))
        assert r.status_code == 200, r.text
    r = await h.post("/v1/chips", h.fleet.chip_body(chip_id, licence or {"allowed": ["DEU"]}))
    assert r.status_code == 200, r.text
    for landmark_id in GERMANY:  # every landmark polls once: alive
        headers = await h.token("landmark", landmark_id)
        r = await h.client.get(f"/v1/landmarks/{landmark_id}/tasks?wait_s=0", headers=headers)
        assert r.status_code == 200, r.text


async def run_round(h: Harness, chip_id: str, position: tuple[float, float]) -> dict[str, int]:
    """Plan, poll every landmark, upload one signed measurement per task, close the round."""
    await h.service.tick(time.time_ns())
    accepted: dict[str, int] = {}
    for landmark_id, where in GERMANY.items():
        headers = await h.token("landmark", landmark_id)
        r = await h.client.get(f"/v1/landmarks/{landmark_id}/tasks?wait_s=0", headers=headers)
        tasks = [t for t in r.json()["tasks"] if t["target_id"] == chip_id]
        if not tasks:
            continue
        record = h.fleet.record(landmark_id, chip_id, rtt_from(where, position))
        batch = h.fleet.batch(landmark_id, [record])
        r = await h.post("/v1/measurements", batch.to_json(), headers)
        assert r.status_code == 200, r.text
        accepted[landmark_id] = r.json()["accepted"]
    await h.service.tick(time.time_ns())
    return accepted


@pytest.mark.asyncio
async def test_chip_inside_licence_is_verified_with_evidence(harness: Harness) -> None:
    h = harness
    await setup_germany(h)
    accepted = await run_round(h, "chip-1", KASSEL)
    assert accepted and all(n == 1 for n in accepted.values())
    chip = (await h.client.get("/v1/chips/chip-1", headers=h.dashboard)).json()
    assert chip["state"] == "verified", chip["last_verdict"]
    verdicts = (await h.client.get("/v1/chips/chip-1/verdicts", headers=h.dashboard)).json()
    verdict = verdicts["items"][0]
    assert len(verdict["measurement_ids"]) == len(accepted)
    assert verdict["assessment"]["sound_region"]["type"] in ("Polygon", "MultiPolygon")


@pytest.mark.asyncio
async def test_chip_far_outside_licence_raises_one_alert(harness: Harness) -> None:
    h = harness
    await setup_germany(h)
    await run_round(h, "chip-1", TOKYO)  # every German landmark sees Tokyo-sized RTTs
    chip = (await h.client.get("/v1/chips/chip-1", headers=h.dashboard)).json()
    assert chip["state"] != "verified"
    await run_round(h, "chip-1", TOKYO)
    if chip["state"] == "violation":
        alerts = (await h.client.get("/v1/alerts?type=outside_licensed_region",
                                     headers=h.dashboard)).json()["items"]
        assert len(alerts) == 1  # one open alert per (chip, type), however many rounds
        alert_id = alerts[0]["alert_id"]
        r = await h.post(f"/v1/alerts/{alert_id}/ack", {"reason": "investigating"},
                         h.dashboard)
        assert r.status_code == 403
        r = await h.post(f"/v1/alerts/{alert_id}/ack", {"reason": "investigating"})
        assert r.json()["status"] == "acknowledged" and r.json()["acknowledged_by"] == "admin-t"
        r = await h.post(f"/v1/alerts/{alert_id}/resolve", {"reason": "seized"})
        assert r.json()["status"] == "resolved"
        r = await h.post(f"/v1/alerts/{alert_id}/resolve", {"reason": "again"})
        assert r.status_code == 409


@pytest.mark.asyncio
async def test_replay_duplicate_and_forgery_are_rejected(harness: Harness) -> None:
    h = harness
    await setup_germany(h)
    await h.service.tick(time.time_ns())
    headers = await h.token("landmark", "FRA")
    await h.client.get("/v1/landmarks/FRA/tasks?wait_s=0", headers=headers)
    record = h.fleet.record("FRA", "chip-1", 2.0)
    batch = h.fleet.batch("FRA", [record])
    first = await h.post("/v1/measurements", batch.to_json(), headers)
    assert first.json() == {"batch_id": batch.batch_id, "accepted": 1, "rejected": [],
                            "duplicate": False}
    again = await h.post("/v1/measurements", batch.to_json(), headers)
    assert again.json()["duplicate"] is True and again.json()["accepted"] == 1
    replay = await h.post("/v1/measurements", h.fleet.batch("FRA", [record]).to_json(), headers)
    assert replay.json()["rejected"] == [{"index": 0, "reason": "replay"}]
    impostor = Fleet.create().ca  # a key that is not the chip's
    forged = h.fleet.record("FRA", "chip-1", 2.0, target_key=impostor)
    r = await h.post("/v1/measurements", h.fleet.batch("FRA", [forged]).to_json(), headers)
    assert r.json()["rejected"] == [{"index": 0, "reason": "signature"}]
    stale = h.fleet.record("FRA", "chip-1", 2.0, sent_unix_ns=time.time_ns() - 10**12)
    r = await h.post("/v1/measurements", h.fleet.batch("FRA", [stale]).to_json(), headers)
    assert r.json()["rejected"][0]["reason"] in ("stale", "no_task")
    types = {a["type"] for a in (await h.client.get("/v1/alerts", headers=h.dashboard)).json()[
        "items"]}
    assert {"replay_detected", "signature_failure"} <= types
    assert await h.service.db.run(lambda s: s.count_measurements()) == 1
    stats = (await h.client.get("/v1/stats", headers=h.dashboard)).json()
    assert stats["measurements_rejected_by_reason"]["replay"] == 1


@pytest.mark.asyncio
async def test_batch_signature_and_ownership(harness: Harness) -> None:
    h = harness
    await setup_germany(h)
    fra = await h.token("landmark", "FRA")
    batch = h.fleet.batch("BER", [h.fleet.record("BER", "chip-1", 2.0)])
    r = await h.post("/v1/measurements", batch.to_json(), fra)
    assert r.status_code == 403
    body = batch.to_json()
    body["signature_b64"] = h.fleet.batch("BER", [], batch.batch_id).to_json()["signature_b64"]
    r = await h.post("/v1/measurements", body, await h.token("landmark", "BER"))
    assert r.status_code == 422 and "signature" in r.json()["detail"]


@pytest.mark.asyncio
async def test_auth_and_bad_inputs_are_clear_4xx(harness: Harness) -> None:
    h = harness
    assert (await h.client.get("/v1/chips")).status_code == 401
    assert (await h.client.get("/v1/chips", headers={"Authorization": "Bearer x"})
            ).status_code == 401
    body = h.fleet.landmark_body("FRA", 50.1, 8.7)
    assert (await h.post("/v1/landmarks", body, h.dashboard)).status_code == 403
    foreign = Fleet.create()
    r = await h.post("/v1/chips", foreign.chip_body("c9", {"allowed": ["DEU"]}))
    assert r.status_code == 422 and "certificate" in r.json()["detail"]
    r = await h.post("/v1/chips", h.fleet.chip_body("c9", {"allowed": [{"type": "Polygon"}]}))
    assert r.status_code == 422 and "licence" in r.json()["detail"]
    r = await h.client.post("/v1/measurements", content=b"{not json", headers=h.admin)
    assert r.status_code == 400
    r = await h.client.post("/v1/measurements", content=json.dumps({"records": 3}),
                            headers=h.admin)
    assert r.status_code == 400
    huge = b"x" * (h.service.config.max_body_bytes + 1)
    r = await h.client.post("/v1/measurements", content=huge, headers=h.admin)
    assert r.status_code == 413
    assert (await h.client.get("/v1/chips/nope", headers=h.dashboard)).status_code == 404
    assert (await h.client.get("/v1/chips", headers=h.dashboard)).json() == {
        "items": [], "next_cursor": None}


@pytest.mark.asyncio
async def test_silent_chip_goes_dark_but_a_dead_landmark_is_blamed(harness: Harness) -> None:
    h = harness
    await setup_germany(h)
    r = await h.client.put("/v1/policies/fast", json={
        "round_interval_s": 0.01, "landmarks_per_round": 4, "round_timeout_s": 0.01,
        "dark_window_s": 0.01}, headers=h.admin)
    assert r.status_code == 200
    body = h.fleet.chip_body("chip-2", {"allowed": ["DEU"]}, policy="fast")
    assert (await h.post("/v1/chips", body)).status_code == 200
    await h.service.tick(time.time_ns())
    for landmark_id in GERMANY:
        headers = await h.token("landmark", landmark_id)
        await h.client.get(f"/v1/landmarks/{landmark_id}/tasks?wait_s=0", headers=headers)
    await asyncio.sleep(0.05)
    await h.service.tick(time.time_ns())
    chip = (await h.client.get("/v1/chips/chip-2", headers=h.dashboard)).json()
    assert chip["state"] == "dark"
    alerts = (await h.client.get("/v1/alerts?chip_id=chip-2", headers=h.dashboard)).json()
    assert [a["type"] for a in alerts["items"]] == ["went_dark"]
