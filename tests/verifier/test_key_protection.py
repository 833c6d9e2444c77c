"""The key rule end to end through the verifier API: a chip whose key protection is below the
policy's minimum is never `verified`, its verdict says why in machine-readable form, the
evidence bundle carries its level, and the offline audit recomputes the rule."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from audit.verify import AuditError, verify_bundle
from tests.verifier.conftest import Harness, open_harness
from tests.verifier.test_flow import GERMANY, KASSEL, rtt_from, run_round, setup_germany
from verifier import verdicts
from verifier.config import default_config
from verifier.errors import ConfigError


async def _bundle(h: Harness, chip_id: str) -> dict[str, Any]:
    assert h.service.tree_heads is not None
    h.service.tree_heads.sign_if_grown(int(time.time()))
    r = await h.client.get(f"/v1/chips/{chip_id}/evidence", headers=h.dashboard)
    assert r.status_code == 200, r.text
    bundle: dict[str, Any] = r.json()
    return bundle


def _pins(h: Harness) -> dict[str, Any]:
    """The keys an auditor pins: the vendor CA and the verifier's log key."""
    assert h.service.tree_heads is not None
    return {"ca_public_key": h.fleet.ca.public_key(),
            "log_public_key": h.service.tree_heads.public_key}


def _checks(report: Any) -> set[str]:
    return {finding.check for finding in report.findings}


async def _latest(h: Harness, chip_id: str) -> dict[str, Any]:
    r = await h.client.get(f"/v1/chips/{chip_id}/verdicts", headers=h.dashboard)
    item: dict[str, Any] = r.json()["items"][0]
    return item


@pytest.mark.asyncio
async def test_software_key_below_the_floor_is_untrusted_key_not_verified(tmp_path: Path) -> None:
    async with open_harness(tmp_path, min_key_protection="tee-bound") as h:
        await setup_germany(h)
        await run_round(h, "chip-1", KASSEL)  # inside Germany: the geometry alone says verified
        verdict = await _latest(h, "chip-1")
        assert verdict["verdict"] == "inconclusive"
        assert verdict["reason_code"] == "untrusted_key"
        assert verdict["key_protection"] == "software"
        assert verdict["assessment"]["verdict"] == "verified"
        assert "software key" in verdict["reason"] and "tee-bound" in verdict["reason"]
        chip = (await h.client.get("/v1/chips/chip-1", headers=h.dashboard)).json()
        assert chip["state"] == "inconclusive" and chip["key_protection"] == "software"

        bundle = await _bundle(h, "chip-1")
        entry = bundle["entries"][-1]["entry"]
        assert entry["key_protection"] == "software"
        assert entry["chip_certificate"]["key_protection"] == "software"
        assert entry["policy"]["min_key_protection"] == "tee-bound"
        assert entry["reason_code"] == "untrusted_key"
        report = verify_bundle(bundle, **_pins(h))
        assert report.ok, report.to_json()


@pytest.mark.asyncio
async def test_software_key_accepted_by_policy_is_verified_and_says_software_key(
    harness: Harness,
) -> None:
    h = harness  # the test harness accepts software keys (floor software)
    await setup_germany(h)
    await run_round(h, "chip-1", KASSEL)
    verdict = await _latest(h, "chip-1")
    assert verdict["verdict"] == "verified" and verdict["reason_code"] is None
    assert verdict["key_protection"] == "software"
    assert "software key" in verdict["reason"]
    bundle = await _bundle(h, "chip-1")
    assert verify_bundle(bundle, **_pins(h)).ok
    # An auditor who accepts no software key finds the verified wanting, and says why.
    strict = verify_bundle(bundle, **_pins(h), min_key_protection="tee-bound")
    assert {"policy.min_key_protection", "verdict.recomputed", "verdict.key_rule"} <= _checks(
        strict)
    with pytest.raises(AuditError, match="min_key_protection must be one of"):
        verify_bundle(bundle, **_pins(h), min_key_protection="hardware")


