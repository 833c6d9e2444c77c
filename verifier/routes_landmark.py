"""Landmark-facing routes: task long-poll and measurement upload."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from verifier import schemas
from verifier.convert import task_out
from verifier.deps import ServiceDep, Uploader
from verifier.errors import ForbiddenError, NotFoundError

router = APIRouter(prefix="/v1", tags=["landmarks"])
IdPath = Annotated[str, Path(pattern=schemas.ID_PATTERN)]


@router.get("/landmarks/{landmark_id}/tasks", response_model=schemas.TasksOut)
async def poll_tasks(landmark_id: IdPath, token: Uploader, service: ServiceDep,
                     wait_s: Annotated[float, Query(ge=0, le=30)] = 20.0) -> schemas.TasksOut:
    """Long-poll: returns as soon as tasks exist for this landmark, or empty after `wait_s`."""
    if token.role == "landmark" and token.landmark_id != landmark_id:
        raise ForbiddenError(f"this token belongs to landmark {token.landmark_id}")
    if landmark_id not in service.keys.landmarks:
        raise NotFoundError(f"no landmark {landmark_id}")
    deadline = time.monotonic() + wait_s
    event = service.task_event(landmark_id)
    while True:
        now_ns = time.time_ns()
        event.clear()
        tasks = await service.poll_tasks(landmark_id, now_ns)
        remaining = deadline - time.monotonic()
        if tasks or remaining <= 0:
            return schemas.TasksOut(tasks=[task_out(t) for t in tasks])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), remaining)


@router.post("/measurements", response_model=schemas.IngestOut,
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": {"type": "object", "description":
                                                 "protocol MeasurementBatch.to_json()"}}}}})
async def upload_measurements(request: Request, token: Uploader,
                              service: ServiceDep) -> schemas.IngestOut:
    """Upload a signed MeasurementBatch; idempotent by batch id."""
    body = await request.body()
    result = await service.ingestor.ingest(body, token)
    return schemas.IngestOut.model_validate(result.to_json())
