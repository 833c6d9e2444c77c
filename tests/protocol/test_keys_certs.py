"""Signatures and certificates (the key files themselves: tests/keystore)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keystore.cert_files import load_chip_certificate, load_landmark_certificate, write_certificate
from protocol.certs import (
    ChipCertificate,
    LandmarkCertificate,
    issue_chip_certificate,
    issue_landmark_certificate,
)
from protocol.errors import CertificateError, SignatureError
from protocol.keys import SoftwareSigner, verify_signature

CA = SoftwareSigner(bytes(range(64, 96)))
CHIP = SoftwareSigner(bytes(range(32, 64)))


def test_verify_signature_rejects_bad_lengths() -> None:
    with pytest.raises(SignatureError, match="public key must be 32"):
        verify_signature(b"short", b"m", bytes(64))
    with pytest.raises(SignatureError, match="signature must be 64"):
        verify_signature(CHIP.public_key(), b"m", b"x")


def chip_cert() -> ChipCertificate:
    return issue_chip_certificate(
        CA, chip_id="gpu-0", public_key=CHIP.public_key(), model="H100", serial="S1",
        not_before_unix_s=1000, not_after_unix_s=2000,
    )


def test_chip_certificate_verifies_and_round_trips(tmp_path: Path) -> None:
    cert = chip_cert()
    cert.verify(CA.public_key(), 1500)
    assert ChipCertificate.from_json(json.loads(json.dumps(cert.to_json()))) == cert
    write_certificate(tmp_path / "c.json", cert)
    assert load_chip_certificate(tmp_path / "c.json") == cert


def test_chip_certificate_outside_validity_or_wrong_ca() -> None:
    cert = chip_cert()
    with pytest.raises(CertificateError, match="not valid before"):
        cert.verify(CA.public_key(), 999)
    with pytest.raises(CertificateError, match="expired"):
        cert.verify(CA.public_key(), 2001)
    with pytest.raises(CertificateError, match="not signed by CA"):
        cert.verify(CHIP.public_key(), 1500)


def test_tampered_chip_certificate_fails() -> None:
    obj = chip_cert().to_json()
    obj["serial"] = "S2"
    with pytest.raises(CertificateError, match="not signed by CA"):
        ChipCertificate.from_json(obj).verify(CA.public_key(), 1500)


def test_landmark_certificate(tmp_path: Path) -> None:
    cert = issue_landmark_certificate(
        CA, landmark_id="lm-1", public_key=CHIP.public_key(), lat_deg=52.5, lon_deg=13.4,
        not_before_unix_s=0, not_after_unix_s=10,
    )
    cert.verify(CA.public_key(), 5)
    write_certificate(tmp_path / "l.json", cert)
    assert load_landmark_certificate(tmp_path / "l.json") == cert
    obj = cert.to_json()
    obj["lat_deg"] = 52.6
    with pytest.raises(CertificateError, match="not signed by CA"):
        LandmarkCertificate.from_json(obj).verify(CA.public_key(), 5)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"kind": "landmark"}, "not a chip certificate"),
        ({"chip_id": "bad id"}, "invalid chip id"),
        ({"public_key_b64": "!!"}, "not valid base64"),
        ({"not_after_unix_s": True}, "must be int"),
    ],
)
def test_malformed_chip_certificate_json(patch: dict[str, object], message: str) -> None:
    with pytest.raises(CertificateError, match=message):
        ChipCertificate.from_json({**chip_cert().to_json(), **patch})


def test_landmark_certificate_rejects_bad_coordinates() -> None:
    with pytest.raises(CertificateError, match="latitude"):
        issue_landmark_certificate(
            CA, landmark_id="lm-1", public_key=CHIP.public_key(), lat_deg=91.0, lon_deg=0.0,
            not_before_unix_s=0, not_after_unix_s=10,
        )
