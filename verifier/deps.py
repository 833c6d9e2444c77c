"""FastAPI dependencies: the service object and bearer-token authorisation by role."""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from verifier.auth import authenticate
from verifier.errors import ForbiddenError, UnauthorizedError
from verifier.model import Token
from verifier.roles import Permission, allows
from verifier.service import Service
from verifier.store import Store

_bearer = HTTPBearer(auto_error=False)


async def get_service(request: Request) -> Service:
    # async, though it awaits nothing: FastAPI runs a plain `def` dependency on a worker
    # thread, a thread hand-off per request (a twentieth of an upload's event-loop time).
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


async def bearer_secret(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str | None:
    """The request's bearer secret, not yet checked (a route that checks it in the same trip to
    the database thread as its own work: the task poll)."""
    return credentials.credentials if credentials else None


BearerSecret = Annotated[str | None, Depends(bearer_secret)]


async def _token(service: Service, secret: str | None) -> Token:
    return await service.db.run(permitted_token, secret, None, time.time_ns())


def permitted_token(store: Store, secret: str | None, permission: Permission | None,
                    now_unix_ns: int) -> Token:
    """On the database thread: the token for `secret`, 401 when missing, unknown, expired or
    disabled, 403 when its role does not grant `permission` (None: any role)."""
    if not secret:
        raise UnauthorizedError("missing bearer token")
    token = authenticate(store, secret, now_unix_ns)
    if token is None:
        raise UnauthorizedError("unknown bearer token")
    if permission is not None and not allows(token.role, permission):
        raise ForbiddenError(f"role {token.role} may not do this (needs {permission})")
    return token


def require(permission: Permission) -> Callable[..., Coroutine[Any, Any, Token]]:
    """A dependency that admits tokens whose role grants `permission` (verifier.roles)."""

    async def dependency(service: ServiceDep, secret: BearerSecret) -> Token:
        return await service.db.run(permitted_token, secret, permission, time.time_ns())

    return dependency


async def stream_token(
    request: Request, service: ServiceDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Token:
    """EventSource cannot send headers, so the stream also takes `?access_token=`."""
    secret = credentials.credentials if credentials else request.query_params.get("access_token")
    token = await _token(service, secret)
    if not allows(token.role, "read"):
        raise ForbiddenError(f"role {token.role} may not read alerts")
    return token


async def metrics_access(
    service: ServiceDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """`/metrics` is open unless the config sets `metrics_public = false`; then it needs a
    token allowed to read (a scraper gets a viewer token)."""
    if service.config.metrics_public:
        return
    token = await _token(service, credentials.credentials if credentials else None)
    if not allows(token.role, "read"):
        raise ForbiddenError(f"role {token.role} may not read metrics")


MetricsAccess = Annotated[None, Depends(metrics_access)]
Admin = Annotated[Token, Depends(require("admin"))]
Reader = Annotated[Token, Depends(require("read"))]
EvidenceReader = Annotated[Token, Depends(require("evidence"))]
Operator = Annotated[Token, Depends(require("operate"))]
AnyRole = Annotated[Token, Depends(require("identify"))]
Uploader = Annotated[Token, Depends(require("upload"))]
