"""GPU attestation routes: a challenge per chip, the NVML evidence for it, the chip's GPU status.

Admin tokens only for now: the agent's periodic re-attestation (`lightfence agent attest`) holds
one. The submission is self-authenticating (a fresh single-use nonce signed by the GPU's NVIDIA
key), so a narrower agent role would lose nothing; see docs/protocol.md."""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime
import time
from typing import Annotated

from fastapi import APIRouter, Path

from protocol.gpu_attestation import GpuAttestationError, verify_gpu_attestation
from verifier import attestation, schemas
from verifier.deps import Admin, Reader, ServiceDep
from verifier.errors import InvalidInputError, NotFoundError

router = APIRouter(prefix="/v1", tags=["attestation"])
IdPath = Annotated[str, Path(pattern=schemas.ID_PATTERN)]


def _out(state: dict[str, object]) -> schemas.AttestationOut:
    return schemas.AttestationOut.model_validate({**state, "key_protection": "software"})


@router.post("/chips/{chip_id}/attestation/challenge",
             response_model=schemas.AttestationChallengeOut)
async def challenge(chip_id: IdPath, _: Admin,
                    service: ServiceDep) -> schemas.AttestationChallengeOut:
    issued = await service.db.run(attestation.issue_challenge, chip_id,
                                  now_unix_ns=time.time_ns(),
                                  ttl_s=service.config.gpu_attestation_challenge_ttl_s)
    return schemas.AttestationChallengeOut.model_validate(issued)


@router.post("/chips/{chip_id}/attestation", response_model=schemas.AttestationOut)
async def submit(chip_id: IdPath, body: schemas.AttestationIn, _: Admin,
                 service: ServiceDep) -> schemas.AttestationOut:
    try:
        report = base64.b64decode(body.report_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInputError("report_b64 is not base64") from exc
    pending = await service.db.run(attestation.take_challenge, chip_id, body.nonce_b64,
                                   now_unix_ns=time.time_ns())
    try:
        result = await asyncio.to_thread(
            verify_gpu_attestation, report, body.cert_chain_pem.encode("ascii", "replace"),
            expected_nonce=pending.expected_nonce, root=service.gpu_root,
            now=datetime.datetime.now(datetime.UTC), expected_gpu_id=pending.expected_gpu_id)
    except GpuAttestationError as exc:
        await service.db.run(attestation.record_failure, service.alerts, chip_id, str(exc),
                             now_unix_ns=time.time_ns())
        raise InvalidInputError(f"GPU attestation refused: {exc}") from exc
    state = await service.db.run(attestation.record_success, service.alerts, pending, result,
                                 now_unix_ns=time.time_ns())
    return _out(state)


@router.get("/chips/{chip_id}/attestation", response_model=schemas.AttestationOut)
async def status(chip_id: IdPath, _: Reader, service: ServiceDep) -> schemas.AttestationOut:
    state = await service.db.run(attestation.binding, chip_id)
    if state is None:
        raise NotFoundError(f"chip {chip_id} has no attested GPU")
    return _out(state)
