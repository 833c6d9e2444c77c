"""Read-only routes for dashboards: chips, verdicts, landmarks, alerts, the alert stream."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from verifier import schemas
from verifier.convert import alert_out, chip_out, landmark_out, policy_out, verdict_out
from verifier.deps import AnyRole, Reader, ServiceDep, stream_token
from verifier.errors import NotFoundError
from verifier.model import AlertFilter, AlertType, Chip, Token
from verifier.operations import in_scope
from verifier.store import Store

router = APIRouter(prefix="/v1", tags=["read"])
IdPath = Annotated[str, Path(pattern=schemas.ID_PATTERN)]
IdQuery = Annotated[str | None, Query(pattern=schemas.ID_PATTERN)]
Cursor = Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$", description="next_cursor")]
Limit = Annotated[int, Query(ge=1, le=500)]
IdCursor = Annotated[str | None, Query(pattern=schemas.ID_PATTERN,
                                       description="next_cursor of the previous page")]
PageLimit = Annotated[int, Query(ge=1, le=1_000)]


@router.get("/me", response_model=schemas.MeOut)
async def me(token: AnyRole) -> schemas.MeOut:
    return schemas.MeOut(role=token.role,  # type: ignore[arg-type]
                         label=token.label, landmark_id=token.landmark_id)


class ReplicaOut(BaseModel):
    """This replica's part in a deployment of several (docs/deploy.md)."""

    replica_id: str
    leader: bool
    lease_token: int | None


@router.get("/replica", response_model=ReplicaOut)
async def replica(_: Reader, service: ServiceDep) -> ReplicaOut:
    """Whether this replica holds the leader lease (it schedules, decides and appends evidence)
    and under which fencing token; every replica serves the API and ingestion."""
    token = service.leadership.token
    return ReplicaOut(replica_id=service.leadership.holder, leader=token is not None,
                      lease_token=token)


@router.get("/stats", response_model=schemas.StatsOut)
async def stats(_: Reader, service: ServiceDep) -> schemas.StatsOut:
    m = service.metrics
    return schemas.StatsOut(measurements_accepted_total=m.accepted_total,
                            measurements_rejected_by_reason=dict(m.rejected_by_reason),
                            batches_total=m.batches_total,
                            open_alerts=await service.db.run(Store.count_open_alerts))


@router.get("/chips", response_model=schemas.ChipsOut)
async def list_chips(_: Reader, service: ServiceDep, zone: IdQuery = None,
                     group: IdQuery = None, cursor: IdCursor = None,
                     limit: PageLimit = 500) -> schemas.ChipsOut:
    """Chips by id, one page at a time, or those in `zone` and/or `group` (docs/operations.md).
    `next_cursor` is set when more may follow."""
    def load(store: Store) -> tuple[list[schemas.ChipOut], str | None]:
        members = store.memberships() if zone or group else None
        chips: list[Chip] = []
        after = cursor
        while True:  # a zone or group filter may drop rows: read on until a page is full
            page = store.chips_page(after, limit)
            chips += [c for c in page
                      if members is None or in_scope(members.get(c.chip_id), zone, group)]
            if len(chips) >= limit or len(page) < limit:
                more = len(chips) > limit or len(page) == limit
                break
            after = page[-1].chip_id
        chips = chips[:limit]
        return [chip_out(c, store.last_verdict(c.chip_id),
                         members.get(c.chip_id) if members is not None
                         else store.membership(c.chip_id)) for c in chips], (
            chips[-1].chip_id if more and chips else None)

    items, next_cursor = await service.db.run(load)
    return schemas.ChipsOut(items=items, next_cursor=next_cursor)


@router.get("/chips/{chip_id}", response_model=schemas.ChipOut)
async def get_chip(chip_id: IdPath, _: Reader, service: ServiceDep) -> schemas.ChipOut:
    chip = await service.db.run(Store.chip, chip_id)
    if chip is None:
        raise NotFoundError(f"no chip {chip_id}")
    return chip_out(chip, await service.db.run(Store.last_verdict, chip_id),
                    await service.db.run(Store.membership, chip_id))


@router.get("/chips/{chip_id}/verdicts", response_model=schemas.VerdictsOut)
async def chip_verdicts(chip_id: IdPath, _: Reader, service: ServiceDep,
                        cursor: Cursor = None, limit: Limit = 50) -> schemas.VerdictsOut:
    if await service.db.run(Store.chip, chip_id) is None:
        raise NotFoundError(f"no chip {chip_id}")
    rows = await service.db.run(Store.verdicts, chip_id, int(cursor) if cursor else None, limit)
    next_cursor = str(rows[-1].verdict_id) if len(rows) == limit else None
    return schemas.VerdictsOut(items=[verdict_out(v) for v in rows], next_cursor=next_cursor)


@router.get("/landmarks", response_model=schemas.LandmarksOut)
async def list_landmarks(_: Reader, service: ServiceDep, cursor: IdCursor = None,
                         limit: PageLimit = 500) -> schemas.LandmarksOut:
    now = time.time_ns()
    items = await service.db.run(Store.landmarks_page, cursor, limit)
    return schemas.LandmarksOut(items=[
        landmark_out(lm, now, service.config.landmark_dead_after_s) for lm in items],
        next_cursor=items[-1].landmark_id if len(items) == limit else None)


@router.get("/policies", response_model=schemas.PoliciesOut)
async def list_policies(_: Reader, service: ServiceDep) -> schemas.PoliciesOut:
    return schemas.PoliciesOut(items=[policy_out(p, service.config.min_key_protection)
                                      for p in await service.db.run(Store.policies)])


@router.get("/alerts", response_model=schemas.AlertsOut)
async def list_alerts(
    *, _: Reader, service: ServiceDep,
    status: Annotated[schemas.AlertStatus | None, Query()] = None,
    alert_type: Annotated[AlertType | None, Query(alias="type")] = None,
    severity: Annotated[schemas.Severity | None, Query()] = None,
    chip_id: IdQuery = None, landmark_id: IdQuery = None,
    cursor: Cursor = None, limit: Limit = 100,
) -> schemas.AlertsOut:
    subject_kind, subject_id = (("chip", chip_id) if chip_id else
                                ("landmark", landmark_id) if landmark_id else (None, None))
    flt = AlertFilter(status=status, type=alert_type, subject_kind=subject_kind,
                      subject_id=subject_id, severity=severity,
                      before_id=int(cursor) if cursor else None, limit=limit)
    rows = await service.db.run(Store.alerts, flt)
    next_cursor = str(rows[-1].alert_id) if len(rows) == limit else None
    return schemas.AlertsOut(items=[alert_out(a) for a in rows], next_cursor=next_cursor)


@router.get("/alerts/stream", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def alert_stream(_: Annotated[Token, Depends(stream_token)],
                       service: ServiceDep) -> StreamingResponse:
    """Server-sent events: one unnamed event per alert change (data = AlertOut JSON)."""
    async def frames() -> AsyncIterator[str]:
        service.metrics.sse_clients.inc()
        try:
            async for frame in service.hub.subscribe():
                yield frame
        finally:
            service.metrics.sse_clients.dec()

    return StreamingResponse(frames(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/alerts/{alert_id}", response_model=schemas.AlertOut)
async def get_alert(alert_id: Annotated[int, Path(ge=1, le=2**62)], _: Reader,
                    service: ServiceDep) -> schemas.AlertOut:
    alert = await service.db.run(Store.alert, alert_id)
    if alert is None:
        raise NotFoundError(f"no alert {alert_id}")
    return alert_out(alert)
