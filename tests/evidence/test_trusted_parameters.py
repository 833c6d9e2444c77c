"""What the offline audit trusts (issue 12, item 4): parameters it owns, a maximum record age,
and pinned keys.

Attacks, each audited `ok` before: an entry decided with `processing_floor_ms = 61` verifies a
chip in Shenzhen for Germany; a verdict rests on measurements an hour old; a bundle signed by a
forger's own CA and log key passes when nothing is pinned."""

from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from audit.parameters import MAX_PROCESSING_FLOOR_MS, MAX_RECORD_AGE_S, VERDICT_MARGIN_S
from audit.verify import verify_bundle
from geo.assess import assess
from geo.assessment import SolverParams
from geo.licence import licence_from_json
from geo.measurement import LandmarkRtt
from keystore.cert_files import read_ca_public_key
from lightfence.cli import main
from protocol.codec import to_b64
from protocol.keys import SoftwareSigner
from protocol.records import sign_record
from protocol.wire import sign_challenge, sign_response
from tests.evidence.test_log_signing import _setup
from tests.evidence.test_log_signing import run_round as signed_round
from tests.pki import Pki
from tests.verifier.conftest import open_harness
from tests.verifier.test_flow import GERMANY, KASSEL, rtt_from
from verifier.evidence import append_evidence, build_evidence, export_bundle
from verifier.translog import TransparencyLog

NS = 10**9
T0_S = 1_750_000_000
CHIP_ID = "chip-szx"
LANDMARKS = {"lm-fra": (50.11, 8.68), "lm-ber": (52.52, 13.40), "lm-muc": (48.14, 11.58)}
# A chip in Shenzhen: the vacuum bound alone is 58–61 ms from these landmarks, so 62–64 ms RTTs
# are physically possible from there and prove nothing about Germany.
SHENZHEN_RTT_MS = {"lm-fra": 62.4, "lm-ber": 63.0, "lm-muc": 63.4}
GERMANY_ONLY = {"allowed": ["DEU"], "prohibited": [], "tolerance_km": 0.0}


def _bundle(
    tmp: Path,
    *,
    params: SolverParams,
    policy: dict[str, Any],
    decided_after_s: float = 1.0,
    rtt_ms: dict[str, float] = SHENZHEN_RTT_MS,
    ca: SoftwareSigner | None = None,
) -> dict[str, Any]:
    """A bundle of one verdict entry, every signature genuine, decided with ``params``."""
    pki = Pki(ca=ca or SoftwareSigner.generate(), valid_unix_s=(T0_S - 86_400, T0_S + 86_400))
    ca, keys, log_key = pki.ca, pki.landmark_keys, SoftwareSigner.generate()
    chip_cert = pki.chip_certificate(CHIP_ID, serial="S")
    chip = pki.chip_keys[CHIP_ID]
    records, inputs, certs = [], [], []
    for i, (lm, (lat, lon)) in enumerate(sorted(LANDMARKS.items())):
        certs.append(pki.landmark_certificate(lm, lat, lon).to_json())
        nonce, issued = os.urandom(32), T0_S * NS + i * 1_000_000
        challenge = sign_challenge(
            keys[lm], landmark_id=lm, target_id=CHIP_ID, nonce=nonce, issued_unix_ns=issued,
            expires_unix_ns=issued + 5 * NS, sequence=1).encode()  # fmt: skip
        response = sign_response(chip, challenge, nonce).encode()
        records.append(sign_record(
            keys[lm], landmark_id=lm, target_kind="chip", target_id=CHIP_ID, nonce=nonce,
            sent_unix_ns=issued + 1000, rtt_ns=round(rtt_ms[lm] * 1e6), clock_source="kernel",
            challenge=challenge, response=response))  # fmt: skip
        inputs.append(LandmarkRtt(lm, lat, lon, round(rtt_ms[lm] * 1e6) / 1e6))
    assessment = assess(inputs, licence_from_json(GERMANY_ONLY), None, params)
    assert assessment.verdict is not None
    decided_ns = T0_S * NS + int(decided_after_s * NS)
    tmp.mkdir(parents=True, exist_ok=True)
    with TransparencyLog(tmp / "verifier.sqlite3") as log:
        append_evidence(log, build_evidence(
            chip_id=CHIP_ID, round_id="r1", decided_unix_ns=decided_ns,
            verdict=assessment.verdict.value, chip_certificate=chip_cert,
            landmark_certificates=certs, records=records, inputs=inputs, licence=GERMANY_ONLY,
            params=params, calibration=None, assessment=assessment, policy=policy,
            ca_public_key=ca.public_key()))  # fmt: skip
        bundle = export_bundle(
            log, CHIP_ID, 0, decided_ns, signer=log_key, sign_fresh_head=True,
            now_unix_s=decided_ns // NS + 1,
        )  # fmt: skip
    return {"bundle": bundle, "ca": ca.public_key(), "log_key": log_key.public_key(),
            "verdict": assessment.verdict.value}  # fmt: skip


