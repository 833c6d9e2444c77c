"""Pieces that let several replicas share one database: the leader lease and its fence, the
event relay between replicas, webhook outbox claims. Two stores opened on one database stand
for two processes (each has its own connections, as a process would); on both backends."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier.config import default_config
from verifier.db import Db
from verifier.hub import Hub
from verifier.lease import LEADER_LEASE, Leadership, LeaseLostError
from verifier.store import SqliteStore, Store, open_store

_NS = 1_000_000_000


def _two(tmp_path: Path, database_url: str) -> tuple[Store, Store]:
    config = default_config(data_dir=tmp_path, database_url=database_url)
    return open_store(config), open_store(config)


def _write_kv(leadership: Leadership, value: str) -> Callable[[Store], None]:
    def write(store: Store) -> None:
        with leadership.fenced(store):
            store.put_kv("written_by", value)

    return write


@pytest.mark.asyncio
async def test_a_paused_leader_writes_nothing_after_losing_the_lease(
        tmp_path: Path, database_url: str) -> None:
    db_a, db_b = (Db(s) for s in _two(tmp_path, database_url))
    try:
        a = Leadership(db_a, "replica-a", ttl_s=60.0)
        b = Leadership(db_b, "replica-b", ttl_s=60.0)
        assert await a.renew() and not await b.renew()
        await db_a.run(_write_kv(a, "a"))
        # Replica a is paused (GC, SIGSTOP) past its lease; b's clock says it has expired.
        later = time.time_ns() + 61 * _NS
        token_b = await db_b.run(Store.acquire_lease, LEADER_LEASE, "replica-b", later, 60 * _NS)
        assert a.token == 1 and token_b == 2
        # a still believes it leads (its own clock has not run out), but the fence refuses.
        assert a.is_leader
        with pytest.raises(LeaseLostError, match="nothing written"):
            await db_a.run(_write_kv(a, "a-after-pause"))
        assert not a.is_leader
        assert await db_b.run(Store.get_kv, "written_by") == "a"
    finally:
        db_a.close()
        db_b.close()


@pytest.mark.asyncio
async def test_a_released_lease_is_taken_at_the_next_try(tmp_path: Path,
                                                         database_url: str) -> None:
    db_a, db_b = (Db(s) for s in _two(tmp_path, database_url))
    try:
        a, b = Leadership(db_a, "a"), Leadership(db_b, "b")
        assert await a.renew() and not await b.renew()
        await a.release()
        assert not a.is_leader and await b.renew() and b.token == 2
        with pytest.raises(LeaseLostError):
            await db_a.run(_write_kv(a, "a"))
    finally:
        db_a.close()
        db_b.close()


@settings(max_examples=40, deadline=None)
@given(steps=st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 20)), max_size=25))
def test_at_most_one_live_holder_and_tokens_only_grow(steps: list[tuple[str, int]]) -> None:
    """Whatever order replicas try in, with the clock moving forward: a lease is granted only
    when free, expired or already held by the same replica, and every change of holder gets a
    larger token than any before."""
    ttl = 5
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "v.sqlite3")
        now, holder, expires, top = 0, None, -1, 0
        for who, advance in steps:
            now += advance
            token = store.acquire_lease(LEADER_LEASE, who, now, ttl)
            if holder is not None and holder != who and expires > now:
                assert token is None
                continue
            assert token is not None
            assert token > top if who != holder else token == top
            holder, expires, top = who, now + ttl, token
        store.close()


@pytest.mark.asyncio
async def test_events_reach_subscribers_of_the_other_replica(tmp_path: Path,
                                                             database_url: str) -> None:
    db_a, db_b = (Db(s) for s in _two(tmp_path, database_url))
    hub_a, hub_b = Hub(), Hub()
    loop = asyncio.get_running_loop()
    hub_a.bind(loop)
    hub_b.bind(loop)
    signals: list[dict[str, object]] = []
    hub_b.on_signal("_tasks", signals.append)
    relays = [asyncio.create_task(hub_a.relay(db_a, "a", poll_s=0.02)),
              asyncio.create_task(hub_b.relay(db_b, "b", poll_s=0.02))]
    frames_b = hub_b.subscribe(ping_s=5.0)
    frames_a = hub_a.subscribe(ping_s=5.0)
    try:
        assert await anext(frames_b) == ": connected\n\n"
        assert await anext(frames_a) == ": connected\n\n"
        await asyncio.sleep(0.1)  # both relays have read their starting cursor
        hub_a.publish({"rounds": 3}, event="_tasks")  # a signal: never an SSE frame
        hub_a.publish({"alert_id": 7, "status": "open"})
        frame = await asyncio.wait_for(anext(frames_b), 5.0)
        assert frame.endswith('data: {"alert_id":7,"status":"open"}\n\n')
        assert signals == [{"rounds": 3}]
        # The publisher's own subscribers get it at once, and only once (not again relayed).
        assert (await asyncio.wait_for(anext(frames_a), 5.0)).endswith(
            'data: {"alert_id":7,"status":"open"}\n\n')
        await asyncio.sleep(0.2)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(frames_a), 0.2)
    finally:
        await frames_a.aclose()
        await frames_b.aclose()
        for task in relays:
            task.cancel()
        await asyncio.gather(*relays, return_exceptions=True)
        db_a.close()
        db_b.close()


def test_each_outbox_item_is_claimed_by_one_replica(tmp_path: Path, database_url: str) -> None:
    store_a, store_b = _two(tmp_path, database_url)
    now = time.time_ns()
    store_a.open_alert("went_dark", severity="high", subject_kind="chip", subject_id="c1",
                       message="m", details={}, now_unix_ns=now,
                       outbox=["http://a", "http://b", "http://c"])
    claimed_a = store_a.claim_outbox(now, 2, now + 40 * _NS)
    claimed_b = store_b.claim_outbox(now, 10, now + 40 * _NS)
    assert len(claimed_a) == 2 and len(claimed_b) == 1
    assert not {i.outbox_id for i in claimed_a} & {i.outbox_id for i in claimed_b}
    assert store_b.claim_outbox(now + 39 * _NS, 10, now + 80 * _NS) == []
    # A claimant that died without settling: its items come back when the claim runs out.
    store_a.outbox_done(claimed_a[0].outbox_id, now)
    again = store_b.claim_outbox(now + 40 * _NS, 10, now + 80 * _NS)
    assert sorted(i.outbox_id for i in again) == sorted(
        [claimed_a[1].outbox_id, claimed_b[0].outbox_id])
    store_a.close()
    store_b.close()


@pytest.mark.asyncio
async def test_the_relay_keeps_up_past_its_look_back_window(tmp_path: Path) -> None:
    """More events than the look-back window and one read hold (a bulk enrolment's key
    signals): the other replica still gets the last one (a cursor stuck on the window's
    already-seen rows would never get there)."""
    path = tmp_path / "v.sqlite3"
    db_a, db_b = Db(SqliteStore(path)), Db(SqliteStore(path))
    hub_a, hub_b = Hub(), Hub()
    loop = asyncio.get_running_loop()
    hub_a.bind(loop)
    hub_b.bind(loop)
    got: list[int] = []
    hub_b.on_signal("_n", lambda payload: got.append(int(str(payload["n"]))))
    relays = [asyncio.create_task(hub_a.relay(db_a, "a", poll_s=0.02)),
              asyncio.create_task(hub_b.relay(db_b, "b", poll_s=0.02))]
    try:
        await asyncio.sleep(0.1)
        for n in range(4_500):
            hub_a.publish({"n": n}, event="_n")
        for _ in range(500):
            if got and got[-1] == 4_499:
                break
            await asyncio.sleep(0.02)
        assert got == list(range(4_500))
    finally:
        for task in relays:
            task.cancel()
        await asyncio.gather(*relays, return_exceptions=True)
        db_a.close()
        db_b.close()
