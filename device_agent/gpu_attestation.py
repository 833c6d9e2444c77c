"""Asking the GPU for an attestation (NVML, confidential-computing mode) and handing it to the
verifier: enrolment and periodic re-attestation (`lightfence agent attest`).

NVML calls, as NVIDIA's own verifier makes them (nvtrust local_gpu_verifier, nvml/__init__.py
and nvml/gpu_cert_chains.py), through `nvidia-ml-py` (`pynvml`):

- `nvmlDeviceGetConfComputeGpuAttestationReport(handle, nonce)`: a
  `c_nvmlConfComputeGpuAttestationReport_t` whose `attestationReport[:attestationReportSize]`
  is the SPDM GET_MEASUREMENTS request + signed response (protocol/spdm.py);
- `nvmlDeviceGetConfComputeGpuCertificate(handle)`: a `c_nvmlConfComputeGpuCertificate_t`
  whose `attestationCertChain[:attestationCertChainSize]` is the PEM chain, leaf first.

Both need the GPU in confidential-computing mode (Hopper) and a driver that supports it;
otherwise NVML answers NOT_SUPPORTED, passed on verbatim in the error.
"""

from __future__ import annotations

import base64
import importlib
import logging
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import httpx

from device_agent.errors import GpuAttestationUnavailableError
from protocol.gpu_attestation import attestation_nonce

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GpuEvidence:
    report: bytes  # SPDM request + response, exactly attestationReportSize bytes
    cert_chain_pem: bytes


def _pynvml() -> ModuleType:
    try:
        return importlib.import_module("pynvml")
    except ImportError as exc:
        raise GpuAttestationUnavailableError(
            "nvidia-ml-py is not installed (pip install 'lightfence[nvml]')") from exc


def read_gpu_evidence(gpu_index: int, nonce: bytes, nvml: ModuleType | None = None
                      ) -> GpuEvidence:
    """The GPU's attestation report over `nonce` (32 bytes) and its certificate chain."""
    nvml = nvml or _pynvml()
    try:
        nvml.nvmlInit()
    except Exception as exc:  # pynvml raises NVMLError subclasses generated at run time
        raise GpuAttestationUnavailableError(f"NVML did not initialise: {exc}") from exc
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(gpu_index)
        report = nvml.nvmlDeviceGetConfComputeGpuAttestationReport(handle, nonce)
        certs = nvml.nvmlDeviceGetConfComputeGpuCertificate(handle)
        return GpuEvidence(
            bytes(report.attestationReport[: int(report.attestationReportSize)]),
            bytes(certs.attestationCertChain[: int(certs.attestationCertChainSize)]))
    except Exception as exc:
        raise GpuAttestationUnavailableError(
            f"GPU {gpu_index} gave no attestation (confidential-computing mode on, driver "
            f"recent enough?): {exc}") from exc
    finally:
        nvml.nvmlShutdown()


def attest_chip(client: httpx.Client, chip_id: str, chip_public_key: bytes, gpu_index: int,
                nvml: ModuleType | None = None) -> dict[str, Any]:
    """One attestation round with the verifier: its challenge, the GPU's report over the nonce
    bound to `chip_public_key`, the verifier's answer (the chip's GPU status)."""
    response = client.post(f"/v1/chips/{chip_id}/attestation/challenge")
    _raise_for(response, "challenge")
    nonce_b64 = response.json()["nonce_b64"]
    evidence = read_gpu_evidence(
        gpu_index, attestation_nonce(base64.b64decode(nonce_b64), chip_public_key), nvml)
    response = client.post(f"/v1/chips/{chip_id}/attestation", json={
        "nonce_b64": nonce_b64, "report_b64": base64.b64encode(evidence.report).decode(),
        "cert_chain_pem": evidence.cert_chain_pem.decode("ascii", "replace")})
    _raise_for(response, "attestation")
    result: dict[str, Any] = response.json()
    logger.info("chip %s: GPU %s attested", chip_id, result.get("gpu_id"))
    return result


def _raise_for(response: httpx.Response, what: str) -> None:
    if not response.is_success:
        raise GpuAttestationUnavailableError(
            f"verifier refused the {what}: {response.status_code} {response.text[:300]}")