@pytest.mark.asyncio
async def test_tee_bound_key_meets_the_floor_and_a_stricter_policy_holds_it_back(
    tmp_path: Path,
) -> None:
    async with open_harness(tmp_path, min_key_protection="tee-bound") as h:
        strict = {"round_interval_s": 60.0, "landmarks_per_round": 4, "round_timeout_s": 600.0,
                  "dark_window_s": 86_400.0, "min_key_protection": "gpu-attested"}
        r = await h.client.put("/v1/policies/strict", headers=h.admin, json=strict)
        assert r.status_code == 200, r.text
        assert r.json()["effective_min_key_protection"] == "gpu-attested"
        await setup_germany(h)
        for chip_id, policy in (("chip-2", "default"), ("chip-3", "strict")):
            body = h.fleet.chip_body(chip_id, {"allowed": ["DEU"]}, policy=policy,
                                     key_protection="tee-bound")
            assert (await h.post("/v1/chips", body)).status_code == 200
        await run_rounds(h, {"chip-2": KASSEL, "chip-3": KASSEL})
        verdict = await _latest(h, "chip-2")
        assert verdict["verdict"] == "verified" and verdict["key_protection"] == "tee-bound"
        assert "software key" not in verdict["reason"]
        verdict = await _latest(h, "chip-3")  # same key, same place, a policy asking for more
        assert verdict["verdict"] == "inconclusive" and verdict["reason_code"] == "untrusted_key"
        assert verify_bundle(await _bundle(h, "chip-2"), **_pins(h)).ok
        assert verify_bundle(await _bundle(h, "chip-3"), **_pins(h)).ok


async def run_rounds(h: Harness, positions: dict[str, tuple[float, float]]) -> None:
    """One round for several chips at once: every landmark answers every task it holds."""
    await h.service.tick(time.time_ns())
    for landmark_id, where in GERMANY.items():
        headers = await h.token("landmark", landmark_id)
        r = await h.client.get(f"/v1/landmarks/{landmark_id}/tasks?wait_s=0", headers=headers)
        records = [h.fleet.record(landmark_id, t["target_id"],
                                  rtt_from(where, positions[t["target_id"]]))
                   for t in r.json()["tasks"] if t["target_id"] in positions]
        if records:
            batch = h.fleet.batch(landmark_id, records)
            assert (await h.post("/v1/measurements", batch.to_json(), headers)).status_code == 200
    await h.service.tick(time.time_ns())


@pytest.mark.asyncio
async def test_audit_finds_a_verified_that_ignored_the_key_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A verifier that applies no key rule (patched out here) writes a `verified` for a software
    key under a tee-bound minimum; its own log convicts it."""
    monkeypatch.setattr(verdicts, "meets", lambda level, minimum: True)
    async with open_harness(tmp_path, min_key_protection="tee-bound") as h:
        await setup_germany(h)
        await run_round(h, "chip-1", KASSEL)
        assert (await _latest(h, "chip-1"))["verdict"] == "verified"
        report = verify_bundle(await _bundle(h, "chip-1"), **_pins(h))
    findings = {f.check: f for f in report.findings}
    assert set(findings) == {"verdict.recomputed", "verdict.key_rule"}
    assert findings["verdict.recomputed"].expected == "inconclusive"
    assert findings["verdict.recomputed"].found == "verified"
    assert findings["verdict.key_rule"].expected == "untrusted_key"


@pytest.mark.asyncio
async def test_bad_key_protection_values_are_refused_and_nothing_changes(
    harness: Harness,
) -> None:
    h = harness
    policy = {"round_interval_s": 60.0, "landmarks_per_round": 4, "round_timeout_s": 10.0,
              "dark_window_s": 600.0, "min_key_protection": "tee-bound"}
    assert (await h.client.put("/v1/policies/p", headers=h.admin, json=policy)).status_code == 200
    r = await h.client.put("/v1/policies/p", headers=h.admin,
                           json={**policy, "min_key_protection": "hardware"})
    assert r.status_code == 422 and "gpu-attested" in r.text
    listed = (await h.client.get("/v1/policies", headers=h.dashboard)).json()["items"]
    assert next(p for p in listed if p["name"] == "p")["min_key_protection"] == "tee-bound"
    body = h.fleet.chip_body("chip-x", {"allowed": ["DEU"]})
    body["certificate"]["key_protection"] = "gpu-attested"  # claimed after the CA signed
    r = await h.post("/v1/chips", body)
    assert r.status_code == 422 and "not signed by CA" in r.text
    assert (await h.client.get("/v1/chips/chip-x", headers=h.dashboard)).status_code == 404
    with pytest.raises(ConfigError, match="min_key_protection must be one of"):
        default_config(min_key_protection="hsm")
    assert default_config().min_key_protection == "tee-bound"  # production refuses file keys
