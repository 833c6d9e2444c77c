"""Policies that tolerate f lying landmarks (`tolerate_faulty_landmarks`), through the real
verifier: a compromised landmark holds its own key, so it can sign any RTT it likes; with f = 0
one such landmark verifies a smuggled chip, with f = 1 it cannot. Also the policy API, the
store migration, the scheduler's landmark count and the offline audit of such verdicts."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from audit.verify import verify_bundle
from keystore.cert_files import read_ca_public_key
from lightfence.cli import main
from tests.verifier.conftest import Harness, open_harness
from tests.verifier.test_mesh_and_faults import KASSEL, LISBON, TRUE, chip_rtt_ms, poll
from verifier.model import DEFAULT_POLICY, Policy
from verifier.store import SqliteStore

LIAR = "FRA"
LIE_RTT_MS = 0.01  # 1.5 km: "the chip sits next to me in Frankfurt"


def policy_body(faulty: int, landmarks_per_round: int = 5) -> dict[str, Any]:
    return {"round_interval_s": 0.01, "landmarks_per_round": landmarks_per_round,
            "round_timeout_s": 600, "dark_window_s": 86_400,
            "tolerate_faulty_landmarks": faulty}


async def enrol(h: Harness, faulty: int, round_timeout_s: float = 600.0) -> None:
    """Five German landmarks at their true positions, chip-1 licensed for Germany."""
    for landmark_id, (lat, lon) in TRUE.items():
        r = await h.post("/v1/landmarks", h.fleet.landmark_body(landmark_id, lat, lon))
        assert r.status_code == 200, r.text
    body = {**policy_body(faulty), "round_timeout_s": round_timeout_s}
    r = await h.client.put("/v1/policies/p", headers=h.admin, json=body)
    assert r.status_code == 200, r.text
    r = await h.post("/v1/chips", h.fleet.chip_body("chip-1", {"allowed": ["DEU"]}, policy="p"))
    assert r.status_code == 200, r.text
    for landmark_id in TRUE:  # every landmark polls once: alive
        await poll(h, landmark_id)


async def chip_round(h: Harness, chip_at: tuple[float, float], liar: str | None) -> str:
    """One round: honest landmarks sign the physical RTT to where the chip really is, the
    liar signs LIE_RTT_MS. Returns the chip's state afterwards."""
    await h.service.tick(time.time_ns())
    for landmark_id, where in TRUE.items():
        tasks = [t for t in await poll(h, landmark_id) if t["target_kind"] == "chip"]
        if not tasks:
            continue
        rtt_ms = LIE_RTT_MS if landmark_id == liar else chip_rtt_ms(where, chip_at)
        # Stamped when the REVEAL left, one RTT (and a little) before the answer came back.
        sent = time.time_ns() - int(rtt_ms * 1e6) - 1_000_000
        record = h.fleet.record(landmark_id, "chip-1", rtt_ms, sent_unix_ns=sent)
        r = await h.post("/v1/measurements", h.fleet.batch(landmark_id, [record]).to_json(),
                         await h.token("landmark", landmark_id))
        assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    await h.service.tick(time.time_ns())
    chip = (await h.client.get("/v1/chips/chip-1", headers=h.dashboard)).json()
    state: str = chip["state"]
    return state


def export(tmp_path: Path) -> dict[str, Any]:
    out = tmp_path / "bundle.json"
    assert main(["evidence", "export", "--chip", "chip-1", "--from", "0", "--to",
                 str(2**63 - 1), "--data-dir", str(tmp_path), "-o", str(out)]) == 0
    bundle: dict[str, Any] = json.loads(out.read_text())
    return bundle


@pytest.mark.asyncio
async def test_one_lying_landmark_verifies_a_smuggled_chip_only_without_tolerance(
        tmp_path: Path) -> None:
    async with open_harness(tmp_path / "f0") as h:
        await enrol(h, faulty=0)
        # The threat: the chip is in Lisbon, Frankfurt's landmark says it is in Frankfurt.
        assert await chip_round(h, LISBON, liar=LIAR) == "verified"
    async with open_harness(tmp_path / "f1", tree_head_interval_s=3600.0) as h:
        await enrol(h, faulty=1)
        assert await chip_round(h, LISBON, liar=LIAR) == "inconclusive"
        verdict = (await h.client.get("/v1/chips/chip-1/verdicts",
                                      headers=h.dashboard)).json()["items"][0]
        assert len(verdict["landmarks"]) == 5
        assert "holds if any 1 landmark(s) lie" in verdict["reason"]
        ca = h.fleet.ca.public_key()
    # The evidence of the f = 1 verdict names the policy, and the offline audit agrees.
    bundle = export(tmp_path / "f1")
    keys: dict[str, Any] = {"ca_public_key": ca,
            "log_public_key": read_ca_public_key(tmp_path / "f1" / "log.pub.json")}
    report = verify_bundle(bundle, **keys)
    assert report.ok, report.findings
    assert report.counts["recomputed_verdicts"] == report.counts["verdicts"] == 1
    k, entry = next((i, e["entry"]) for i, e in enumerate(bundle["entries"])
                    if e["kind"] == "verdict")
    assert entry["policy"]["tolerate_faulty_landmarks"] == 1
    # Recomputing without the tolerance gives the liar's `verified`, not what was stored.
    entry["policy"]["tolerate_faulty_landmarks"] = 0
    findings = {(f.check, f.where, f.expected, f.found)
                for f in verify_bundle(bundle, **keys).findings}
    assert ("verdict.recomputed", f"entries[{k}].entry.verdict", "verified",
            "inconclusive") in findings
    entry["policy"]["tolerate_faulty_landmarks"] = 7
    where = {(f.check, f.where) for f in verify_bundle(bundle, **keys).findings}
    assert ("verdict.recompute",
            f"entries[{k}].entry.policy.tolerate_faulty_landmarks") in where


