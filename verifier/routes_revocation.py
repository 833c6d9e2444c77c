"""Admin routes for revocation and expiry: tokens (list, disable) and landmark/chip keys."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Path

from protocol.revocation import Revocation
from verifier import revocations, schemas
from verifier.deps import Admin, Reader, ServiceDep

router = APIRouter(prefix="/v1", tags=["admin"])
TokenIdPath = Annotated[int, Path(ge=1, le=2**62)]


def _revocation_out(revocation: Revocation) -> schemas.RevocationOut:
    return schemas.RevocationOut.model_validate(revocation.to_json())


@router.get("/tokens", response_model=schemas.TokensOut)
async def list_tokens(_: Admin, service: ServiceDep) -> schemas.TokensOut:
    # Lambdas, not `Store.token_infos`: Db.run maps only `Store.`-qualified names to the
    # implementation, and these methods are defined on `RevocationStore`.
    infos = await service.db.run(lambda store: store.token_infos())
    return schemas.TokensOut(items=[schemas.TokenInfoOut(**asdict(i)) for i in infos])


@router.post("/tokens/{token_id}/disable", response_model=schemas.TokenInfoOut)
async def disable_token(token_id: TokenIdPath, body: schemas.TokenDisableIn, token: Admin,
                        service: ServiceDep) -> schemas.TokenInfoOut:
    info = await service.db.run(revocations.disable_token, token_id, by=token.label,
                                reason=body.reason, now_unix_ns=time.time_ns())
    return schemas.TokenInfoOut(**asdict(info))


@router.post("/revocations", response_model=schemas.RevocationOut)
async def revoke(body: schemas.RevocationIn, token: Admin,
                 service: ServiceDep) -> schemas.RevocationOut:
    revocation = await service.db.run(revocations.revoke, kind=body.kind, match=body.match,
                                      value=body.value, reason=body.reason, by=token.label,
                                      now_unix_ns=time.time_ns())
    return _revocation_out(revocation)


@router.get("/revocations", response_model=schemas.RevocationsOut)
async def list_revocations(_: Reader, service: ServiceDep) -> schemas.RevocationsOut:
    """Also what an auditor pins (`lightfence audit … --revocations`)."""
    return schemas.RevocationsOut(
        items=[_revocation_out(r) for r in await service.db.run(
            lambda store: store.revocations())])
