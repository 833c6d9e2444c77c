"""The FastAPI application: routes, error mapping, body-size cap, metrics, static dashboard."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lightfence import __version__
from verifier import (
    routes_admin,
    routes_attestation,
    routes_evidence,
    routes_landmark,
    routes_ops,
    routes_read,
    routes_revocation,
    routes_sites,
    schemas,
)
from verifier.config import VerifierConfig
from verifier.deps import MetricsAccess
from verifier.errors import VerifierError
from verifier.service import Service

logger = logging.getLogger(__name__)


def _finite(value: Any) -> Any:
    """`value` with every non-finite float replaced by its text ("nan", "inf")."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


class BodyLimit:
    """Refuses bodies over `max_bytes` with 413 before they are buffered (declared or streamed)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self._app = app
        self._max = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and (not value.isdigit() or int(value) > self._max):
                await _too_large(self._max)(scope, receive, send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self._max:
                raise _TooLarge
            return message

        try:
            await self._app(scope, limited, send)
        except _TooLarge:
            await _too_large(self._max)(scope, receive, send)


class _TooLarge(Exception):
    pass


def _too_large(max_bytes: int) -> JSONResponse:
    return JSONResponse({"detail": f"request body larger than {max_bytes} bytes"}, 413)


def create_app(config: VerifierConfig) -> FastAPI:
    service = Service(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(title="Lightfence verifier", version=__version__, lifespan=lifespan)
    app.state.service = service

    @app.exception_handler(VerifierError)
    async def verifier_error(_: Request, exc: VerifierError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own answer echoes each bad input, and a NaN or infinity there cannot be
        # written as JSON (it raised, a 500): the same 422, with such numbers as text.
        return JSONResponse({"detail": _finite(jsonable_encoder(exc.errors()))}, 422)

    @app.exception_handler(json.JSONDecodeError)
    async def bad_json(_: Request, exc: json.JSONDecodeError) -> JSONResponse:
        return JSONResponse({"detail": f"body is not JSON: {exc}"}, 400)

    @app.get("/healthz", response_model=schemas.HealthOut, tags=["ops"])
    async def healthz() -> schemas.HealthOut:
        return schemas.HealthOut(status="ok", version=__version__)

    @app.get("/metrics", tags=["ops"], response_class=Response,
             responses={200: {"content": {"text/plain": {}}}})
    async def metrics(_: MetricsAccess) -> Response:
        return Response(generate_latest(service.metrics.registry),
                        media_type=CONTENT_TYPE_LATEST)

    app.include_router(routes_landmark.router)
    app.include_router(routes_admin.router)
    app.include_router(routes_revocation.router)
    app.include_router(routes_read.router)
    app.include_router(routes_evidence.router)
    app.include_router(routes_ops.router)
    app.include_router(routes_attestation.router)
    app.include_router(routes_sites.router)
    from verifier.dashboard_routes import mount_static
    from verifier.dashboard_routes import router as dashboard_router

    app.include_router(dashboard_router)
    mount_static(app)
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)
    return app
