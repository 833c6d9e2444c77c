"""Certificate files and the CA public key file: JSON carriers of `protocol.certs` values."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from protocol.certs import ChipCertificate, LandmarkCertificate, ca_public_key_from_json
from protocol.errors import CertificateError

logger = logging.getLogger(__name__)


def write_certificate(path: Path, cert: ChipCertificate | LandmarkCertificate) -> None:
    """Write a certificate as JSON (public data: normal permissions), atomically."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(cert.to_json(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CertificateError(f"{path}: cannot read certificate: {exc}") from exc


def load_chip_certificate(path: Path) -> ChipCertificate:
    return ChipCertificate.from_json(_read_json(path))


def load_landmark_certificate(path: Path) -> LandmarkCertificate:
    return LandmarkCertificate.from_json(_read_json(path))


def read_ca_public_key(path: Path) -> bytes:
    """Read the CA public key file (`{"public_key_b64": ...}`, written by `lightfence keys ca`)."""
    obj = _read_json(path)
    try:
        return ca_public_key_from_json(obj)
    except CertificateError as exc:
        raise CertificateError(f"{path}: {exc}") from exc


def _trusted(
    directory: Path, ca_public_key: bytes, now_unix_s: int, kind: str
) -> dict[str, bytes]:
    keys: dict[str, bytes] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            cert: ChipCertificate | LandmarkCertificate
            if kind == "chip":
                cert = load_chip_certificate(path)
                cert_id = cert.chip_id
            else:
                cert = load_landmark_certificate(path)
                cert_id = cert.landmark_id
            cert.verify(ca_public_key, now_unix_s)
        except CertificateError as exc:
            logger.warning("ignoring %s certificate %s: %s", kind, path, exc)
            continue
        keys[cert_id] = cert.public_key
    return keys


def trusted_chip_keys(directory: Path, ca_public_key: bytes, now_unix_s: int) -> dict[str, bytes]:
    """chip id → public key for every `*.json` chip certificate in `directory` that the CA signed
    and that is valid now; the others are logged and ignored."""
    return _trusted(directory, ca_public_key, now_unix_s, "chip")


def trusted_landmark_keys(
    directory: Path, ca_public_key: bytes, now_unix_s: int
) -> dict[str, bytes]:
    """landmark id → public key, as `trusted_chip_keys` for landmark certificates."""
    return _trusted(directory, ca_public_key, now_unix_s, "landmark")
