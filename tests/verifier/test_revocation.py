"""Revocation and expiry: expired or revoked landmark/chip keys never back a verdict (refused at
ingestion, ignored in verdicts, alerted), the offline audit applies the same rule and agrees, and
API tokens expire and can be disabled (admin API and CLI)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest

from audit.verify import verify_bundle
from lightfence.cli import main
from protocol.revocation import Revocation
from tests.verifier.conftest import Harness
from tests.verifier.test_flow import GERMANY, KASSEL, rtt_from, setup_germany
from tests.verifier.test_silence import audit_chip
from verifier.evidence import export_bundle

_NS = 1_000_000_000


async def poll(h: Harness, landmark_id: str) -> list[dict[str, Any]]:
    headers = await h.token("landmark", landmark_id)
    r = await h.client.get(f"/v1/landmarks/{landmark_id}/tasks?wait_s=0", headers=headers)
    assert r.status_code == 200, r.text
    tasks: list[dict[str, Any]] = r.json()["tasks"]
    return tasks


async def upload(h: Harness, landmark_id: str, chip_id: str = "chip-1") -> dict[str, Any]:
    record = h.fleet.record(landmark_id, chip_id, rtt_from(GERMANY[landmark_id], KASSEL))
    r = await h.post("/v1/measurements", h.fleet.batch(landmark_id, [record]).to_json(),
                     await h.token("landmark", landmark_id))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def alert_subjects(h: Harness, type_: str) -> set[str]:
    r = await h.client.get(f"/v1/alerts?type={type_}&limit=500", headers=h.dashboard)
    return {a["subject_id"] for a in r.json()["items"]}


async def short_lived_landmarks(h: Harness) -> int:
    """Register the German landmarks with certificates that expire within two seconds, a
    chip, and plan a round every landmark takes; returns the certificates' not_after (s)."""
    expires_s = int(time.time()) + 1
    for landmark_id, (lat, lon) in GERMANY.items():
        cert = h.fleet.landmark_certificate(
            landmark_id, lat, lon, window_unix_s=(expires_s - 60, expires_s))
        r = await h.post("/v1/landmarks", {"certificate": cert.to_json(), "host": "127.0.0.1",
                                           "port": 7000})
        assert r.status_code == 200, r.text
    r = await h.post("/v1/chips", h.fleet.chip_body("chip-1", {"allowed": ["DEU"]}))
    assert r.status_code == 200, r.text
    for landmark_id in GERMANY:
        await poll(h, landmark_id)
    await h.service.tick(time.time_ns())
    for landmark_id in GERMANY:
        assert any(t["target_id"] == "chip-1" for t in await poll(h, landmark_id))
    return expires_s


async def until_expired(expires_s: int) -> None:
    await asyncio.sleep(max(0.0, expires_s + 1 - time.time()))


@pytest.mark.asyncio
async def test_every_landmark_certificate_expired_no_verified_and_audit_agrees(
        harness: Harness) -> None:
    h = harness
    await until_expired(await short_lived_landmarks(h))
    for landmark_id in GERMANY:
        body = await upload(h, landmark_id)
        assert body["accepted"] == 0
        assert body["rejected"] == [{"index": 0, "reason": "certificate_validity"}]
    await h.service.tick(time.time_ns() + 40 * _NS)  # past the round deadline
    chip = (await h.client.get("/v1/chips/chip-1", headers=h.dashboard)).json()
    assert chip["state"] != "verified"
    assert chip["last_verdict"]["verdict"] == "inconclusive"
    assert chip["last_verdict"]["reason"].startswith("no_answer")
    assert await alert_subjects(h, "key_refused") == set(GERMANY)
    # No round is planned with landmarks whose certificates have expired.
    assert not any(t["target_kind"] == "chip" for t in await poll(h, "FRA"))
    report = await audit_chip(h, "chip-1")
    assert report.ok, [f.to_json() for f in report.findings]
    assert report.counts["verdicts"] >= 1


@pytest.mark.asyncio
async def test_records_sent_before_expiry_count_and_the_audit_agrees(harness: Harness) -> None:
    """Validity is judged at each record's send time, by the verifier and by the audit alike:
    a certificate that expires between the measurement and the verdict still backs it."""
    h = harness
    expires_s = await short_lived_landmarks(h)
    for landmark_id in GERMANY:
        assert (await upload(h, landmark_id))["accepted"] == 1
    await until_expired(expires_s)
    await h.service.tick(time.time_ns())
    chip = (await h.client.get("/v1/chips/chip-1", headers=h.dashboard)).json()
    assert chip["state"] == "verified", chip["last_verdict"]
    report = await audit_chip(h, "chip-1")
    assert report.ok, [f.to_json() for f in report.findings]


