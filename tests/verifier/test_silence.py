"""Silence is not a pass: every closed chip round records a verdict (with evidence), and a
`verified` state expires after the policy's TTL unless a new `verified` round renews it."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from audit.verify import AuditReport, verify_bundle
from tests.verifier.conftest import Harness
from tests.verifier.test_flow import GERMANY, KASSEL, run_round, setup_germany
from tests.verifier.test_mesh_and_faults import next_frame
from verifier.evidence import export_bundle
from verifier.model import DEFAULT_POLICY, Policy
from verifier.store import SqliteStore

_NS = 1_000_000_000
QUICK = {"round_interval_s": 0.05, "landmarks_per_round": 4, "round_timeout_s": 0.05,
         "dark_window_s": 86_400}


async def audit_chip(h: Harness, chip_id: str) -> AuditReport:
    """Export the chip's evidence bundle (a fresh signed head covers everything) and audit it
    with the CA and log keys pinned."""
    log, heads = h.service.evidence.log, h.service.tree_heads
    assert log is not None and heads is not None
    bundle = await h.service.db.run(lambda _: export_bundle(
        log, chip_id, 0, 2**62, signer=heads._signer, sign_fresh_head=True,
        now_unix_s=int(time.time()) + 1))
    return verify_bundle(bundle, ca_public_key=h.fleet.ca.public_key(),
                         log_public_key=heads.public_key)


async def silent_round(h: Harness) -> None:
    """Plan a round, let every landmark take its task, answer nothing, close it after the
    deadline."""
    await asyncio.sleep(0.06)  # the policy's round interval has passed
    await h.service.tick(time.time_ns())
    for landmark_id in GERMANY:
        headers = await h.token("landmark", landmark_id)
        r = await h.client.get(f"/v1/landmarks/{landmark_id}/tasks?wait_s=0", headers=headers)
        assert r.status_code == 200, r.text
    await asyncio.sleep(0.06)  # past the round timeout
    await h.service.tick(time.time_ns())


@pytest.mark.asyncio
async def test_three_silent_rounds_after_verified_each_record_a_verdict(
        harness: Harness) -> None:
    h = harness
    r = await h.client.put("/v1/policies/quick", json=QUICK, headers=h.admin)
    assert r.status_code == 200, r.text
    await setup_germany(h)  # the default policy: time enough for every upload, even on a
    await run_round(h, "chip-1", KASSEL)  # loaded machine
    chip = (await h.client.get("/v1/chips/chip-1", headers=h.dashboard)).json()
    assert chip["state"] == "verified", chip["last_verdict"]
    body = h.fleet.chip_body("chip-1", {"allowed": ["DEU"]}, policy="quick")
    assert (await h.post("/v1/chips", body)).status_code == 200  # now quick silent rounds
    await h.service.db.run(lambda s: s.set_chip_next_round("chip-1", 0))
    for _ in range(3):
        await silent_round(h)
    chip = (await h.client.get("/v1/chips/chip-1", headers=h.dashboard)).json()
    assert chip["state"] == "inconclusive"
    verdicts = (await h.client.get("/v1/chips/chip-1/verdicts?limit=100",
                                   headers=h.dashboard)).json()["items"]
    silent = [v for v in verdicts if v["verdict"] != "verified"]
    assert len(silent) >= 3
    assert all(v["verdict"] == "inconclusive" and v["reason"].startswith("no_answer")
               and v["reason_code"] == "no_answer"
               and v["measurement_ids"] == [] and v["assessment"] is None for v in silent)
    # Every closed chip round has exactly one verdict, and every verdict an evidence entry.
    closed = await h.service.db.run(lambda s: s._all(  # type: ignore[attr-defined]
        "SELECT round_id FROM rounds WHERE closed = 1 AND target_kind = 'chip'"))
    assert sorted(r["round_id"] for r in closed) == sorted(v["round_id"] for v in verdicts)
    log = h.service.evidence.log
    assert log is not None
    entries = [e for e in log.find_entries("chip-1", 0, 2**62) if e.kind == "verdict"]
    assert len(entries) == len(verdicts)
    # The offline audit accepts every one of these verdicts.
    report = await audit_chip(h, "chip-1")
    assert report.ok, [f.to_json() for f in report.findings]
    assert report.counts["verdicts"] == len(verdicts)
    # No answer is no proof the chip came back: a went_dark alert would stay open.
    alerts = (await h.client.get("/v1/alerts?chip_id=chip-1", headers=h.dashboard)).json()
    assert alerts["items"] == []


@pytest.mark.asyncio
async def test_verified_state_expires_without_rounds(harness: Harness) -> None:
    """No round can even be planned (every landmark stopped polling): the last `verified`
    stops counting after round interval + timeout, the default TTL."""
    h = harness
    await setup_germany(h)
    await run_round(h, "chip-1", KASSEL)
    chip = (await h.client.get("/v1/chips/chip-1", headers=h.dashboard)).json()
    assert chip["state"] == "verified"
    ttl_s = DEFAULT_POLICY.round_interval_s + DEFAULT_POLICY.round_timeout_s
    stream = h.service.hub.subscribe(ping_s=5.0)
    assert await anext(stream) == ": connected\n\n"
    now = time.time_ns()
    await h.service.tick(now + int((ttl_s - 60) * _NS))  # landmarks dead: nothing planned
    chip = (await h.client.get("/v1/chips/chip-1", headers=h.dashboard)).json()
    assert chip["state"] == "verified"
    await h.service.tick(now + int((ttl_s + 1) * _NS))
    chip = (await h.client.get("/v1/chips/chip-1", headers=h.dashboard)).json()
    assert chip["state"] == "inconclusive"
    assert chip["state_since_unix_ns"] >= now + int(ttl_s * _NS)
    frame = await next_frame(stream, "chip_state")  # dashboards hear of it without a verdict
    event = json.loads(frame.split("data: ", 1)[1])
    assert (event["chip_id"], event["state"], event["reason"]) == (
        "chip-1", "inconclusive", "verified_expired")
    await stream.aclose()


@pytest.mark.asyncio
async def test_policy_ttl_round_trips_and_renewal_keeps_verified(harness: Harness) -> None:
    h = harness
    r = await h.client.put("/v1/policies/default", headers=h.admin, json={
        "round_interval_s": 300, "landmarks_per_round": 6, "round_timeout_s": 30,
        "dark_window_s": 3600, "verified_ttl_s": 10})
    assert r.status_code == 200 and r.json()["verified_ttl_s"] == 10, r.text
    r = await h.client.put("/v1/policies/bad", headers=h.admin, json={
        "round_interval_s": 300, "landmarks_per_round": 6, "round_timeout_s": 30,
        "dark_window_s": 3600, "verified_ttl_s": 0})
    assert r.status_code == 422
    await setup_germany(h)
    await run_round(h, "chip-1", KASSEL)
    await h.service.db.run(lambda s: s.set_chip_next_round("chip-1", 0))
    await run_round(h, "chip-1", KASSEL)  # a second verified round renews the TTL
    chip = (await h.client.get("/v1/chips/chip-1", headers=h.dashboard)).json()
    assert chip["state"] == "verified"
    await h.service.tick(time.time_ns() + 11 * _NS)
    chip = (await h.client.get("/v1/chips/chip-1", headers=h.dashboard)).json()
    assert chip["state"] == "inconclusive"


def test_policy_without_ttl_uses_interval_plus_timeout(tmp_path: object) -> None:
    assert Policy("p", 60.0, 4, 10.0, 600.0).effective_verified_ttl_s == 70.0
    assert Policy("p", 60.0, 4, 10.0, 600.0, 0, 5.0).effective_verified_ttl_s == 5.0


def test_old_database_gains_the_ttl_column(tmp_path: object) -> None:
    import sqlite3
    from pathlib import Path

    path = Path(str(tmp_path)) / "verifier.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE policies (name TEXT PRIMARY KEY, round_interval_s REAL NOT NULL,"
                   " landmarks_per_round INTEGER NOT NULL, round_timeout_s REAL NOT NULL,"
                   " dark_window_s REAL NOT NULL)")
        db.execute("INSERT INTO policies VALUES ('old', 60.0, 4, 10.0, 600.0)")
    db.close()
    store = SqliteStore(path)
    try:
        assert store.policy("old") == Policy("old", 60.0, 4, 10.0, 600.0, 0, None)
    finally:
        store.close()
