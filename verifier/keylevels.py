"""The key protection a chip's certificate states, read from the stored certificate JSON."""

from __future__ import annotations

from protocol.certs import ChipCertificate
from protocol.errors import CertificateError
from protocol.key_protection import LEGACY_KEY_PROTECTION
from verifier.model import Chip


def chip_key_protection(chip: Chip) -> str:
    """The level the CA signed into the chip's certificate (registration checked the signature);
    software for a version-1 certificate, and for anything unreadable (the weakest claim)."""
    try:
        return ChipCertificate.from_json(chip.certificate).key_protection
    except CertificateError:
        return LEGACY_KEY_PROTECTION