@pytest.mark.asyncio
async def test_honest_chip_among_five_landmarks_stays_verified_under_f_1(
        harness: Harness) -> None:
    await enrol(harness, faulty=1)
    assert await chip_round(harness, KASSEL, liar=None) == "verified"


@pytest.mark.asyncio
async def test_too_few_answers_for_the_tolerance_is_inconclusive_not_verified(
        harness: Harness) -> None:
    h = harness
    # A round window the posts below always fit in, however loaded the machine; the closing
    # tick is then dated past it instead of sleeping through it.
    await enrol(h, faulty=1, round_timeout_s=5.0)
    await h.service.tick(time.time_ns())
    for landmark_id in ("BER", "MUC"):  # two answers; f = 1 needs three
        assert any(t["target_kind"] == "chip" for t in await poll(h, landmark_id))
        rtt_ms = chip_rtt_ms(TRUE[landmark_id], KASSEL)
        record = h.fleet.record(landmark_id, "chip-1", rtt_ms,
                                sent_unix_ns=time.time_ns() - int(rtt_ms * 1e6) - 1_000_000)
        r = await h.post("/v1/measurements", h.fleet.batch(landmark_id, [record]).to_json(),
                         await h.token("landmark", landmark_id))
        assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    await h.service.tick(time.time_ns() + 6_000_000_000)  # timed out; the other three silent
    verdict = (await h.client.get("/v1/chips/chip-1/verdicts",
                                  headers=h.dashboard)).json()["items"][0]
    assert verdict["verdict"] == "inconclusive"
    assert "needs at least 3 distinct landmarks, got 2" in verdict["reason"]


@pytest.mark.asyncio
async def test_policy_round_trips_and_bad_tolerances_are_refused(harness: Harness) -> None:
    h = harness
    r = await h.client.put("/v1/policies/p", headers=h.admin, json=policy_body(2, 4))
    assert r.status_code == 200, r.text
    assert r.json()["tolerate_faulty_landmarks"] == 2
    listed = (await h.client.get("/v1/policies", headers=h.dashboard)).json()["items"]
    assert {p["name"]: p["tolerate_faulty_landmarks"] for p in listed} == {"default": 0, "p": 2}
    refused = [
        (policy_body(2, 3), "tolerate_faulty_landmarks=2 needs landmarks_per_round >= 4, got 3"),
        (policy_body(3, 8), "less than or equal to 2"),
        (policy_body(-1, 8), "greater than or equal to 0"),
    ]
    for body, message in refused:
        r = await h.client.put("/v1/policies/p", headers=h.admin, json=body)
        assert r.status_code == 422 and message in r.text, r.text
    # Nothing was lost: the stored policy is the last accepted one.
    listed = (await h.client.get("/v1/policies", headers=h.dashboard)).json()["items"]
    assert next(p for p in listed if p["name"] == "p") == {
        "name": "p", **policy_body(2, 4), "verified_ttl_s": None,
        "min_key_protection": "software", "effective_min_key_protection": "software",
        **DEFAULT_POLICY.alert_margins}
    # Omitted means 0, as before the field existed.
    body = policy_body(0)
    del body["tolerate_faulty_landmarks"]
    r = await h.client.put("/v1/policies/q", headers=h.admin, json=body)
    assert r.status_code == 200 and r.json()["tolerate_faulty_landmarks"] == 0


@pytest.mark.asyncio
async def test_scheduler_asks_for_f_plus_2_landmarks(harness: Harness) -> None:
    """A policy stored without the API's check (an older database, a script) still gets
    f + 2 landmarks per round."""
    h = harness
    await enrol(h, faulty=0)
    await h.service.db.run(lambda s: s.put_policy(Policy("p", 0.01, 1, 600.0, 86_400.0, 2)))
    await h.service.tick(time.time_ns())
    asked = [i for i in TRUE if any(t["target_kind"] == "chip" for t in await poll(h, i))]
    assert len(asked) == 4


def test_existing_database_gains_the_column_with_default_0(tmp_path: Path) -> None:
    path = tmp_path / "verifier.sqlite3"
    with sqlite3.connect(path) as db:  # the policies table as it was before the field
        db.execute("CREATE TABLE policies (name TEXT PRIMARY KEY, round_interval_s REAL NOT NULL,"
                   " landmarks_per_round INTEGER NOT NULL, round_timeout_s REAL NOT NULL,"
                   " dark_window_s REAL NOT NULL)")
        db.execute("INSERT INTO policies VALUES ('old', 60.0, 4, 10.0, 600.0)")
    db.close()
    store = SqliteStore(path)
    try:
        assert store.policy("old") == Policy("old", 60.0, 4, 10.0, 600.0, 0, None)
        store.put_policy(Policy("new", 60.0, 4, 10.0, 600.0, 1))
        assert [p.tolerate_faulty_landmarks for p in store.policies()] == [1, 0]
    finally:
        store.close()
    reopened = SqliteStore(path)  # migrating twice is a no-op
    try:
        assert reopened.policy("new") == Policy("new", 60.0, 4, 10.0, 600.0, 1)
    finally:
        reopened.close()
