"""The solver version in verdict evidence is geo's SOLVER_VERSION; entries written before geo
owned it carry the package version (0.1.0) and still audit as decided by solver 1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from audit.verify import verify_bundle
from geo.version import SOLVER_VERSION, solver_version
from keystore.key_files import generate_key_file
from protocol.certs import issue_chip_certificate, issue_landmark_certificate
from protocol.keys import SoftwareSigner
from tests.evidence.test_bundle import CHIP_ID, LANDMARKS, LICENCE, T0_S, _round
from verifier import evidence as evidence_module
from verifier.evidence import append_evidence, build_evidence, export_bundle
from verifier.translog import TransparencyLog


def _one_round_bundle(tmp: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    ca, chip = SoftwareSigner.generate(), SoftwareSigner.generate()
    log_key = generate_key_file(tmp / "log.key")
    landmark_keys = {lm: SoftwareSigner.generate() for lm in LANDMARKS}
    not_before_unix_s, not_after_unix_s = T0_S - 86_400, T0_S + 86_400
    chip_cert = issue_chip_certificate(
        ca, chip_id=CHIP_ID, public_key=chip.public_key(), model="H100", serial="S1",
        not_before_unix_s=not_before_unix_s, not_after_unix_s=not_after_unix_s,
    )  # fmt: skip
    landmark_certs = [
        issue_landmark_certificate(
            ca, landmark_id=lm, public_key=landmark_keys[lm].public_key(), lat_deg=lat,
            lon_deg=lon, not_before_unix_s=not_before_unix_s, not_after_unix_s=not_after_unix_s,
        ).to_json()
        for lm, (lat, lon) in LANDMARKS.items()
    ]  # fmt: skip
    log = TransparencyLog(tmp / "verifier.sqlite3")
    r = _round(ca, chip, landmark_keys, T0_S * 10**9, 0)
    entry = build_evidence(
        chip_id=CHIP_ID, round_id="r0", decided_unix_ns=r["decided_unix_ns"],
        verdict=r["assessment"].verdict.value, chip_certificate=chip_cert,
        landmark_certificates=landmark_certs, records=r["records"], inputs=r["inputs"],
        licence=LICENCE, params=r["params"], calibration=None, assessment=r["assessment"],
        policy={"name": "default", "dark_window_s": 3600.0}, ca_public_key=ca.public_key(),
    )  # fmt: skip
    append_evidence(log, entry)
    log.sign_tree_head(log_key, T0_S + 2)
    bundle = export_bundle(
        log, CHIP_ID, T0_S * 10**9, (T0_S + 100) * 10**9, signer=log_key, sign_fresh_head=True,
        now_unix_s=T0_S + 10,
    )  # fmt: skip
    log.close()
    return bundle, {"ca_public_key": ca.public_key(), "log_public_key": log_key.public_key()}


def test_new_evidence_states_geo_solver_version(tmp_path: Path) -> None:
    bundle, pins = _one_round_bundle(tmp_path)
    assert bundle["entries"][0]["entry"]["solver"]["version"] == SOLVER_VERSION
    report = verify_bundle(bundle, **pins)
    assert report.ok and report.counts["recomputed_verdicts"] == 1
    assert not [n for n in report.notes if "decided by solver" in n]


@pytest.mark.parametrize(("stated", "noted"), [("0.1.0", False), ("0", True)])
def test_evidence_stating_the_package_version_still_audits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stated: str, noted: bool
) -> None:
    """Entries logged before geo owned the version say 0.1.0 (lightfence.__version__): the same
    solver, so no note; any other version is recomputed too, with a note."""
    monkeypatch.setattr(evidence_module, "SOLVER_VERSION", stated)
    bundle, pins = _one_round_bundle(tmp_path)
    assert bundle["entries"][0]["entry"]["solver"]["version"] == stated
    report = verify_bundle(bundle, **pins)
    assert report.ok and report.counts["recomputed_verdicts"] == 1
    notes = [n for n in report.notes if "decided by solver" in n]
    assert bool(notes) is noted
    assert (solver_version(stated) == SOLVER_VERSION) is not noted
