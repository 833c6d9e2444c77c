"""The certificates a verdict entry carries: the CA key they are checked with, and the CA's
signature on the chip certificate and on each landmark certificate (keys and positions).

Validity windows are not judged here: the verifier judges them per record at its send time, so
the audit does too (`audit.records`), and a certificate that expired between a measurement and
its verdict still backs it in both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from audit.report import AuditState
from protocol.certs import ChipCertificate, LandmarkCertificate
from protocol.codec import from_b64, to_b64
from protocol.errors import ProtocolError, SignatureError
from protocol.keys import PUBLIC_KEY_BYTES, verify_signature


def trusted_ca_key(
    audit: AuditState, where: str, index: int, entry: Mapping[str, Any], pinned: bytes | None
) -> bytes | None:
    """The CA key to check certificates with: the pinned one (a finding when the entry names
    another), else the entry's (a finding unless unpinned audits are allowed), else None."""
    stated = entry.get("ca_public_key_b64")
    if pinned is not None:
        if stated is not None and stated != to_b64(pinned):
            audit.fail(
                "ca.key",
                f"{where}.ca_public_key_b64",
                "the verifier trusted a different CA than the one pinned",
                entry=index,
                expected=to_b64(pinned),
                found=stated,
            )
        return pinned
    if stated is None:
        audit.fail(
            "ca.key",
            f"{where}.ca_public_key_b64",
            "no CA key in the evidence and none pinned (--ca); certificates cannot be checked",
            entry=index,
        )
        return None
    audit.unpinned("ca", f"{where}.ca_public_key_b64", "--ca")
    try:
        return from_b64(stated, "ca_public_key_b64", PUBLIC_KEY_BYTES)
    except ProtocolError as exc:
        audit.fail("ca.key", f"{where}.ca_public_key_b64", str(exc), entry=index)
        return None


def check_chip_certificate(
    audit: AuditState,
    where: str,
    index: int,
    entry: Mapping[str, Any],
    *,
    chip_id: Any,
    ca: bytes | None,
) -> ChipCertificate | None:
    """The entry's chip certificate, for ``chip_id`` and signed by ``ca``; None if unreadable."""
    path = f"{where}.chip_certificate"
    try:
        cert = ChipCertificate.from_json(entry.get("chip_certificate"))
    except ProtocolError as exc:
        audit.fail("chip_certificate.format", path, str(exc), entry=index)
        return None
    if cert.chip_id != chip_id or entry.get("chip_id") != chip_id:
        audit.fail(
            "chip_certificate.chip",
            f"{path}.chip_id",
            "certificate is for another chip",
            entry=index,
            expected=chip_id,
            found=cert.chip_id,
        )
    _check_ca_signature(audit, cert, ca, check="chip_certificate.ca", path=path, index=index)
    return cert


def check_landmark_certificates(
    audit: AuditState,
    where: str,
    index: int,
    entry: Mapping[str, Any],
    *,
    ca: bytes | None,
) -> dict[str, LandmarkCertificate]:
    """The entry's landmark certificates by id, each checked for the CA's signature."""
    raw = entry.get("landmark_certificates")
    if not isinstance(raw, list):
        audit.fail("entry.format", f"{where}.landmark_certificates", "must be a list", entry=index)
        return {}
    certs: dict[str, LandmarkCertificate] = {}
    for i, item in enumerate(raw):
        path = f"{where}.landmark_certificates[{i}]"
        try:
            cert = LandmarkCertificate.from_json(item)
        except ProtocolError as exc:
            audit.fail("landmark_certificate.format", path, str(exc), entry=index)
            continue
        if cert.landmark_id in certs:
            audit.fail(
                "landmark_certificate.duplicate",
                f"{path}.landmark_id",
                "two certificates for one landmark",
                entry=index,
                expected=None,
                found=cert.landmark_id,
            )
        _check_ca_signature(
            audit, cert, ca, check="landmark_certificate.ca", path=path, index=index
        )
        certs[cert.landmark_id] = cert
    return certs


def _check_ca_signature(
    audit: AuditState,
    cert: ChipCertificate | LandmarkCertificate,
    ca: bytes | None,
    *,
    check: str,
    path: str,
    index: int,
) -> None:
    """The CA's signature only (none to check without a CA key): validity is judged per record
    at its send time (the verifier's rule), so a certificate that expired after the
    measurement still backs it."""
    if ca is None:
        return
    try:
        verify_signature(ca, cert.signed_bytes(), cert.ca_signature)
        audit.counts["signatures"] += 1
    except SignatureError:
        audit.fail(check, f"{path}.ca_signature_b64", "certificate not signed by the CA",
                   entry=index)  # fmt: skip