@pytest.mark.asyncio
async def test_revoked_landmark_is_ignored_refused_and_audited_alike(harness: Harness) -> None:
    h = harness
    await setup_germany(h)
    await h.service.tick(time.time_ns())
    for landmark_id in GERMANY:  # every answer stored before the revocation
        await poll(h, landmark_id)
        assert (await upload(h, landmark_id))["accepted"] == 1
    r = await h.post("/v1/revocations", {"kind": "landmark", "match": "id", "value": "FRA",
                                         "reason": "key leaked"}, headers=h.dashboard)
    assert r.status_code == 403
    r = await h.post("/v1/revocations", {"kind": "landmark", "match": "id", "value": "FRA",
                                         "reason": "key leaked"})
    assert r.status_code == 200, r.text
    revoked_at = r.json()["revoked_unix_ns"]
    again = await h.post("/v1/revocations", {"kind": "landmark", "match": "id", "value": "FRA",
                                             "reason": "again"})
    assert again.json()["revoked_unix_ns"] == revoked_at  # the first revocation stands
    await h.service.tick(time.time_ns())
    verdict = (await h.client.get("/v1/chips/chip-1", headers=h.dashboard)).json()["last_verdict"]
    assert {row["landmark_id"] for row in verdict["landmarks"]} == set(GERMANY) - {"FRA"}
    assert await alert_subjects(h, "key_refused") == {"FRA"}
    # Refused at ingestion from now on, and kept out of registration and planning.
    await h.service.db.run(lambda s: s.set_chip_next_round("chip-1", 0))
    await h.service.tick(time.time_ns())
    assert not any(t["target_kind"] == "chip" for t in await poll(h, "FRA"))
    assert (await upload(h, "FRA"))["rejected"] == [{"index": 0, "reason": "revoked"}]
    r = await h.post("/v1/landmarks", h.fleet.landmark_body("FRA", *GERMANY["FRA"]))
    assert r.status_code == 422 and "revoked" in r.text
    listed = (await h.client.get("/v1/revocations", headers=h.dashboard)).json()["items"]
    assert listed == [{"kind": "landmark", "match": "id", "value": "FRA",
                       "revoked_unix_ns": revoked_at, "reason": "key leaked"}]
    # The evidence carries the revocation, and the audit agrees with the verdict.
    report = await audit_chip(h, "chip-1")
    assert report.ok, [f.to_json() for f in report.findings]
    log = h.service.evidence.log
    assert log is not None
    entry = json.loads(next(e for e in log.find_entries("chip-1", 0, 2**62)
                            if e.kind == "verdict").entry)
    assert entry["revocations"] == listed
    # An auditor who learns of a revocation the verifier did not apply names every record it
    # still counted (BER revoked before either verdict was decided).
    heads = h.service.tree_heads
    assert heads is not None
    bundle = await h.service.db.run(lambda _: export_bundle(
        log, "chip-1", 0, 2**62, signer=heads._signer, sign_fresh_head=True,
        now_unix_s=int(time.time()) + 1))
    ber_key = h.fleet.landmark_keys["BER"].public_key()
    pinned = [Revocation("landmark", "public_key", base64.b64encode(ber_key).decode(), 0,
                         "stolen")]
    findings = verify_bundle(bundle, ca_public_key=h.fleet.ca.public_key(),
                             log_public_key=heads.public_key, revocations=pinned).findings
    assert {f.check for f in findings} >= {"record.revoked"}
    assert all("BER" in f.message for f in findings if f.check == "record.revoked")


@pytest.mark.asyncio
async def test_chip_revoked_by_serial_is_not_scheduled_or_registered(harness: Harness) -> None:
    h = harness
    await setup_germany(h)
    r = await h.post("/v1/revocations", {"kind": "chip", "match": "serial",
                                         "value": "S-chip-1", "reason": "stolen"})
    assert r.status_code == 200, r.text
    await h.service.tick(time.time_ns())
    assert not any(t["target_kind"] == "chip" for t in await poll(h, "BER"))
    r = await h.post("/v1/chips", h.fleet.chip_body("chip-1", {"allowed": ["DEU"]}))
    assert r.status_code == 422 and "revoked" in r.text
    bad = [({"kind": "landmark", "match": "serial", "value": "x", "reason": "r"},
            "only chip certificates carry a serial"),
           ({"kind": "chip", "match": "public_key", "value": "not-base64!", "reason": "r"},
            "base64")]
    for body, message in bad:
        r = await h.post("/v1/revocations", body)
        assert r.status_code == 422 and message in r.text, r.text
    assert len((await h.client.get("/v1/revocations", headers=h.admin)).json()["items"]) == 1


