"""End to end: real keys, certificates, challenges, responses and records → geo verdict →
evidence log → bundle → offline audit; then tampering, each caught and named."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

from audit.verify import verify_bundle
from geo.assess import assess
from geo.assessment import SolverParams
from geo.geodesy import distance_km, vacuum_rtt_ms
from geo.licence import licence_from_json
from geo.measurement import LandmarkRtt
from keystore.key_files import generate_key_file
from lightfence.cli import main
from protocol.codec import from_b64, to_b64
from protocol.keys import SoftwareSigner
from protocol.merkle import verify_consistency
from protocol.records import MeasurementRecord, sign_record
from protocol.wire import sign_challenge, sign_response
from tests.pki import Pki
from verifier.evidence import append_evidence, build_alert_evidence, build_evidence, export_bundle
from verifier.translog import TransparencyLog

CHIP_ID = "chip-0001"
CHIP_LAT, CHIP_LON = 50.11, 8.68  # Frankfurt
LANDMARKS = {  # id -> (lat, lon)
    "lm-fra": (50.05, 8.60),
    "lm-cgn": (50.94, 6.96),
    "lm-muc": (48.14, 11.58),
    "lm-ber": (52.52, 13.40),
}
T0_S = 1_750_000_000
LICENCE = {"allowed": ["DEU"], "prohibited": [], "tolerance_km": 0.0}


def _round(
    ca: SoftwareSigner, chip: SoftwareSigner, landmark_keys: dict[str, SoftwareSigner],
    start_ns: int, round_no: int,
) -> dict[str, Any]:  # fmt: skip
    records: list[MeasurementRecord] = []
    inputs: list[LandmarkRtt] = []
    for i, (landmark_id, (lat, lon)) in enumerate(sorted(LANDMARKS.items())):
        signer = landmark_keys[landmark_id]
        nonce = os.urandom(32)
        issued = start_ns + i * 1_000_000
        challenge = sign_challenge(
            signer, landmark_id=landmark_id, target_id=CHIP_ID, nonce=nonce,
            issued_unix_ns=issued, expires_unix_ns=issued + 5_000_000_000, sequence=round_no,
        ).encode()  # fmt: skip
        response = sign_response(chip, challenge, nonce).encode()
        # A plausible fibre RTT: 1.6× the vacuum bound plus 0.2 ms of stack.
        rtt_ns = round((vacuum_rtt_ms(distance_km(lat, lon, CHIP_LAT, CHIP_LON)) * 1.6 + 0.2) * 1e6)
        record = sign_record(
            signer, landmark_id=landmark_id, target_kind="chip", target_id=CHIP_ID, nonce=nonce,
            sent_unix_ns=issued + 1000, rtt_ns=rtt_ns, clock_source="kernel",
            challenge=challenge, response=response,
        )  # fmt: skip
        records.append(record)
        inputs.append(LandmarkRtt(landmark_id, lat, lon, rtt_ns / 1e6))
    params = SolverParams(resolution_km=10.0)
    assessment = assess(inputs, licence_from_json(LICENCE), None, params)
    assert assessment.verdict is not None
    return {
        "records": records,
        "inputs": inputs,
        "params": params,
        "assessment": assessment,
        "decided_unix_ns": start_ns + 1_000_000_000,
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A small real run: two verdict rounds and an alert, logged and exported."""
    tmp = tmp_path_factory.mktemp("evidence")
    pki = Pki(valid_unix_s=(T0_S - 86_400, T0_S + 86_400 * 365))
    log_key = generate_key_file(tmp / "log.key")  # where `evidence export` finds it
    chip_cert = pki.chip_certificate(CHIP_ID, serial="S1")
    landmark_certs = [
        pki.landmark_certificate(lm, lat, lon) for lm, (lat, lon) in LANDMARKS.items()
    ]
    ca, chip, landmark_keys = pki.ca, pki.chip_keys[CHIP_ID], pki.landmark_keys
    log = TransparencyLog(tmp / "verifier.sqlite3")
    log.append(b"an unrelated entry", chip_id="other-chip", time_unix_ns=T0_S * 10**9)
    indices = []
    for round_no in range(2):
        start_ns = (T0_S + 60 * round_no) * 10**9
        r = _round(ca, chip, landmark_keys, start_ns, round_no)
        evidence = build_evidence(
            chip_id=CHIP_ID, round_id=f"r{round_no}", decided_unix_ns=r["decided_unix_ns"],
            verdict=r["assessment"].verdict.value, chip_certificate=chip_cert,
            landmark_certificates=[c.to_json() for c in landmark_certs], records=r["records"],
            inputs=r["inputs"], licence=LICENCE, params=r["params"], calibration=None,
            assessment=r["assessment"], policy={"name": "default", "dark_window_s": 3600.0},
            ca_public_key=ca.public_key(),
        )  # fmt: skip
        indices.append(append_evidence(log, evidence))
        log.sign_tree_head(log_key, T0_S + 60 * round_no + 2)
    alert = {"alert_id": 7, "type": "went_dark", "subject_id": CHIP_ID, "message": "no answer"}
    append_evidence(
        log, build_alert_evidence(alert, chip_id=CHIP_ID, time_unix_ns=(T0_S + 200) * 10**9)
    )
    bundle = export_bundle(
        log, CHIP_ID, T0_S * 10**9, (T0_S + 1000) * 10**9, signer=log_key, sign_fresh_head=True,
        now_unix_s=T0_S + 300,
    )  # fmt: skip
    log.close()
    return {
        "bundle": bundle,
        "ca": ca.public_key(),
        "log_key": log_key.public_key(),
        "indices": indices,
        "dir": tmp,
        "verdicts": [e["entry"]["verdict"] for e in bundle["entries"][:2]],
    }


