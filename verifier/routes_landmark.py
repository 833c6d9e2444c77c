"""Landmark-facing routes: task long-poll and measurement upload."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from functools import partial
from typing import Annotated

import orjson
from fastapi import APIRouter, Path, Query, Request, Response

from verifier import schemas
from verifier.convert import task_out
from verifier.deps import BearerSecret, ServiceDep, Uploader, permitted_token
from verifier.errors import ForbiddenError, NotFoundError
from verifier.registry import KeyCache
from verifier.store import Store

router = APIRouter(prefix="/v1", tags=["landmarks"])
IdPath = Annotated[str, Path(pattern=schemas.ID_PATTERN)]


@router.get("/landmarks/{landmark_id}/tasks", response_model=schemas.TasksOut)
async def poll_tasks(landmark_id: IdPath, secret: BearerSecret, service: ServiceDep,
                     wait_s: Annotated[float, Query(ge=0, le=30)] = 20.0) -> schemas.TasksOut:
    """Long-poll: returns as soon as tasks exist for this landmark, or empty after `wait_s`.
    The token is checked in the first poll's own trip to the database thread (a poll during a
    tick queues behind the tick's work once, not twice); nothing is touched or taken unless it
    passes."""
    deadline = time.monotonic() + wait_s
    # Created only once an authorised poll of a known landmark got here: unauthenticated
    # requests must not grow the table of waiters.
    event = service.known_task_event(landmark_id)
    authorize: Callable[[Store], object] | None = partial(
        _authorize, secret=secret, landmark_id=landmark_id, keys=service.keys,
        now_unix_ns=time.time_ns())
    while True:
        if event is not None:
            event.clear()
        tasks = await service.poll_tasks(landmark_id, time.time_ns(), authorize)
        authorize = None
        remaining = deadline - time.monotonic()
        if tasks or remaining <= 0:
            return schemas.TasksOut(tasks=[task_out(t) for t in tasks])
        if event is None:  # its first wait here: poll once more with the event set up, so a
            event = service.task_event(landmark_id)  # wake-up just before is not missed
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), remaining)


def _authorize(store: Store, *, secret: str | None, landmark_id: str,
               keys: KeyCache, now_unix_ns: int) -> None:
    """401/403/404 (in this order) before a poll touches anything: an uploader's token, of this
    landmark unless it is an admin's, for a registered landmark."""
    token = permitted_token(store, secret, "upload", now_unix_ns)
    if token.role == "landmark" and token.landmark_id != landmark_id:
        raise ForbiddenError(f"this token belongs to landmark {token.landmark_id}")
    if landmark_id not in keys.landmarks:
        raise NotFoundError(f"no landmark {landmark_id}")


@router.post("/measurements", response_model=schemas.IngestOut,
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": {"type": "object", "description":
                                                 "protocol MeasurementBatch.to_json()"}}}}})
async def upload_measurements(request: Request, token: Uploader,
                              service: ServiceDep) -> Response:
    """Upload a signed MeasurementBatch; idempotent by batch id. The answer is written as
    `IngestResult.to_json` (the `IngestOut` shape) without a model's validation and
    serialisation: an upload is the verifier's hottest request."""
    body = await request.body()
    result = await service.ingestor.ingest(body, token)
    return Response(orjson.dumps(result.to_json()), media_type="application/json")
