"""Test GPUs: an NVIDIA-shaped five-certificate chain made here with `cryptography`, and
attestation reports in the real SPDM layout (protocol/spdm.py) signed by its attestation key.

The chain mirrors the real one (tests/protocol/data/nvtrust_hopper_cert_chain.pem): leaf
"GH100 A01 GSP FMC LF" (attestation key, with the TCG DICE FWID extension), the device-identity
certificate "GH100 A01 GSP BROM" (subject serialNumber = GPU id), the provisioner ICA, the GH100
identity CA, and a self-signed root standing in for the NVIDIA Device Identity CA.
"""

from __future__ import annotations

import datetime
import secrets
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.x509.oid import NameOID

from protocol.spdm import OPAQUE_DRIVER_VERSION, OPAQUE_FWID, OPAQUE_PROJECT

NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)


def _name(cn: str, serial: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn),
             x509.NameAttribute(NameOID.ORGANIZATION_NAME, "NVIDIA Corporation")]
    if serial is not None:
        attrs.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, serial))
    return x509.Name(attrs)


def _cert(subject: x509.Name, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
          issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool,
          not_after: datetime.datetime, fwid: bytes | None = None) -> x509.Certificate:
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(NOW - 365 * DAY).not_valid_after(not_after))
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None),
                                        critical=True)
    if fwid is not None:  # DER tail carries the FWID, as NVIDIA's TcbInfo extension does
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("2.23.133.5.4.1"),
                                       bytes.fromhex("3035a633") + bytes(3) + fwid),
            critical=False)
    return builder.sign(issuer_key, hashes.SHA384())


@dataclass
class FakeGpu:
    gpu_id: str
    root: x509.Certificate
    chain: list[x509.Certificate]
    attestation_key: ec.EllipticCurvePrivateKey
    fwid: bytes = field(default_factory=lambda: secrets.token_bytes(48))
    root_key: ec.EllipticCurvePrivateKey | None = None  # to make other GPUs under the same root

    def sibling(self, gpu_id: str) -> FakeGpu:
        """Another GPU whose chain ends at this GPU's root (same vendor, different device)."""
        return make_gpu(gpu_id, root_key=self.root_key, root=self.root)

    def chain_pem(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)

    def report(self, nonce: bytes, *, fwid: bytes | None = None) -> bytes:
        """An SPDM 1.1 GET_MEASUREMENTS request (Param1 0x01: signature requested, Param2 0xFF:
        all blocks) and a MEASUREMENTS response, signed as the GPU signs it."""
        request = bytes([0x11, 0xE0, 0x01, 0xFF]) + nonce + bytes([0x00])
        record = b""
        for index in range(1, 5):
            value = bytes([index]) * 48
            dmtf = bytes([0x01]) + len(value).to_bytes(2, "little") + value
            record += bytes([index, 0x01]) + len(dmtf).to_bytes(2, "little") + dmtf
        opaque = b""
        for field_id, data in ((OPAQUE_DRIVER_VERSION, b"550.90.07\x00"),
                               (OPAQUE_PROJECT, b"1010\x00"),
                               (OPAQUE_FWID, fwid if fwid is not None else self.fwid)):
            opaque += field_id.to_bytes(2, "little") + len(data).to_bytes(2, "little") + data
        response = (bytes([0x11, 0x60, 0x00, 0x00, 4]) + len(record).to_bytes(3, "little")
                    + record + secrets.token_bytes(32) + len(opaque).to_bytes(2, "little")
                    + opaque)
        der = self.attestation_key.sign(request + response, ec.ECDSA(hashes.SHA384()))
        r, s = utils.decode_dss_signature(der)
        return request + response + r.to_bytes(48, "big") + s.to_bytes(48, "big")


def make_gpu(gpu_id: str = "41431D480FE5E87274", *, root_key: ec.EllipticCurvePrivateKey |
             None = None, root: x509.Certificate | None = None,
             leaf_not_after: datetime.datetime | None = None) -> FakeGpu:
    """A GPU whose chain ends at `root` (made here when not given)."""
    root_key = root_key or ec.generate_private_key(ec.SECP384R1())
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Device Identity CA"),
                           x509.NameAttribute(NameOID.ORGANIZATION_NAME, "NVIDIA")])
    far = NOW + 3650 * DAY
    if root is None:
        root = _cert(root_name, root_key, root_name, root_key, ca=True, not_after=far)
    identity_key, ica_key, device_key, leaf_key = (
        ec.generate_private_key(ec.SECP384R1()) for _ in range(4))
    identity = _cert(_name("NVIDIA GH100 Identity"), identity_key, root.subject, root_key,
                     ca=True, not_after=far)
    ica = _cert(_name("NVIDIA GH100 Provisioner ICA 1"), ica_key, identity.subject, identity_key,
                ca=True, not_after=far)
    device = _cert(_name("GH100 A01 GSP BROM", gpu_id), device_key, ica.subject, ica_key,
                   ca=True, not_after=far)
    gpu = FakeGpu(gpu_id, root, [], leaf_key, root_key=root_key)
    leaf = _cert(_name("GH100 A01 GSP FMC LF", secrets.token_hex(20).upper()), leaf_key,
                 device.subject, device_key, ca=False, not_after=leaf_not_after or far,
                 fwid=gpu.fwid)
    gpu.chain = [leaf, device, ica, identity, root]
    return gpu
