"""GPU attestation checks: NVIDIA's real sample report, then test GPUs and every refusal."""

from __future__ import annotations

import datetime
import secrets
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from protocol.gpu_attestation import (
    GpuAttestation,
    GpuAttestationError,
    attestation_nonce,
    load_pinned_root,
    verify_gpu_attestation,
)
from protocol.spdm import OPAQUE_DRIVER_VERSION, SpdmError, parse_attestation_report
from tests.protocol.gpu_fixtures import DAY, NOW, FakeGpu, make_gpu

DATA = Path(__file__).parent / "data"
CHIP_KEY = bytes(range(32))


@pytest.fixture(scope="module")
def gpu() -> FakeGpu:
    return make_gpu()


def _check(gpu: FakeGpu, report: bytes, nonce: bytes, **kwargs: object) -> GpuAttestation:
    options: dict[str, object] = {"expected_nonce": nonce, "root": gpu.root, "now": NOW}
    options.update(kwargs)
    return verify_gpu_attestation(report, gpu.chain_pem(), **options)  # type: ignore[arg-type]


def test_nvidias_published_hopper_report_parses_and_attests_to_the_pinned_root() -> None:
    """nvtrust's sample (a real H100 report and chain) against the shipped NVIDIA root."""
    report = bytes.fromhex((DATA / "nvtrust_hopper_attestation_report.hex").read_text().strip())
    chain = (DATA / "nvtrust_hopper_cert_chain.pem").read_bytes()
    parsed = parse_attestation_report(report)
    assert (parsed.spdm_version, parsed.request_param1, parsed.request_param2) == (0x11, 1, 0xFF)
    assert len(parsed.blocks) == 64 and parsed.opaque_text(OPAQUE_DRIVER_VERSION) == "550.90.07"
    result = verify_gpu_attestation(report, chain, expected_nonce=parsed.request_nonce,
                                    root=load_pinned_root(), now=NOW)
    assert result.gpu_id == "41431D480FE5E87274" and result.project == "1010"
    assert result.chain_fingerprints[-1] == (
        "102bf659d5419614c9d8e6aecebc80454eb26b1df6a769ac720b9a690b167b48")
    with pytest.raises(GpuAttestationError, match="signature does not verify"):
        tampered = bytearray(report)
        tampered[-200] ^= 1  # inside the opaque data, covered by the signature
        verify_gpu_attestation(bytes(tampered), chain, expected_nonce=parsed.request_nonce,
                               root=load_pinned_root(), now=NOW)


def test_attest_binds_nonce_to_the_chip_key(gpu: FakeGpu) -> None:
    verifier_nonce = secrets.token_bytes(32)
    nonce = attestation_nonce(verifier_nonce, CHIP_KEY)
    result = _check(gpu, gpu.report(nonce), nonce, expected_gpu_id=gpu.gpu_id)
    assert result.gpu_id == gpu.gpu_id and result.driver_version == "550.90.07"
    assert nonce != attestation_nonce(verifier_nonce, bytes(32))  # another key, another nonce
    assert nonce != attestation_nonce(secrets.token_bytes(32), CHIP_KEY)


def test_attest_refuses_a_bad_signature(gpu: FakeGpu) -> None:
    nonce = attestation_nonce(secrets.token_bytes(32), CHIP_KEY)
    report = bytearray(gpu.report(nonce))
    report[-1] ^= 0x01
    with pytest.raises(GpuAttestationError, match="signature does not verify"):
        _check(gpu, bytes(report), nonce)


def test_attest_refuses_a_report_signed_by_another_key(gpu: FakeGpu) -> None:
    nonce = attestation_nonce(secrets.token_bytes(32), CHIP_KEY)
    forger = FakeGpu(gpu.gpu_id, gpu.root, gpu.chain, ec.generate_private_key(ec.SECP384R1()),
                     gpu.fwid)
    with pytest.raises(GpuAttestationError, match="signature does not verify"):
        _check(gpu, forger.report(nonce), nonce)


def test_attest_refuses_a_wrong_nonce(gpu: FakeGpu) -> None:
    challenge = secrets.token_bytes(32)
    old = gpu.report(attestation_nonce(secrets.token_bytes(32), CHIP_KEY))  # an earlier report
    with pytest.raises(GpuAttestationError, match="answers another nonce"):
        _check(gpu, old, attestation_nonce(challenge, CHIP_KEY))


