"""An upload's signatures are checked in as many thread-pool jobs as there are idle verify
threads (`verify_threads` less the uploads being checked), the batch signature inside the
first job: alone, a batch is split across the threads; while others are checked, it is one
job. Either way every record is checked and answered."""

from __future__ import annotations

import time
from concurrent.futures import Future
from typing import Any

import pytest

from tests.verifier.conftest import Harness
from tests.verifier.fleet import Fleet
from tests.verifier.test_flow import setup_germany


@pytest.mark.asyncio
async def test_a_batch_is_split_only_over_idle_verify_threads(harness: Harness) -> None:
    h = harness
    await setup_germany(h)
    await h.service.tick(time.time_ns())
    fra = await h.token("landmark", "FRA")
    await h.client.get("/v1/landmarks/FRA/tasks?wait_s=0", headers=fra)
    ingestor = h.service.ingestor
    assert h.service.config.verify_threads == 2
    pool = ingestor._pool
    submitted: list[int] = []
    submit = pool.submit

    def counting(fn: Any, /, *args: Any) -> Future[Any]:
        submitted.append(len(args[0]))  # the records of this job
        return submit(fn, *args)

    pool.submit = counting  # type: ignore[method-assign,assignment]
    forged = Fleet.create().ca
    for busy, expected in ((0, [20, 20]), (1, [40])):
        submitted.clear()
        ingestor._verifying = busy  # as if `busy` other uploads were being checked
        records = [h.fleet.record("FRA", "chip-1", 2.0) for _ in range(39)]
        records.append(h.fleet.record("FRA", "chip-1", 2.0, target_key=forged))
        r = await h.post("/v1/measurements", h.fleet.batch("FRA", records).to_json(), fra)
        assert r.status_code == 200, r.text
        assert submitted == expected
        assert r.json()["accepted"] == 39
        assert r.json()["rejected"] == [{"index": 39, "reason": "signature"}]
    # A forged batch signature is refused whichever job checks it.
    batch = h.fleet.batch("FRA", [h.fleet.record("FRA", "chip-1", 2.0)]).to_json()
    batch["signature_b64"] = h.fleet.batch("FRA", []).to_json()["signature_b64"]
    r = await h.post("/v1/measurements", batch, fra)
    assert r.status_code == 422 and "batch signature rejected" in r.text
    assert ingestor._verifying == 1
