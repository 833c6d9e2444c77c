"""Checking an NVIDIA GPU attestation: certificate chain to a pinned root, report signature,
nonce binding to the chip's response key, GPU identity.

The evidence is what NVML gives in confidential-computing mode: the report from
`nvmlDeviceGetConfComputeGpuAttestationReport` (layout in `protocol.spdm`) and the PEM chain
`attestationCertChain[:attestationCertChainSize]` from `nvmlDeviceGetConfComputeGpuCertificate`.
The chain is leaf first, root last, five certificates on Hopper and Blackwell (NVIDIA's
MAX_CERT_CHAIN_LENGTH): the attestation (alias) key, the GPU's device-identity certificate (its
subject serialNumber is the per-GPU id fused at manufacture), the provisioner ICA, the GH100
identity CA, and the NVIDIA Device Identity CA, which must be byte-identical to the pinned root
(`protocol.nvidia_root_ca`, from NVIDIA's nvtrust verifier).

What a successful check proves, and what it does not (docs/protocol.md, "GPU attestation"): an
NVIDIA GPU whose identity is `gpu_id` answered the verifier's fresh nonce, and that nonce
committed to the chip's Ed25519 response key, so the key existed next to that GPU (on the same
host, in its driver's reach) when it answered. It does not stop the key from being copied later:
a host-held key stays `software`.
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.x509.oid import NameOID

from protocol.errors import ProtocolError
from protocol.nvidia_root_ca import NVIDIA_DEVICE_IDENTITY_CA_PEM
from protocol.spdm import (
    NONCE_BYTES,
    OPAQUE_DRIVER_VERSION,
    OPAQUE_FWID,
    OPAQUE_PROJECT,
    OPAQUE_VBIOS_VERSION,
    SIGNATURE_BYTES,
    AttestationReport,
    SpdmError,
    parse_attestation_report,
)

NONCE_DOMAIN = b"lightfence/gpu-attestation-nonce/v1\x00"
CHAIN_LENGTH = 5
# TCG DICE TcbInfo extension; NVIDIA's verifier reads the FWID as its last 48 bytes and compares it
# with the report's OPAQUE_FIELD_ID_FWID (cc_admin_utils.extract_fwid).
TCG_DICE_FWID_OIDS = ("2.23.133.5.4.1", "2.23.133.5.4.1.1")
FWID_BYTES = 48


class GpuAttestationError(ProtocolError):
    """The GPU attestation is refused; the message says which check failed."""


@dataclass(frozen=True, slots=True)
class GpuAttestation:
    """What a verified attestation establishes."""

    gpu_id: str  # the device-identity certificate's subject serialNumber (per GPU)
    chain_fingerprints: tuple[str, ...]  # SHA-256 of each certificate, leaf first
    driver_version: str | None
    vbios_version: str | None
    project: str | None
    measurement_count: int


def attestation_nonce(verifier_nonce: bytes, chip_public_key: bytes) -> bytes:
    """The 32-byte SPDM nonce the agent hands the GPU: it is fresh (the verifier chose
    `verifier_nonce`) and commits to the chip's Ed25519 response key, so the report vouches for
    that key and no other."""
    if len(verifier_nonce) != NONCE_BYTES:
        raise GpuAttestationError(f"verifier nonce must be {NONCE_BYTES} bytes")
    return hashlib.sha256(NONCE_DOMAIN + verifier_nonce + chip_public_key).digest()


def load_pinned_root(pem: bytes | None = None) -> x509.Certificate:
    """The pinned NVIDIA device-identity root: `pem`, or the one shipped with Lightfence."""
    if pem is None:
        pem = NVIDIA_DEVICE_IDENTITY_CA_PEM
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise GpuAttestationError(f"pinned root is not a PEM certificate: {exc}") from exc


def parse_chain(cert_chain_pem: bytes) -> list[x509.Certificate]:
    try:
        chain = x509.load_pem_x509_certificates(cert_chain_pem)
    except ValueError as exc:
        raise GpuAttestationError(f"GPU certificate chain is not PEM: {exc}") from exc
    if len(chain) != CHAIN_LENGTH:
        raise GpuAttestationError(
            f"GPU certificate chain has {len(chain)} certificates, expected {CHAIN_LENGTH}")
    return chain


def _fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def verify_chain(chain: list[x509.Certificate], root: x509.Certificate,
                 now: datetime.datetime) -> None:
    """Each certificate is issued (name and signature) by the next, every issuer is a CA, all are
    valid at `now`, and the last one is exactly the pinned root."""
    if chain[-1] != root:
        raise GpuAttestationError(
            f"GPU certificate chain does not end at the pinned NVIDIA root (top certificate "
            f"{chain[-1].subject.rfc4514_string()}, SHA-256 {_fingerprint(chain[-1])})")
    for position, cert in enumerate(chain):
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise GpuAttestationError(
                f"GPU certificate {position} ({cert.subject.rfc4514_string()}) is not valid at "
                f"{now.isoformat()}: valid {cert.not_valid_before_utc.isoformat()} to "
                f"{cert.not_valid_after_utc.isoformat()} (expired or not yet valid)")
        issuer = chain[min(position + 1, len(chain) - 1)]
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise GpuAttestationError(
                f"GPU certificate {position} ({cert.subject.rfc4514_string()}) is not signed "
                f"by {issuer.subject.rfc4514_string()}: {str(exc) or 'bad signature'}") from exc
        if position > 0:
            try:
                is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
            except x509.ExtensionNotFound:
                is_ca = False
            if not is_ca:
                raise GpuAttestationError(
                    f"GPU certificate {position} issues certificates but is not a CA")


def verify_report_signature(report: AttestationReport, leaf: x509.Certificate) -> None:
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
        raise GpuAttestationError("the attestation certificate's key is not ECDSA P-384")
    half = SIGNATURE_BYTES // 2
    der = utils.encode_dss_signature(int.from_bytes(report.signature[:half], "big"),
                                     int.from_bytes(report.signature[half:], "big"))
    try:
        key.verify(der, report.signed_bytes(), ec.ECDSA(hashes.SHA384()))
    except InvalidSignature as exc:
        raise GpuAttestationError(
            "attestation report signature does not verify with the GPU's attestation key") from exc


def _leaf_fwid(leaf: x509.Certificate) -> bytes | None:
    for oid in TCG_DICE_FWID_OIDS:
        try:
            ext = leaf.extensions.get_extension_for_oid(x509.ObjectIdentifier(oid)).value
        except x509.ExtensionNotFound:
            continue
        if isinstance(ext, x509.UnrecognizedExtension) and len(ext.value) >= FWID_BYTES:
            return ext.value[-FWID_BYTES:]
    return None


def gpu_identity(chain: list[x509.Certificate]) -> str:
    """The GPU's id: the subject serialNumber of its device-identity certificate (chain[1], the
    certificate that issued the attestation key)."""
    values = chain[1].subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    if not values:
        raise GpuAttestationError("the GPU device-identity certificate has no serialNumber")
    return str(values[0].value)


def verify_gpu_attestation(
    report_bytes: bytes, cert_chain_pem: bytes, *, expected_nonce: bytes,
    root: x509.Certificate, now: datetime.datetime, expected_gpu_id: str | None = None,
) -> GpuAttestation:
    """Every check, in an order that names the first failure: format, chain to the pinned root,
    signature, nonce, firmware id agreement, GPU identity. GpuAttestationError otherwise."""
    try:
        report = parse_attestation_report(report_bytes)
    except SpdmError as exc:
        raise GpuAttestationError(f"malformed attestation report: {exc}") from exc
    chain = parse_chain(cert_chain_pem)
    verify_chain(chain, root, now)
    verify_report_signature(report, chain[0])
    if report.request_nonce != expected_nonce:
        raise GpuAttestationError(
            "attestation report answers another nonce (not this challenge for this chip key): "
            f"expected {expected_nonce.hex()}, report has {report.request_nonce.hex()}")
    fwid = report.opaque_field(OPAQUE_FWID)
    if fwid is not None and _leaf_fwid(chain[0]) not in (None, fwid):
        raise GpuAttestationError(
            "the report's firmware id differs from the one in its attestation certificate")
    gpu_id = gpu_identity(chain)
    if expected_gpu_id is not None and gpu_id != expected_gpu_id:
        raise GpuAttestationError(
            f"attestation is from GPU {gpu_id}, but this chip is enrolled with GPU "
            f"{expected_gpu_id}")
    return GpuAttestation(
        gpu_id=gpu_id, chain_fingerprints=tuple(_fingerprint(c) for c in chain),
        driver_version=report.opaque_text(OPAQUE_DRIVER_VERSION),
        vbios_version=(None if (v := report.opaque_field(OPAQUE_VBIOS_VERSION)) is None
                       else v.hex()),
        project=report.opaque_text(OPAQUE_PROJECT), measurement_count=len(report.blocks))