def _findings(world: dict[str, Any]) -> dict[tuple[str, str], Any]:
    report = verify_bundle(
        world["bundle"], ca_public_key=world["ca"], log_public_key=world["log_key"]
    )
    return {(f.check, f.where): (f.expected, f.found) for f in report.findings}


ENTRY = "entries[0].entry"


def test_a_forged_processing_floor_cannot_verify_shenzhen_for_germany(tmp_path: Path) -> None:
    """The issue's reproduction: the verifier (or anyone with its log key) decides with a 61 ms
    floor; every signature is genuine and the entry recomputes to its own `verified`."""
    forged = _bundle(tmp_path, params=SolverParams(processing_floor_ms=61.0, resolution_km=10.0),
                     policy={"name": "default"})  # fmt: skip
    assert forged["verdict"] == "verified"
    findings = _findings(forged)
    assert findings[("parameters.solver", f"{ENTRY}.solver.params.processing_floor_ms")] == (
        0.0, 61.0)  # fmt: skip
    expected, found = findings[("verdict.recomputed", f"{ENTRY}.verdict")]
    assert found == "verified" and expected != "verified"


def test_a_policy_floor_beyond_the_audits_bound_is_a_finding(tmp_path: Path) -> None:
    """Writing the same floor into the entry's policy too does not help."""
    forged = _bundle(tmp_path, params=SolverParams(processing_floor_ms=61.0, resolution_km=10.0),
                     policy={"name": "default", "processing_floor_ms": 61.0})  # fmt: skip
    findings = _findings(forged)
    assert ("parameters.processing_floor", f"{ENTRY}.policy.processing_floor_ms") in findings
    assert ("verdict.recomputed", f"{ENTRY}.verdict") in findings


def test_a_floor_the_policy_states_within_the_bound_is_used(tmp_path: Path) -> None:
    """The legitimate floor: the policy's, at most MAX_PROCESSING_FLOOR_MS (honest Kassel RTTs)."""
    honest = {lm: rtt_from(LANDMARKS[lm], KASSEL) for lm in LANDMARKS}
    world = _bundle(
        tmp_path, params=SolverParams(processing_floor_ms=MAX_PROCESSING_FLOOR_MS,
                                      resolution_km=10.0),
        policy={"name": "default", "processing_floor_ms": MAX_PROCESSING_FLOOR_MS},
        rtt_ms=honest)  # fmt: skip
    assert _findings(world) == {}


@pytest.mark.parametrize(
    ("name", "value"),
    [("speed_km_per_s", 2 * 299_792.458), ("plausible_speed_km_per_s", 250_000.0),
     ("resolution_km", 0.05), ("margin_km", 3.0)],
)  # fmt: skip
def test_any_other_solver_parameter_in_an_entry_is_named(
    tmp_path: Path, name: str, value: float
) -> None:
    world = _bundle(tmp_path, params=SolverParams(resolution_km=10.0), policy={"name": "default"})
    world["bundle"]["entries"][0]["entry"]["solver"]["params"][name] = value
    assert ("parameters.solver", f"{ENTRY}.solver.params.{name}") in _findings(world)


def test_a_verdict_on_stale_records_is_a_finding(tmp_path: Path) -> None:
    honest = {lm: rtt_from(LANDMARKS[lm], KASSEL) for lm in LANDMARKS}
    params = SolverParams(resolution_km=10.0)
    fresh = _bundle(tmp_path / "a", params=params, policy={}, rtt_ms=honest,
                    decided_after_s=MAX_RECORD_AGE_S - 5)  # fmt: skip
    assert _findings(fresh) == {}
    stale = _bundle(tmp_path / "b", params=params, policy={}, rtt_ms=honest,
                    decided_after_s=3600.0)  # fmt: skip
    findings = _findings(stale)
    for i in range(len(LANDMARKS)):
        assert ("record.stale", f"{ENTRY}.records[{i}].sent_unix_ns") in findings
        # A stale record backs no solver input.
        assert ("input.rtt", f"{ENTRY}.inputs[{i}].rtt_ms") in findings


