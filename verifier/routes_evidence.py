"""Evidence routes: the log's public key and a chip's evidence bundle (docs/evidence.md)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from protocol.codec import to_b64
from verifier import schemas
from verifier.deps import EvidenceReader, ServiceDep
from verifier.errors import ConflictError, InvalidInputError, NotFoundError
from verifier.evidence import export_bundle
from verifier.store import Store

router = APIRouter(prefix="/v1", tags=["evidence"])
_MAX_UNIX_NS = 2**63 - 1
TimeNs = Annotated[int, Query(ge=0, le=_MAX_UNIX_NS, description="unix ns, inclusive")]


class LogPublicKeyOut(BaseModel):
    """The key file format `lightfence audit verify --log-key` reads."""

    public_key_b64: str


class EvidenceBundleOut(BaseModel):
    """`lightfence-evidence-bundle/2`, exactly as `lightfence evidence export` writes it."""

    format: str
    chip_id: str
    from_unix_ns: int
    to_unix_ns: int
    log_public_key_b64: str
    tree_heads: list[dict[str, Any]]
    consistency_proofs: list[dict[str, Any]]
    entries: list[dict[str, Any]]
    omitted_uncovered: int
    manifest: dict[str, Any]


@router.get("/log/public-key", response_model=LogPublicKeyOut)
async def log_public_key(_: EvidenceReader, service: ServiceDep) -> LogPublicKeyOut:
    if service.tree_heads is None:
        raise NotFoundError("the evidence log is off (evidence = false)")
    return LogPublicKeyOut(public_key_b64=to_b64(service.tree_heads.public_key))


@router.get("/chips/{chip_id}/evidence", response_class=JSONResponse,
            responses={200: {"model": EvidenceBundleOut},
                       409: {"description": "no signed tree head covers the entries yet"}})
async def chip_evidence(chip_id: Annotated[str, Path(pattern=schemas.ID_PATTERN)],
                        _: EvidenceReader, service: ServiceDep, from_unix_ns: TimeNs = 0,
                        to_unix_ns: TimeNs = _MAX_UNIX_NS) -> JSONResponse:
    """The chip's evidence bundle over [from, to]: entries, inclusion proofs, signed heads."""
    log = service.evidence.log
    if log is None or service.tree_heads is None:
        raise NotFoundError("the evidence log is off (evidence = false)")
    if from_unix_ns > to_unix_ns:
        raise InvalidInputError(f"empty time range: from {from_unix_ns} > to {to_unix_ns}")
    if await service.db.run(Store.chip, chip_id) is None:
        raise NotFoundError(f"no chip {chip_id}")
    retry = f"retry after tree_head_interval_s ({service.config.tree_head_interval_s:g} s)"
    if await asyncio.to_thread(log.latest_tree_head) is None:
        raise ConflictError(f"the evidence log has no signed tree head yet; {retry}")
    bundle = await asyncio.to_thread(export_bundle, log, chip_id, from_unix_ns, to_unix_ns,
                                     signer=service.tree_heads.signer)
    if not bundle["entries"] and bundle["omitted_uncovered"]:
        raise ConflictError(
            f"{bundle['omitted_uncovered']} entries in the range are newer than the latest "
            f"signed tree head; {retry}")
    return JSONResponse(bundle)