@pytest.mark.asyncio
async def test_tokens_expire_and_can_be_disabled(harness: Harness) -> None:
    h = harness
    r = await h.post("/v1/tokens", {"role": "admin", "label": "temp",
                                    "expires_unix_ns": time.time_ns() + 3600 * _NS})
    assert r.status_code == 200 and r.json()["expires_unix_ns"] is not None, r.text
    temp = {"Authorization": f"Bearer {r.json()['token']}"}
    assert (await h.client.get("/v1/tokens", headers=temp)).status_code == 200
    # The hour passes (moved in the database, so a slow machine cannot make this flaky).
    token_id = r.json()["token_id"]
    await h.service.db.run(lambda s: s.set_token_expiry(token_id, time.time_ns()))
    r = await h.client.get("/v1/tokens", headers=temp)
    assert r.status_code == 401 and "expired" in r.text
    r = await h.post("/v1/tokens", {"role": "admin", "label": "past", "expires_unix_ns": 1})
    assert r.status_code == 422
    leaked = await h.post("/v1/tokens", {"role": "admin", "label": "leaked"})
    secret, token_id = leaked.json()["token"], leaked.json()["token_id"]
    stolen = {"Authorization": f"Bearer {secret}"}
    r = await h.post(f"/v1/tokens/{token_id}/disable", {"reason": "leaked"}, headers=h.dashboard)
    assert r.status_code == 403
    r = await h.post(f"/v1/tokens/{token_id}/disable", {"reason": "leaked"})
    assert r.status_code == 200 and r.json()["disabled_by"] == "admin-t", r.text
    r = await h.post("/v1/revocations", {"kind": "chip", "match": "id", "value": "c",
                                         "reason": "by a leaked token"}, headers=stolen)
    assert r.status_code == 401 and "disabled" in r.text
    assert (await h.client.get("/v1/revocations", headers=h.admin)).json()["items"] == []
    assert (await h.post("/v1/tokens/999999/disable", {"reason": "x"})).status_code == 404
    listed = {t["label"]: t for t in (await h.client.get("/v1/tokens",
                                                         headers=h.admin)).json()["items"]}
    assert listed["leaked"]["disabled_reason"] == "leaked"
    assert listed["temp"]["expires_unix_ns"] is not None
    assert "token" not in listed["temp"]


def test_cli_revokes_disables_and_lists(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    config = tmp_path / "verifier.toml"
    config.write_text('[verifier]\ndata_dir = "data"\n', encoding="utf-8")
    base = ["verifier"]
    assert main([*base, "token", "--config", str(config), "--role", "admin", "--label", "ops",
                 "--expires-in-s", "3600"]) == 0
    capsys.readouterr()
    assert main([*base, "tokens", "--config", str(config)]) == 0
    tokens = json.loads(capsys.readouterr().out)["items"]
    assert tokens[0]["label"] == "ops" and tokens[0]["expires_unix_ns"] > time.time_ns()
    assert main([*base, "disable-token", "--config", str(config), "--token-id",
                 str(tokens[0]["token_id"]), "--reason", "rotated"]) == 0
    assert json.loads(capsys.readouterr().out)["disabled_by"] == "cli"
    assert main([*base, "disable-token", "--config", str(config), "--token-id", "42",
                 "--reason", "x"]) == 2
    assert "no token 42" in capsys.readouterr().err
    assert main([*base, "revoke", "--config", str(config), "--kind", "landmark", "--value",
                 "FRA", "--reason", "key leaked"]) == 0
    capsys.readouterr()
    assert main([*base, "revoke", "--config", str(config), "--kind", "landmark", "--match",
                 "serial", "--value", "x", "--reason", "r"]) == 2
    assert "only chip certificates carry a serial" in capsys.readouterr().err
    assert main([*base, "revocations", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    items = json.loads(out)["items"]
    assert [(i["kind"], i["value"]) for i in items] == [("landmark", "FRA")]
    listing = tmp_path / "revocations.json"
    listing.write_text(out, encoding="utf-8")
    from audit.cli import read_revocations

    assert [r.value for r in read_revocations(listing)] == ["FRA"]
