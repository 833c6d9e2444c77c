"""A retried upload is recognised by the group commit (no database trip of its own before the
signature checks): it gets its first answer even when its records would be refused now, and
it stores, counts and alerts nothing new."""

from __future__ import annotations

import time

import pytest

from tests.verifier.conftest import Harness
from tests.verifier.fleet import Fleet
from tests.verifier.test_flow import GERMANY, KASSEL, rtt_from, setup_germany
from verifier import schemas
from verifier.model import AlertFilter
from verifier.store import Store


@pytest.mark.asyncio
async def test_a_retry_gets_its_first_answer_after_its_key_was_revoked(harness: Harness) -> None:
    h = harness
    await setup_germany(h)
    await h.service.tick(time.time_ns())
    fra = await h.token("landmark", "FRA")
    await h.client.get("/v1/landmarks/FRA/tasks?wait_s=0", headers=fra)
    record = h.fleet.record("FRA", "chip-1", rtt_from(GERMANY["FRA"], KASSEL))
    forged = h.fleet.record("FRA", "chip-1", 2.0, target_key=Fleet.create().ca)
    batch = h.fleet.batch("FRA", [record, forged])
    first = await h.post("/v1/measurements", batch.to_json(), fra)
    assert first.json() == {"batch_id": batch.batch_id, "accepted": 1, "duplicate": False,
                            "rejected": [{"index": 1, "reason": "signature"}]}
    # Written without the response model, in its documented shape all the same.
    assert schemas.IngestOut.model_validate(first.json()).model_dump() == first.json()
    assert first.headers["content-type"] == "application/json"
    openapi = (await h.client.get("/openapi.json")).json()
    documented = openapi["paths"]["/v1/measurements"]["post"]["responses"]["200"]
    assert documented["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/IngestOut"}
    r = await h.post("/v1/revocations", {"kind": "chip", "match": "id", "value": "chip-1",
                                         "reason": "stolen"})
    assert r.status_code == 200, r.text

    def state(store: Store) -> tuple[int, int]:
        return store.count_measurements(), len(store.alerts(AlertFilter()))

    before = await h.service.db.run(state)
    again = await h.post("/v1/measurements", batch.to_json(), fra)
    assert again.json() == {**first.json(), "duplicate": True}
    assert await h.service.db.run(state) == before
    fresh = h.fleet.batch("FRA", [h.fleet.record("FRA", "chip-1", 2.0)])
    refused = await h.post("/v1/measurements", fresh.to_json(), fra)
    assert refused.json()["rejected"] == [{"index": 0, "reason": "revoked"}]
