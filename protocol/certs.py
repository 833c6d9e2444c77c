"""Certificates: the vendor CA binds a chip or landmark id to its Ed25519 public key.

A chip certificate also states how the chip's key is protected (`protocol.key_protection`).
Version 2 (domain `lightfence/chip-cert/v2`) signs that level; a version-1 certificate (no
`key_protection` in its JSON, written before levels existed) still verifies and is read as
`software`, the weakest level, so no old certificate can claim more than a key file gives.

The CA signs a domain-separated canonical encoding (see `protocol.codec`), never JSON, so the
signed bytes do not depend on a JSON library's formatting. JSON is only the file/HTTP carrier;
reading and writing certificate files is I/O and lives in `keystore.cert_files`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Self

from protocol.codec import Writer, from_b64, to_b64, validate_id
from protocol.errors import CertificateError, SignatureError, WireError
from protocol.key_protection import LEGACY_KEY_PROTECTION, check_level
from protocol.keys import PUBLIC_KEY_BYTES, SIGNATURE_BYTES, Signer, verify_signature

CHIP_CERT_DOMAIN = b"lightfence/chip-cert/v1\x00"
CHIP_CERT_DOMAIN_V2 = b"lightfence/chip-cert/v2\x00"
LANDMARK_CERT_DOMAIN = b"lightfence/landmark-cert/v1\x00"


def _check_validity(what: str, not_before_unix_s: int, not_after_unix_s: int, now: int) -> None:
    if now < not_before_unix_s:
        raise CertificateError(f"{what} is not valid before {not_before_unix_s} (now {now})")
    if now > not_after_unix_s:
        raise CertificateError(f"{what} expired at {not_after_unix_s} (now {now})")


def _field(obj: Any, name: str, kind: type) -> Any:
    if not isinstance(obj, dict) or name not in obj:
        raise CertificateError(f"certificate JSON lacks {name!r}")
    value = obj[name]
    # bool is an int subclass; a certificate with `true` as a timestamp is malformed.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CertificateError(f"certificate field {name!r} must be {kind.__name__}")
    return value


@dataclass(frozen=True, slots=True)
class ChipCertificate:
    chip_id: str
    public_key: bytes  # 32-byte Ed25519
    model: str
    serial: str
    not_before_unix_s: int
    not_after_unix_s: int
    ca_signature: bytes  # 64 bytes over `signed_bytes()`
    key_protection: str = LEGACY_KEY_PROTECTION  # one of KEY_PROTECTION_LEVELS, CA-signed in v2
    version: int = 2  # 1: written before key levels existed (signs no level; read as software)

    def __post_init__(self) -> None:
        try:
            validate_id(self.chip_id, "chip id")
            _ = Writer().short_str(self.model).short_str(self.serial)
        except WireError as exc:
            raise CertificateError(str(exc)) from exc
        if len(self.public_key) != PUBLIC_KEY_BYTES or len(self.ca_signature) != SIGNATURE_BYTES:
            raise CertificateError("chip certificate key or signature has the wrong length")
        check_level(self.key_protection, "chip certificate key_protection")
        if self.version not in (1, 2):
            raise CertificateError(f"chip certificate version must be 1 or 2, got {self.version}")
        if self.version == 1 and self.key_protection != LEGACY_KEY_PROTECTION:
            # v1 bytes do not cover a level: anything above software would be unsigned.
            raise CertificateError("a version-1 chip certificate can only be read as software")

    def signed_bytes(self) -> bytes:
        writer = (
            Writer()
            .raw(CHIP_CERT_DOMAIN if self.version == 1 else CHIP_CERT_DOMAIN_V2)
            .short_str(self.chip_id)
            .raw(self.public_key)
            .short_str(self.model)
            .short_str(self.serial)
            .i64(self.not_before_unix_s)
            .i64(self.not_after_unix_s)
        )
        if self.version == 2:
            writer.short_str(self.key_protection)
        return writer.bytes()

    def verify(self, ca_public_key: bytes, now_unix_s: int) -> None:
        """Raise CertificateError unless the CA signed this and `now_unix_s` is in its window."""
        try:
            verify_signature(ca_public_key, self.signed_bytes(), self.ca_signature)
        except SignatureError as exc:
            raise CertificateError(f"chip {self.chip_id}: certificate not signed by CA") from exc
        _check_validity(
            f"chip {self.chip_id} certificate", self.not_before_unix_s, self.not_after_unix_s,
            now_unix_s,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "chip",
            "chip_id": self.chip_id,
            "public_key_b64": to_b64(self.public_key),
            "model": self.model,
            "serial": self.serial,
            "not_before_unix_s": self.not_before_unix_s,
            "not_after_unix_s": self.not_after_unix_s,
            "ca_signature_b64": to_b64(self.ca_signature),
        }
        if self.version == 2:  # a v1 certificate round-trips byte for byte, without the field
            out["key_protection"] = self.key_protection
        return out

    @classmethod
    def from_json(cls, obj: Any) -> Self:
        """Parse (not verify) a certificate; CertificateError when malformed."""
        if _field(obj, "kind", str) != "chip":
            raise CertificateError("not a chip certificate (kind must be 'chip')")
        version = 2 if "key_protection" in obj else 1
        level = _field(obj, "key_protection", str) if version == 2 else LEGACY_KEY_PROTECTION
        try:
            return cls(
                chip_id=_field(obj, "chip_id", str),
                public_key=from_b64(obj.get("public_key_b64"), "public_key_b64", PUBLIC_KEY_BYTES),
                model=_field(obj, "model", str),
                serial=_field(obj, "serial", str),
                not_before_unix_s=_field(obj, "not_before_unix_s", int),
                not_after_unix_s=_field(obj, "not_after_unix_s", int),
                ca_signature=from_b64(
                    obj.get("ca_signature_b64"), "ca_signature_b64", SIGNATURE_BYTES
                ),
                key_protection=level,
                version=version,
            )
        except WireError as exc:
            raise CertificateError(f"malformed chip certificate: {exc}") from exc


@dataclass(frozen=True, slots=True)
class LandmarkCertificate:
    landmark_id: str
    public_key: bytes
    lat_deg: float
    lon_deg: float
    not_before_unix_s: int
    not_after_unix_s: int
    ca_signature: bytes

    def __post_init__(self) -> None:
        try:
            validate_id(self.landmark_id, "landmark id")
        except WireError as exc:
            raise CertificateError(str(exc)) from exc
        if not (math.isfinite(self.lat_deg) and -90.0 <= self.lat_deg <= 90.0):
            raise CertificateError(f"landmark latitude {self.lat_deg} outside [-90, 90]")
        if not (math.isfinite(self.lon_deg) and -180.0 <= self.lon_deg <= 180.0):
            raise CertificateError(f"landmark longitude {self.lon_deg} outside [-180, 180]")
        if len(self.public_key) != PUBLIC_KEY_BYTES or len(self.ca_signature) != SIGNATURE_BYTES:
            raise CertificateError("landmark certificate key or signature has the wrong length")

    def signed_bytes(self) -> bytes:
        return (
            Writer()
            .raw(LANDMARK_CERT_DOMAIN)
            .short_str(self.landmark_id)
            .raw(self.public_key)
            .f64(self.lat_deg)
            .f64(self.lon_deg)
            .i64(self.not_before_unix_s)
            .i64(self.not_after_unix_s)
            .bytes()
        )

    def verify(self, ca_public_key: bytes, now_unix_s: int) -> None:
        try:
            verify_signature(ca_public_key, self.signed_bytes(), self.ca_signature)
        except SignatureError as exc:
            raise CertificateError(
                f"landmark {self.landmark_id}: certificate not signed by CA"
            ) from exc
        _check_validity(
            f"landmark {self.landmark_id} certificate", self.not_before_unix_s,
            self.not_after_unix_s, now_unix_s,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "landmark",
            "landmark_id": self.landmark_id,
            "public_key_b64": to_b64(self.public_key),
            "lat_deg": self.lat_deg,
            "lon_deg": self.lon_deg,
            "not_before_unix_s": self.not_before_unix_s,
            "not_after_unix_s": self.not_after_unix_s,
            "ca_signature_b64": to_b64(self.ca_signature),
        }

    @classmethod
    def from_json(cls, obj: Any) -> Self:
        if _field(obj, "kind", str) != "landmark":
            raise CertificateError("not a landmark certificate (kind must be 'landmark')")
        lat, lon = obj.get("lat_deg"), obj.get("lon_deg")
        if isinstance(lat, bool) or not isinstance(lat, int | float):
            raise CertificateError("certificate field 'lat_deg' must be a number")
        if isinstance(lon, bool) or not isinstance(lon, int | float):
            raise CertificateError("certificate field 'lon_deg' must be a number")
        try:
            return cls(
                landmark_id=_field(obj, "landmark_id", str),
                public_key=from_b64(obj.get("public_key_b64"), "public_key_b64", PUBLIC_KEY_BYTES),
                lat_deg=float(lat),
                lon_deg=float(lon),
                not_before_unix_s=_field(obj, "not_before_unix_s", int),
                not_after_unix_s=_field(obj, "not_after_unix_s", int),
                ca_signature=from_b64(
                    obj.get("ca_signature_b64"), "ca_signature_b64", SIGNATURE_BYTES
                ),
            )
        except WireError as exc:
            raise CertificateError(f"malformed landmark certificate: {exc}") from exc


def issue_chip_certificate(
    ca: Signer, *, chip_id: str, public_key: bytes, model: str, serial: str,
    not_before_unix_s: int, not_after_unix_s: int, key_protection: str = LEGACY_KEY_PROTECTION,
) -> ChipCertificate:
    """A version-2 certificate stating `key_protection`. The CA states only what it knows: a key
    file it generated is `software`, whatever attestation accompanied its enrolment."""
    unsigned = ChipCertificate(
        chip_id, public_key, model, serial, not_before_unix_s, not_after_unix_s,
        bytes(SIGNATURE_BYTES), key_protection,
    )
    return ChipCertificate(
        chip_id, public_key, model, serial, not_before_unix_s, not_after_unix_s,
        ca.sign(unsigned.signed_bytes()), key_protection,
    )


def issue_landmark_certificate(
    ca: Signer, *, landmark_id: str, public_key: bytes, lat_deg: float, lon_deg: float,
    not_before_unix_s: int, not_after_unix_s: int,
) -> LandmarkCertificate:
    unsigned = LandmarkCertificate(
        landmark_id, public_key, lat_deg, lon_deg, not_before_unix_s, not_after_unix_s,
        bytes(SIGNATURE_BYTES),
    )
    return LandmarkCertificate(
        landmark_id, public_key, lat_deg, lon_deg, not_before_unix_s, not_after_unix_s,
        ca.sign(unsigned.signed_bytes()),
    )



def ca_public_key_from_json(obj: Any) -> bytes:
    """The CA public key from its JSON form (`{"public_key_b64": ...}`, written by
    `lightfence keys ca`); CertificateError when malformed."""
    try:
        return from_b64(
            obj.get("public_key_b64") if isinstance(obj, dict) else None,
            "public_key_b64", PUBLIC_KEY_BYTES,
        )
    except WireError as exc:
        raise CertificateError(str(exc)) from exc
