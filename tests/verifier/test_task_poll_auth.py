"""The task poll checks its bearer token in the same trip to the database thread as the poll
(one queue wait behind a tick, not two): every refused poll gets its clear 401/403/404, in the
old order, and neither takes the landmark's tasks, nor marks it alive, nor leaves a waiter."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from tests.verifier.conftest import Harness, open_harness
from tests.verifier.pg_cluster import Cluster
from tests.verifier.test_flow import setup_germany
from verifier.auth import issue_token
from verifier.store import Store


async def _last_seen(h: Harness, landmark_id: str) -> int | None:
    landmark = await h.service.db.run(Store.landmark, landmark_id)
    assert landmark is not None
    return landmark.last_seen_unix_ns


@pytest.mark.asyncio
async def test_refused_polls_take_nothing_and_touch_nothing(harness: Harness) -> None:
    h = harness
    await setup_germany(h)
    await h.service.tick(time.time_ns())  # chip-1's round: a task for every landmark
    disabled_token, disabled = await h.service.db.run(
        issue_token, role="landmark", label="old", landmark_id="FRA",
        now_unix_ns=time.time_ns())
    await h.service.db.run(Store.disable_token, disabled_token.token_id, by="test",
                           reason="rotated", now_unix_ns=time.time_ns())
    seen_before = await _last_seen(h, "FRA")
    refused = [
        ({}, 401, "missing bearer token"),
        ({"Authorization": "Bearer not-a-token"}, 401, "unknown bearer token"),
        ({"Authorization": f"Bearer {disabled}"}, 401, "bearer token disabled"),
        (h.dashboard, 403, "may not do this"),
        (await h.token("landmark", "BER"), 403, "belongs to landmark BER"),
    ]
    for headers, status, message in refused:
        r = await h.client.get("/v1/landmarks/FRA/tasks?wait_s=0.2", headers=headers)
        assert r.status_code == status and message in r.text, (headers, r.text)
    assert await _last_seen(h, "FRA") == seen_before  # not marked alive by a refused poll
    # 401 comes before 404: an unauthenticated caller learns nothing about landmark ids.
    r = await h.client.get("/v1/landmarks/NOPE/tasks?wait_s=0")
    assert r.status_code == 401, r.text
    r = await h.client.get("/v1/landmarks/NOPE/tasks?wait_s=0.2", headers=h.admin)
    assert r.status_code == 404 and "no landmark NOPE" in r.text, r.text
    assert h.service.known_task_event("NOPE") is None
    # Every task is still there for the landmark's own poll.
    r = await h.client.get("/v1/landmarks/FRA/tasks?wait_s=0",
                           headers=await h.token("landmark", "FRA"))
    assert r.status_code == 200, r.text
    assert [t["target_id"] for t in r.json()["tasks"] if t["target_kind"] == "chip"] == [
        "chip-1"]
    assert (await _last_seen(h, "FRA") or 0) > (seen_before or 0)


@pytest.mark.asyncio
async def test_a_waiting_long_poll_is_woken_when_its_tasks_are_planned(
        harness: Harness) -> None:
    h = harness
    await setup_germany(h)
    headers = await h.token("landmark", "FRA")
    seen_before = await _last_seen(h, "FRA")

    async def plan_once_the_poll_waits() -> None:
        for _ in range(1_000):  # until its first, empty trip is done
            if await _last_seen(h, "FRA") != seen_before:
                break
            await asyncio.sleep(0.01)
        await h.service.tick(time.time_ns())

    # A poll left to its 30 s timeout would fail the 15 s bound: this one must be woken.
    poll, _ = await asyncio.wait_for(asyncio.gather(
        h.client.get("/v1/landmarks/FRA/tasks?wait_s=30", headers=headers),
        plan_once_the_poll_waits()), 15)
    assert poll.status_code == 200, poll.text
    assert [t["target_id"] for t in poll.json()["tasks"] if t["target_kind"] == "chip"] == [
        "chip-1"]


@pytest.mark.asyncio
async def test_on_postgresql_a_poll_does_not_wait_for_the_leaders_database_thread(
        tmp_path: Path, pg_cluster: Cluster) -> None:
    url = pg_cluster.fresh_url()
    try:
        async with open_harness(tmp_path, database_url=url) as h:
            await setup_germany(h)
            await h.service.tick(time.time_ns())
            headers = await h.token("landmark", "FRA")
            release = threading.Event()
            # The leader's database thread stays busy (as in a long tick) until released.
            busy = asyncio.ensure_future(h.service.db.run(lambda _: release.wait(60)))
            try:
                r = await asyncio.wait_for(h.client.get(
                    "/v1/landmarks/FRA/tasks?wait_s=0", headers=headers), 30)
                assert not busy.done()
            finally:
                release.set()
                await busy
            assert r.status_code == 200, r.text
            assert [t["target_id"] for t in r.json()["tasks"]
                    if t["target_kind"] == "chip"] == ["chip-1"]
    finally:
        pg_cluster.drop(url)