def test_a_self_signed_bundle_without_pins_fails_unless_asked_for(
    tmp_path: Path, capsys: Any
) -> None:
    """A forger's own CA, landmarks and log key: every signature checks against the bundle's own
    keys. Without pins that is a finding (exit 1); `--unpinned` looks anyway and says so."""
    honest = {lm: rtt_from(LANDMARKS[lm], KASSEL) for lm in LANDMARKS}
    forged = _bundle(tmp_path, params=SolverParams(resolution_km=10.0), policy={}, rtt_ms=honest)
    report = verify_bundle(forged["bundle"])
    assert {f.check for f in report.findings} == {"ca.unpinned", "log.unpinned"}
    assert not report.ok
    assert verify_bundle(forged["bundle"], allow_unpinned=True).ok
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(forged["bundle"]))
    assert main(["audit", "verify", str(path)]) == 1
    assert not json.loads(capsys.readouterr().out)["ok"]
    assert main(["audit", "verify", str(path), "--unpinned"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["ok"]
    assert "UNPINNED AUDIT: no --ca and --log-key" in captured.err
    # Pinning the real vendor CA exposes the forger's.
    vendor = SoftwareSigner.generate()
    ca_file = tmp_path / "vendor.pub.json"
    ca_file.write_text(json.dumps({"public_key_b64": to_b64(vendor.public_key())}))
    log_file = tmp_path / "log.pub.json"
    log_file.write_text(json.dumps({"public_key_b64": to_b64(forged["log_key"])}))
    assert main(["audit", "verify", str(path), "--ca", str(ca_file), "--log-key",
                 str(log_file)]) == 1  # fmt: skip
    checks = {f["check"] for f in json.loads(capsys.readouterr().out)["findings"]}
    assert {"ca.key", "chip_certificate.ca"} <= checks


@pytest.mark.asyncio
async def test_the_verifier_never_decides_on_records_the_audit_calls_stale(
    tmp_path: Path,
) -> None:
    """A round closed long after its answers (a stalled verifier): the old answers no longer
    count, so no `verified` rests on them, and the chip's bundle still audits clean."""
    async with open_harness(tmp_path, tree_head_interval_s=3600.0) as h:
        await _setup(h)
        await signed_round(h, "chip-1", KASSEL)  # closed at once: verified
        await h.service.tick(time.time_ns())  # the next round starts; every landmark answers
        for landmark_id, where in GERMANY.items():
            headers = await h.token("landmark", landmark_id)
            r = await h.client.get(f"/v1/landmarks/{landmark_id}/tasks?wait_s=0",
                                   headers=headers)  # fmt: skip
            if not any(t["target_id"] == "chip-1" for t in r.json()["tasks"]):
                continue
            record = h.fleet.record(landmark_id, "chip-1", rtt_from(where, KASSEL))
            r = await h.post("/v1/measurements", h.fleet.batch(landmark_id, [record]).to_json(),
                             headers)  # fmt: skip
            assert r.json()["accepted"] == 1, r.text
        late_s = MAX_RECORD_AGE_S + 100
        await h.service.tick(time.time_ns() + int(late_s * NS))  # the round closes this late
        verdicts = (await h.client.get("/v1/chips/chip-1/verdicts",
                                       headers=h.dashboard)).json()["items"]  # fmt: skip
        assert [v["verdict"] for v in verdicts].count("verified") == 1
        ca = h.fleet.ca.public_key()
    out = tmp_path / "bundle.json"
    assert main(["evidence", "export", "--chip", "chip-1", "--from", "0", "--to",
                 str(2**63 - 1), "--data-dir", str(tmp_path), "-o", str(out)]) == 0  # fmt: skip
    log_key = read_ca_public_key(tmp_path / "log.pub.json")
    report = verify_bundle(json.loads(out.read_text()), ca_public_key=ca, log_public_key=log_key)
    assert report.ok, report.findings


def test_unchanged_honest_bundle_passes_every_parameter_check(tmp_path: Path) -> None:
    world = _bundle(tmp_path, params=SolverParams(resolution_km=10.0), policy={"name": "x"},
                    rtt_ms={lm: rtt_from(LANDMARKS[lm], KASSEL) for lm in LANDMARKS})  # fmt: skip
    assert _findings(copy.deepcopy(world)) == {}


@pytest.mark.asyncio
async def test_a_round_may_not_outlast_the_record_age_limit(tmp_path: Path) -> None:
    """A round open longer than the audit's record age would decide on answers the audit calls
    stale (early answers of a round closed at its deadline), so such a policy is refused."""
    async with open_harness(tmp_path) as h:
        body = {"round_interval_s": 3600.0, "landmarks_per_round": 4, "dark_window_s": 86_400.0}
        refused = await h.client.put("/v1/policies/slow", headers=h.admin,
                                     json=body | {"round_timeout_s": MAX_RECORD_AGE_S})  # fmt: skip
        assert refused.status_code == 422, refused.text
        assert "round_timeout_s" in refused.text
        longest = MAX_RECORD_AGE_S - VERDICT_MARGIN_S
        accepted = await h.client.put("/v1/policies/slow", headers=h.admin,
                                      json=body | {"round_timeout_s": longest})  # fmt: skip
        assert accepted.status_code == 200, accepted.text
        assert [p["name"] for p in (await h.client.get(
            "/v1/policies", headers=h.admin)).json()["items"]].count("slow") == 1  # fmt: skip
