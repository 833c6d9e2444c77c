"""Admin routes: registries, policies, tokens, alert acknowledge/resolve."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Path

from verifier import registry, schemas
from verifier.auth import issue_token
from verifier.convert import alert_out, chip_out, landmark_out, policy_out
from verifier.deps import Admin, Operator, ServiceDep
from verifier.model import Policy
from verifier.store import Store

router = APIRouter(prefix="/v1", tags=["admin"])
IdPath = Annotated[str, Path(pattern=schemas.ID_PATTERN)]


@router.post("/landmarks", response_model=schemas.LandmarkOut)
async def register_landmark(body: schemas.LandmarkIn, _: Admin,
                            service: ServiceDep) -> schemas.LandmarkOut:
    now = time.time_ns()
    landmark = await service.db.run(
        registry.register_landmark, service.keys, ca_public_key=service.config.ca_public_key,
        certificate=body.certificate, host=body.host, port=body.port, now_unix_ns=now)
    service.announce_keys("landmark", [landmark.landmark_id])
    return landmark_out(landmark, now, service.config.landmark_dead_after_s)


@router.post("/chips", response_model=schemas.ChipOut)
async def register_chip(body: schemas.ChipIn, _: Admin, service: ServiceDep) -> schemas.ChipOut:
    chip = await service.db.run(
        registry.register_chip, service.keys, ca_public_key=service.config.ca_public_key,
        certificate=body.certificate, owner=body.owner, host=body.host, port=body.port,
        licence=body.licence, policy=body.policy, now_unix_ns=time.time_ns())
    service.announce_keys("chip", [chip.chip_id])
    return chip_out(chip, await service.db.run(Store.last_verdict, chip.chip_id))


@router.post("/chips/bulk", response_model=schemas.ChipsBulkOut)
async def register_chips(body: schemas.ChipsBulkIn, _: Admin,
                         service: ServiceDep) -> schemas.ChipsBulkOut:
    """Enrol up to 1,000 chips in one transaction: every one, or (422 naming the first bad
    one) none."""
    chips = await service.db.run(
        registry.register_chips, service.keys, ca_public_key=service.config.ca_public_key,
        enrolments=[registry.Enrolment(c.certificate, c.owner, c.host, c.port, c.licence,
                                       c.policy) for c in body.chips],
        now_unix_ns=time.time_ns())
    service.announce_keys("chip", [c.chip_id for c in chips])
    return schemas.ChipsBulkOut(enrolled=len(chips), chip_ids=[c.chip_id for c in chips])


@router.put("/chips/{chip_id}/licence", response_model=schemas.ChipOut)
async def set_licence(chip_id: IdPath, body: schemas.LicenceIn, _: Admin,
                      service: ServiceDep) -> schemas.ChipOut:
    chip = await service.db.run(registry.set_licence, chip_id, body.licence)
    return chip_out(chip, await service.db.run(Store.last_verdict, chip_id))


@router.put("/policies/{name}", response_model=schemas.PolicyOut)
async def put_policy(name: IdPath, body: schemas.PolicyIn, _: Admin,
                     service: ServiceDep) -> schemas.PolicyOut:
    policy = Policy(name, **body.model_dump())  # PolicyIn's fields are Policy's
    return policy_out(await service.db.run(registry.put_policy, policy),
                      service.config.min_key_protection)


@router.post("/tokens", response_model=schemas.TokenOut)
async def create_token(body: schemas.TokenIn, _: Admin, service: ServiceDep) -> schemas.TokenOut:
    token, secret = await service.db.run(issue_token, role=body.role, label=body.label,
                                         landmark_id=body.landmark_id,
                                         now_unix_ns=time.time_ns(),
                                         expires_unix_ns=body.expires_unix_ns)
    return schemas.TokenOut(token_id=token.token_id, role=body.role, label=token.label,
                            landmark_id=token.landmark_id, token=secret,
                            expires_unix_ns=body.expires_unix_ns)


@router.post("/alerts/{alert_id}/ack", response_model=schemas.AlertOut)
async def acknowledge(alert_id: Annotated[int, Path(ge=1, le=2**62)],
                      body: schemas.AlertActionIn, token: Operator,
                      service: ServiceDep) -> schemas.AlertOut:
    alert = await service.db.run(service.alerts.act, alert_id, action="acknowledge",
                                 by=token.label, reason=body.reason, now_unix_ns=time.time_ns())
    return alert_out(alert)


@router.post("/alerts/{alert_id}/resolve", response_model=schemas.AlertOut)
async def resolve(alert_id: Annotated[int, Path(ge=1, le=2**62)], body: schemas.AlertActionIn,
                  token: Operator, service: ServiceDep) -> schemas.AlertOut:
    alert = await service.db.run(service.alerts.act, alert_id, action="resolve", by=token.label,
                                 reason=body.reason, now_unix_ns=time.time_ns())
    return alert_out(alert)
