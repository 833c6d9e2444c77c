from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.verifier.fleet import Fleet
from verifier.app import create_app
from verifier.auth import issue_token
from verifier.config import VerifierConfig, default_config
from verifier.service import Service


@dataclass
class Harness:
    client: httpx.AsyncClient
    service: Service
    fleet: Fleet
    admin: dict[str, str]
    dashboard: dict[str, str]

    async def token(self, role: str, landmark_id: str | None = None) -> dict[str, str]:
        _, secret = await self.service.db.run(issue_token, role=role, label=f"{role}-t",
                                              landmark_id=landmark_id,
                                              now_unix_ns=time.time_ns())
        return {"Authorization": f"Bearer {secret}"}

    async def post(self, path: str, body: Any, headers: dict[str, str] | None = None
                   ) -> httpx.Response:
        return await self.client.post(path, json=body, headers=headers or self.admin)


def make_config(tmp_path: Path, fleet: Fleet, **overrides: Any) -> VerifierConfig:
    # Test fleets hold software keys; tests of the key rule raise the floor themselves.
    values: dict[str, Any] = {"data_dir": tmp_path, "ca_public_key_b64": fleet.ca_b64,
                              "tick_s": 3600.0, "min_key_protection": "software"}
    values.update(overrides)
    return default_config(**values)


@asynccontextmanager
async def open_harness(tmp_path: Path, fleet: Fleet | None = None,
                       **overrides: Any) -> AsyncIterator[Harness]:
    """A real verifier app (lifespan, background loops) behind an in-process HTTP client."""
    fleet = fleet or Fleet.create()
    app = create_app(make_config(tmp_path, fleet, **overrides))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            service: Service = app.state.service
            h = Harness(client, service, fleet, {}, {})
            h.admin = await h.token("admin")
            h.dashboard = await h.token("dashboard")
            yield h


@pytest_asyncio.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with open_harness(tmp_path) as h:
        yield h


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
