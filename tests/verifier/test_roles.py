"""Every route × every role: the table below is the authorisation contract.

The first test fails when the app gains a route this table does not list (a new route must
state who may call it); the second requests each route with a token of each role, and without
one, and checks the answer is 401, 403 or admitted exactly as the table and `verifier.roles`
say. A request is "admitted" when the answer is neither 401 nor 403 (it may still be 404 or
422: the body and ids here are deliberately not valid, so nothing is changed).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from fastapi import FastAPI

from tests.verifier.conftest import make_config
from tests.verifier.fleet import Fleet
from verifier.app import create_app
from verifier.auth import issue_token
from verifier.roles import PERMISSIONS_BY_ROLE, ROLES, Permission, allows

PUBLIC = "public"
# (method, path) -> the permission the route needs, or PUBLIC.
ROUTE_PERMISSION: dict[tuple[str, str], Permission | str] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/v1/map/countries.geojson"): PUBLIC,
    ("GET", "/v1/vocabulary"): PUBLIC,
    ("GET", "/v1/me"): "identify",
    ("GET", "/v1/landmarks/{landmark_id}/tasks"): "upload",
    ("POST", "/v1/measurements"): "upload",
    ("POST", "/v1/landmarks"): "admin",
    ("POST", "/v1/chips"): "admin",
    ("POST", "/v1/chips/bulk"): "admin",
    ("PUT", "/v1/chips/{chip_id}/licence"): "admin",
    ("PUT", "/v1/chips/{chip_id}/site"): "admin",
    ("DELETE", "/v1/chips/{chip_id}/site"): "admin",
    ("GET", "/v1/chips/{chip_id}/rtt-baseline"): "read",
    ("DELETE", "/v1/chips/{chip_id}/rtt-baseline"): "admin",
    ("POST", "/v1/chips/{chip_id}/attestation/challenge"): "admin",
    ("POST", "/v1/chips/{chip_id}/attestation"): "admin",
    ("GET", "/v1/chips/{chip_id}/attestation"): "read",
    ("PUT", "/v1/policies/{name}"): "admin",
    ("POST", "/v1/tokens"): "admin",
    ("GET", "/v1/tokens"): "admin",
    ("POST", "/v1/tokens/{token_id}/disable"): "admin",
    ("POST", "/v1/revocations"): "admin",
    ("GET", "/v1/revocations"): "read",
    ("POST", "/v1/alerts/{alert_id}/ack"): "operate",
    ("POST", "/v1/alerts/{alert_id}/resolve"): "operate",
    ("GET", "/v1/stats"): "read",
    ("GET", "/v1/replica"): "read",
    ("GET", "/v1/chips"): "read",
    ("GET", "/v1/chips/{chip_id}"): "read",
    ("GET", "/v1/chips/{chip_id}/verdicts"): "read",
    ("GET", "/v1/landmarks"): "read",
    ("GET", "/v1/policies"): "read",
    ("GET", "/v1/alerts"): "read",
    ("GET", "/v1/alerts/stream"): "read",
    ("GET", "/v1/alerts/{alert_id}"): "read",
    ("GET", "/v1/log/public-key"): "evidence",
    ("GET", "/v1/chips/{chip_id}/evidence"): "evidence",
    ("GET", "/v1/channels"): "read",
    ("PUT", "/v1/channels/{channel_id}"): "admin",
    ("DELETE", "/v1/channels/{channel_id}"): "admin",
    ("GET", "/v1/routing-rules"): "read",
    ("POST", "/v1/routing-rules"): "admin",
    ("DELETE", "/v1/routing-rules/{rule_id}"): "admin",
    ("GET", "/v1/mutes"): "read",
    ("POST", "/v1/mutes"): "operate",
    ("DELETE", "/v1/mutes/{rule_id}"): "operate",
    ("GET", "/v1/deliveries"): "read",
    ("GET", "/v1/zones"): "read",
    ("PUT", "/v1/zones/{zone_id}"): "admin",
    ("PUT", "/v1/chips/{chip_id}/membership"): "admin",
}
OWN_LANDMARK = "lm-own"
_PATH_VALUES = {"landmark_id": OWN_LANDMARK, "chip_id": "no-such-chip", "alert_id": "999999",
                "name": "no-such-policy", "channel_id": "no-such-channel",
                "zone_id": "no-such-zone", "rule_id": "999999", "token_id": "999999"}


def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    """Every (method, path) the app serves, read from its OpenAPI description (the public way
    to list routes; FastAPI includes routers lazily). No route is hidden from the schema."""
    return {(method.upper(), path) for path, operations in app.openapi()["paths"].items()
            for method in operations}


@pytest_asyncio.fixture
async def app_and_tokens(tmp_path: Path) -> AsyncIterator[tuple[FastAPI, dict[str, str]]]:
    fleet = Fleet.create()
    app = create_app(make_config(tmp_path, fleet))
    async with app.router.lifespan_context(app):
        service = app.state.service
        tokens = {}
        for role in ROLES:
            landmark_id = OWN_LANDMARK if role == "landmark" else None
            _, tokens[role] = await service.db.run(
                issue_token, role=role, label=f"{role}-t", landmark_id=landmark_id,
                now_unix_ns=time.time_ns())
        yield app, tokens


async def response_status(app: FastAPI, method: str, path: str, token: str | None) -> int:
    """The status line of one request, read straight from the ASGI app; the request is then
    cancelled, so a long-poll or an event stream needs no waiting."""
    headers = [(b"content-type", b"application/json")]
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    query = b"wait_s=0" if path.endswith("/tasks") else b""
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query,
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 1),
        "server": ("t", 80)}
    loop = asyncio.get_running_loop()
    status: asyncio.Future[int] = loop.create_future()
    body_sent = False

    async def receive() -> dict[str, Any]:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": b"{}", "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects; the task is cancelled
        raise AssertionError("unreachable")

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start" and not status.done():
            status.set_result(message["status"])

    task: asyncio.Future[None] = asyncio.ensure_future(app(scope, receive, send))
    try:
        either: list[asyncio.Future[Any]] = [task, status]
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if not status.done():
            task.result()  # raises the app's error
        return status.result()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: _PATH_VALUES[m.group(1)], path)


@pytest.mark.asyncio
async def test_every_route_states_who_may_call_it(
        app_and_tokens: tuple[FastAPI, dict[str, str]]) -> None:
    app, _ = app_and_tokens
    routes = app_routes(app)
    assert routes - ROUTE_PERMISSION.keys() == set(), "routes with no role in ROUTE_PERMISSION"
    assert ROUTE_PERMISSION.keys() - routes == set(), "ROUTE_PERMISSION lists gone routes"


def test_role_table_is_least_privilege() -> None:
    assert PERMISSIONS_BY_ROLE["viewer"] == {"identify", "read"}
    assert PERMISSIONS_BY_ROLE["auditor"] == {"identify", "read", "evidence"}
    assert PERMISSIONS_BY_ROLE["operator"] == {"identify", "read", "operate"}
    assert PERMISSIONS_BY_ROLE["landmark"] == {"identify", "upload"}
    assert not allows("unknown-role", "read")


@pytest.mark.asyncio
async def test_every_route_with_every_role(
        app_and_tokens: tuple[FastAPI, dict[str, str]]) -> None:
    app, tokens = app_and_tokens
    wrong: list[str] = []
    for (method, path), permission in sorted(ROUTE_PERMISSION.items()):
        url = concrete(path)
        anonymous = await response_status(app, method, url, None)
        if (permission == PUBLIC) == (anonymous == 401):
            wrong.append(f"{method} {path} without a token: {anonymous}")
        for role, secret in tokens.items():
            got = await response_status(app, method, url, secret)
            admitted = got not in (401, 403)
            expected = permission == PUBLIC or allows(role, permission)  # type: ignore[arg-type]
            if admitted != expected:
                wrong.append(f"{method} {path} as {role}: {got}, expected "
                             f"{'admitted' if expected else 403}")
    assert wrong == []


@pytest.mark.asyncio
async def test_a_landmark_token_reaches_only_its_own_landmark(
        app_and_tokens: tuple[FastAPI, dict[str, str]]) -> None:
    app, tokens = app_and_tokens
    own = await response_status(app, "GET", f"/v1/landmarks/{OWN_LANDMARK}/tasks",
                                tokens["landmark"])
    other = await response_status(app, "GET", "/v1/landmarks/lm-other/tasks",
                                  tokens["landmark"])
    assert (own, other) == (404, 403)  # its own (unregistered) landmark is merely not found
