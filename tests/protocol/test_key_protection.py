"""Key provenance in chip certificates: the CA signs the level; old ones read as software."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.certs import ChipCertificate, issue_chip_certificate
from protocol.errors import CertificateError
from protocol.key_protection import KEY_PROTECTION_LEVELS, meets, stronger
from protocol.keys import SIGNATURE_BYTES, SoftwareSigner

NOW = 1_800_000_000
CA = SoftwareSigner(bytes(range(32)))
CHIP = SoftwareSigner(bytes(range(1, 33)))


def _cert(level: str = "software") -> ChipCertificate:
    return issue_chip_certificate(
        CA, chip_id="gpu-1", public_key=CHIP.public_key(), model="H100", serial="S1",
        not_before_unix_s=NOW - 10, not_after_unix_s=NOW + 10, key_protection=level)


def _v1_cert() -> ChipCertificate:
    """A certificate as the code before key levels wrote it (domain v1, no level)."""
    unsigned = ChipCertificate("gpu-1", CHIP.public_key(), "H100", "S1", NOW - 10, NOW + 10,
                               bytes(SIGNATURE_BYTES), version=1)
    return ChipCertificate("gpu-1", CHIP.public_key(), "H100", "S1", NOW - 10, NOW + 10,
                           CA.sign(unsigned.signed_bytes()), version=1)


@pytest.mark.parametrize("level", KEY_PROTECTION_LEVELS)
def test_every_level_is_signed_and_round_trips_key_protection(level: str) -> None:
    cert = _cert(level)
    parsed = ChipCertificate.from_json(json.loads(json.dumps(cert.to_json())))
    assert parsed == cert and parsed.key_protection == level and parsed.version == 2
    parsed.verify(CA.public_key(), NOW)


def test_raising_the_level_after_signing_breaks_the_key_protection_signature() -> None:
    forged = _cert("software").to_json() | {"key_protection": "gpu-attested"}
    with pytest.raises(CertificateError, match="not signed by CA"):
        ChipCertificate.from_json(forged).verify(CA.public_key(), NOW)


def test_old_certificate_reads_as_software_key_protection_and_still_verifies() -> None:
    old = _v1_cert()
    as_json = old.to_json()
    assert "key_protection" not in as_json  # byte-for-byte what the old code wrote
    parsed = ChipCertificate.from_json(as_json)
    assert parsed.key_protection == "software" and parsed.version == 1
    parsed.verify(CA.public_key(), NOW)
    # Adding a level to an old certificate makes it a v2 one whose signature no longer holds.
    with pytest.raises(CertificateError, match="not signed by CA"):
        ChipCertificate.from_json(as_json | {"key_protection": "software"}).verify(
            CA.public_key(), NOW)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"key_protection": "hsm"}, "must be one of software, tee-bound, gpu-attested"),
        ({"key_protection": 2}, "'key_protection' must be str"),
    ],
)
def test_unknown_key_protection_is_refused_clearly(change: dict[str, object],
                                                   message: str) -> None:
    with pytest.raises(CertificateError, match=message):
        ChipCertificate.from_json(_cert().to_json() | change)


def test_a_v1_certificate_cannot_claim_more_than_software_key_protection() -> None:
    with pytest.raises(CertificateError, match="only be read as software"):
        ChipCertificate("gpu-1", CHIP.public_key(), "H100", "S1", NOW, NOW + 1,
                        bytes(SIGNATURE_BYTES), key_protection="tee-bound", version=1)


@given(st.sampled_from(KEY_PROTECTION_LEVELS), st.sampled_from(KEY_PROTECTION_LEVELS))
def test_stronger_picks_one_of_the_two_and_meets_the_minimum(level: str, minimum: str) -> None:
    assert stronger(level, minimum) in (level, minimum) and meets(stronger(level, minimum),
                                                                  minimum)