def test_attest_refuses_a_report_vouching_for_another_chip_key(gpu: FakeGpu) -> None:
    challenge = secrets.token_bytes(32)
    other_key_report = gpu.report(attestation_nonce(challenge, bytes(32)))
    with pytest.raises(GpuAttestationError, match="answers another nonce"):
        _check(gpu, other_key_report, attestation_nonce(challenge, CHIP_KEY))


def test_attest_refuses_a_chain_to_another_root(gpu: FakeGpu) -> None:
    rogue = make_gpu(gpu.gpu_id)  # same GPU id, chain made by someone else's root
    nonce = attestation_nonce(secrets.token_bytes(32), CHIP_KEY)
    with pytest.raises(GpuAttestationError, match="does not end at the pinned NVIDIA root"):
        verify_gpu_attestation(rogue.report(nonce), rogue.chain_pem(), expected_nonce=nonce,
                               root=gpu.root, now=NOW)
    with pytest.raises(GpuAttestationError, match="does not end at the pinned NVIDIA root"):
        _check(gpu, gpu.report(nonce), nonce, root=load_pinned_root())


def test_attest_refuses_a_spliced_chain(gpu: FakeGpu) -> None:
    """A leaf from another GPU's chain under this GPU's intermediates: names or signatures break."""
    other = gpu.sibling("AAAA")
    spliced = FakeGpu(gpu.gpu_id, gpu.root, [other.chain[0], *gpu.chain[1:]],
                      other.attestation_key, other.fwid)
    nonce = attestation_nonce(secrets.token_bytes(32), CHIP_KEY)
    with pytest.raises(GpuAttestationError, match="is not signed by"):
        verify_gpu_attestation(spliced.report(nonce), spliced.chain_pem(), expected_nonce=nonce,
                               root=gpu.root, now=NOW)


def test_attest_refuses_an_expired_certificate() -> None:
    expired = make_gpu(leaf_not_after=NOW - DAY)
    nonce = attestation_nonce(secrets.token_bytes(32), CHIP_KEY)
    with pytest.raises(GpuAttestationError, match="expired or not yet valid"):
        _check(expired, expired.report(nonce), nonce)
    with pytest.raises(GpuAttestationError, match="expired or not yet valid"):
        _check(expired, expired.report(nonce), nonce,
               now=datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC))


def test_attest_refuses_a_different_gpu(gpu: FakeGpu) -> None:
    nonce = attestation_nonce(secrets.token_bytes(32), CHIP_KEY)
    with pytest.raises(GpuAttestationError, match="enrolled with GPU"):
        _check(gpu, gpu.report(nonce), nonce, expected_gpu_id="0000000000000000")


def test_attest_refuses_a_firmware_id_the_certificate_does_not_vouch_for(gpu: FakeGpu) -> None:
    nonce = attestation_nonce(secrets.token_bytes(32), CHIP_KEY)
    with pytest.raises(GpuAttestationError, match="firmware id differs"):
        _check(gpu, gpu.report(nonce, fwid=bytes(48)), nonce)


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda r: r[:-1], "truncated"),
        (lambda r: r + b"\x00", "trailing bytes"),
        (lambda r: r[:1] + b"\xe1" + r[2:], "GET_MEASUREMENTS request"),
        (lambda r: r[:38] + b"\x61" + r[39:], "not an SPDM MEASUREMENTS response"),
        (lambda r: r[:100], "too short"),
    ],
)
def test_attest_refuses_malformed_reports(gpu: FakeGpu, mangle: object, message: str) -> None:
    nonce = attestation_nonce(secrets.token_bytes(32), CHIP_KEY)
    report = mangle(gpu.report(nonce))  # type: ignore[operator]
    with pytest.raises(SpdmError, match=message):
        parse_attestation_report(report)
    with pytest.raises(GpuAttestationError, match="malformed attestation report"):
        _check(gpu, report, nonce)


def test_attest_refuses_a_short_chain(gpu: FakeGpu) -> None:
    nonce = attestation_nonce(secrets.token_bytes(32), CHIP_KEY)
    short = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in gpu.chain[1:])
    with pytest.raises(GpuAttestationError, match="4 certificates, expected 5"):
        verify_gpu_attestation(gpu.report(nonce), short, expected_nonce=nonce, root=gpu.root,
                               now=NOW)
    with pytest.raises(GpuAttestationError, match="not PEM"):
        verify_gpu_attestation(gpu.report(nonce), b"garbage", expected_nonce=nonce,
                               root=gpu.root, now=NOW)
