"""Version-2 records name the round they were measured for (signed by the landmark): a bundle
of them verifies offline, and a verdict entry resting on records signed for another round is a
finding. Bundles of version-1 records (tests/evidence/test_bundle.py) verify as before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from audit.verify import verify_bundle
from keystore.key_files import generate_key_file
from protocol.certs import issue_chip_certificate, issue_landmark_certificate
from protocol.keys import SoftwareSigner
from protocol.records import MeasurementRecord, sign_record
from tests.evidence.test_bundle import CHIP_ID, LANDMARKS, LICENCE, T0_S, _round
from verifier.evidence import append_evidence, build_evidence, export_bundle
from verifier.translog import TransparencyLog

ENTRY_ROUND = "c-1700000000000-abc123-chip-0001"


def bundle_with_records_for(tmp: Path, signed_round_id: str) -> tuple[dict[str, Any], bytes,
                                                                        bytes]:
    """A one-verdict bundle for round ENTRY_ROUND whose records name `signed_round_id`."""
    ca, chip = SoftwareSigner.generate(), SoftwareSigner.generate()
    log_key = generate_key_file(tmp / "log.key")
    landmark_keys = {lm: SoftwareSigner.generate() for lm in LANDMARKS}
    chip_cert = issue_chip_certificate(
        ca, chip_id=CHIP_ID, public_key=chip.public_key(), model="H100", serial="S1",
        not_before_unix_s=T0_S - 86_400, not_after_unix_s=T0_S + 86_400)
    landmark_certs = [issue_landmark_certificate(
        ca, landmark_id=lm, public_key=landmark_keys[lm].public_key(), lat_deg=lat, lon_deg=lon,
        not_before_unix_s=T0_S - 86_400, not_after_unix_s=T0_S + 86_400).to_json()
        for lm, (lat, lon) in LANDMARKS.items()]
    r = _round(ca, chip, landmark_keys, T0_S * 10**9, 0)
    records = [_v2(landmark_keys[rec.landmark_id], rec, signed_round_id, task_id=100 + i)
               for i, rec in enumerate(r["records"])]
    log = TransparencyLog(tmp / "verifier.sqlite3")
    append_evidence(log, build_evidence(
        chip_id=CHIP_ID, round_id=ENTRY_ROUND, decided_unix_ns=r["decided_unix_ns"],
        verdict=r["assessment"].verdict.value, chip_certificate=chip_cert,
        landmark_certificates=landmark_certs, records=records, inputs=r["inputs"],
        licence=LICENCE, params=r["params"], calibration=None, assessment=r["assessment"],
        policy={"name": "default", "dark_window_s": 3600.0}, ca_public_key=ca.public_key()))
    bundle = export_bundle(log, CHIP_ID, T0_S * 10**9, (T0_S + 1000) * 10**9, signer=log_key,
                           sign_fresh_head=True, now_unix_s=T0_S + 300)
    log.close()
    return bundle, ca.public_key(), log_key.public_key()


def _v2(signer: SoftwareSigner, record: MeasurementRecord, round_id: str,
        task_id: int) -> MeasurementRecord:
    return sign_record(
        signer, landmark_id=record.landmark_id, target_kind=record.target_kind,
        target_id=record.target_id, nonce=record.nonce, sent_unix_ns=record.sent_unix_ns,
        rtt_ns=record.rtt_ns, clock_source=record.clock_source, challenge=record.challenge,
        response=record.response, round_id=round_id, task_id=task_id)


@pytest.mark.parametrize("signed_round_id", [ENTRY_ROUND, "c-1699999940000-ffffff-chip-0001"])
def test_records_signed_for_another_round_are_named(tmp_path: Path,
                                                    signed_round_id: str) -> None:
    bundle, ca, log_key = bundle_with_records_for(tmp_path, signed_round_id)
    records = bundle["entries"][0]["entry"]["records"]
    assert {r["round_id"] for r in records} == {signed_round_id}
    report = verify_bundle(bundle, ca_public_key=ca, log_public_key=log_key)
    findings = {(f.check, f.where) for f in report.findings}
    if signed_round_id == ENTRY_ROUND:
        assert report.ok and findings == set()
        assert report.counts["recomputed_verdicts"] == 1
    else:
        assert not report.ok
        assert {check for check, _ in findings} >= {"record.round"}
        assert {where for check, where in findings if check == "record.round"} == {
            f"entries[0].entry.records[{i}].round_id" for i in range(len(records))}