def _audit(bundle: dict[str, Any], run: dict[str, Any]) -> list[tuple[str, str]]:
    report = verify_bundle(bundle, ca_public_key=run["ca"], log_public_key=run["log_key"])
    return [(f.check, f.where) for f in report.findings]


def test_real_bundle_verifies(run: dict[str, Any]) -> None:
    bundle = run["bundle"]
    assert [e["index"] for e in bundle["entries"]] == [1, 2, 3]
    assert len(bundle["tree_heads"]) == 2 and bundle["consistency_proofs"]
    report = verify_bundle(bundle, ca_public_key=run["ca"], log_public_key=run["log_key"])
    assert report.findings == ()
    assert report.counts["recomputed_verdicts"] == 2
    assert report.counts["records"] == 8
    assert report.ok


def test_bundle_round_trips_through_json_and_the_cli(run: dict[str, Any], capsys: Any) -> None:
    path = run["dir"] / "bundle.json"
    path.write_text(json.dumps(run["bundle"], indent=1))
    ca_file = run["dir"] / "ca.pub"
    ca_file.write_text(json.dumps({"public_key_b64": to_b64(run["ca"])}))
    log_file = run["dir"] / "log.pub"
    log_file.write_text(json.dumps({"public_key_b64": to_b64(run["log_key"])}))
    pins = ["--ca", str(ca_file), "--log-key", str(log_file)]
    assert main(["audit", "verify", str(path), *pins]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    tampered = copy.deepcopy(run["bundle"])
    tampered["entries"][0]["entry"]["verdict"] = "violation"
    path.write_text(json.dumps(tampered))
    assert main(["audit", "verify", str(path), *pins]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    named = [f for f in report["findings"] if f["check"] == "verdict.recomputed"]
    assert len(named) == 1
    assert named[0]["where"] == "entries[0].entry.verdict"
    assert named[0]["entry_index"] == 1
    assert (named[0]["expected"], named[0]["found"]) == (run["verdicts"][0], "violation")


def _flip_b64(value: str, byte_index: int) -> str:
    data = bytearray(from_b64(value, "field"))
    data[byte_index] ^= 0x01
    return to_b64(bytes(data))


RECORD = "entries[0].entry.records[1]"


def _flip_first(proof: list[str]) -> list[str]:
    return [_flip_b64(proof[0], 0), *proof[1:]]


# (path inside bundle["entries"][0], change, the finding that must name it)
TAMPERING: dict[str, tuple[tuple[str | int, ...], Any, tuple[str, str]]] = {
    "measurement rtt": (
        ("entry", "records", 1, "rtt_ns"), lambda v: v - 1,
        ("record.landmark_signature", f"{RECORD}.signature_b64"),
    ),
    "record signature": (
        ("entry", "records", 1, "signature_b64"), lambda v: _flip_b64(v, 5),
        ("record.landmark_signature", f"{RECORD}.signature_b64"),
    ),
    "chip signature": (
        ("entry", "records", 1, "response_b64"), lambda v: _flip_b64(v, 60),
        ("response.chip_signature", f"{RECORD}.response_b64"),
    ),
    "challenge byte": (
        ("entry", "records", 1, "challenge_b64"), lambda v: _flip_b64(v, 40),
        ("challenge.landmark_signature", f"{RECORD}.challenge_b64"),
    ),
    "landmark position": (
        ("entry", "landmark_certificates", 0, "lat_deg"), lambda v: v + 0.5,
        ("landmark_certificate.ca", "entries[0].entry.landmark_certificates[0].ca_signature_b64"),
    ),
    "input position": (
        ("entry", "inputs", 2, "lon_deg"), lambda v: v + 0.5,
        ("input.position", "entries[0].entry.inputs[2].lat_deg"),
    ),
    "input rtt": (
        ("entry", "inputs", 0, "rtt_ms"), lambda v: v / 2,
        ("input.rtt", "entries[0].entry.inputs[0].rtt_ms"),
    ),
    "verdict": (
        ("entry", "verdict"), lambda v: "violation" if v != "violation" else "verified",
        ("verdict.recomputed", "entries[0].entry.verdict"),
    ),
    "assessment area": (
        ("entry", "assessment", "sound_area_km2"), lambda v: 1.0,
        ("assessment.recomputed", "entries[0].entry.assessment.sound_area_km2"),
    ),
    "chip certificate": (
        ("entry", "chip_certificate", "serial"), lambda v: "S2",
        ("chip_certificate.ca", "entries[0].entry.chip_certificate.ca_signature_b64"),
    ),
    "inclusion proof": (
        ("inclusion_proof_b64",), _flip_first,
        ("entry.inclusion", "entries[0].inclusion_proof_b64"),
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_tampering_is_detected_and_named(run: dict[str, Any], case: str) -> None:
    path, change, expected = TAMPERING[case]
    bundle = copy.deepcopy(run["bundle"])
    parent = bundle["entries"][0]
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = change(parent[path[-1]])
    findings = _audit(bundle, run)
    assert expected in findings
    if expected[0] != "entry.inclusion":
        # Any change to an entry also changes its leaf hash: the log no longer vouches for it.
        assert ("entry.inclusion", "entries[0].inclusion_proof_b64") in findings


def test_tampered_tree_heads_and_proofs_are_named(run: dict[str, Any]) -> None:
    bundle = copy.deepcopy(run["bundle"])
    head = bundle["tree_heads"][1]
    head["root_b64"] = _flip_b64(head["root_b64"], 3)
    assert ("tree_head.signature", "tree_heads[1].signature_b64") in _audit(bundle, run)

    bundle = copy.deepcopy(run["bundle"])
    proof = bundle["consistency_proofs"][0]["proof_b64"]
    proof[0] = _flip_b64(proof[0], 31)
    assert ("consistency.proof", "consistency_proofs[0].proof_b64") in _audit(bundle, run)

    bundle = copy.deepcopy(run["bundle"])
    bundle["entries"].reverse()
    assert ("entry.order", "entries[1].index") in _audit(bundle, run)

    other = SoftwareSigner.generate().public_key()
    report = verify_bundle(run["bundle"], ca_public_key=run["ca"], log_public_key=other)
    assert {f.check for f in report.findings} >= {"log.key", "tree_head.signature"}
    report = verify_bundle(run["bundle"], ca_public_key=other, log_public_key=run["log_key"])
    assert {f.check for f in report.findings} >= {"ca.key", "chip_certificate.ca"}


def test_replayed_record_is_named(run: dict[str, Any]) -> None:
    bundle = copy.deepcopy(run["bundle"])
    first, second = bundle["entries"][0]["entry"], bundle["entries"][1]["entry"]
    second["records"][0] = copy.deepcopy(first["records"][0])
    assert ("record.replay", "entries[1].entry.records[0].nonce_b64") in _audit(bundle, run)


def test_removed_or_reordered_entries_break_consistency(tmp_path: Path) -> None:
    key = SoftwareSigner.generate()
    entries = [b"verdict-%d" % i for i in range(10)]
    with TransparencyLog(tmp_path / "genuine.db") as genuine:
        for e in entries[:6]:
            genuine.append(e)
        published = genuine.sign_tree_head(key, T0_S)
    forgeries = {
        "removed": entries[:2] + entries[3:],
        "reordered": [entries[1], entries[0], *entries[2:]],
    }
    for name, forged_entries in forgeries.items():
        with TransparencyLog(tmp_path / f"{name}.db") as forged:
            for e in forged_entries:
                forged.append(e)
            later = forged.sign_tree_head(key, T0_S + 60)
            proof = forged.consistency_proof(published.tree_size, later.tree_size)
        with pytest.raises(Exception, match="consistency proof"):
            verify_consistency(
                published.tree_size, later.tree_size, published.root, later.root, proof
            )


def test_export_cli_reads_the_data_dir(run: dict[str, Any], capsys: Any) -> None:
    out = run["dir"] / "exported.json"
    code = main(
        ["evidence", "export", "--chip", CHIP_ID, "--from", "2025-06-15T00:00:00Z",
         "--to", str((T0_S + 1000) * 10**9), "--data-dir", str(run["dir"]), "-o", str(out)]
    )  # fmt: skip
    assert code == 0, capsys.readouterr()
    exported = json.loads(out.read_text())
    assert [e["index"] for e in exported["entries"]] == [1, 2, 3]
    assert verify_bundle(exported, ca_public_key=run["ca"], log_public_key=run["log_key"]).ok
    missing = main(
        ["evidence", "export", "--chip", CHIP_ID, "--from", "0", "--to", "1",
         "--data-dir", str(run["dir"] / "nowhere"), "-o", str(out)]
    )  # fmt: skip
    assert missing == 2
    assert "no verifier database" in capsys.readouterr().err
