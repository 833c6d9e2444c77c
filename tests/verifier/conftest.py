from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.verifier.fleet import Fleet
from tests.verifier.pg_cluster import Cluster, find_binaries
from verifier.app import create_app
from verifier.auth import issue_token
from verifier.config import VerifierConfig, default_config
from verifier.service import Service
from verifier.store import Store, open_store

_PG_BINARIES, _PG_MISSING = find_binaries()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """One throw-away PostgreSQL server for the whole test session (started on first use)."""
    if _PG_BINARIES is None:
        pytest.skip(_PG_MISSING)
    cluster = Cluster.start(_PG_BINARIES)
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The `database_url` of each backend: "" (SQLite in the test's data_dir) or a fresh
    PostgreSQL database with the schema applied."""
    if request.param == "sqlite":
        yield ""
        return
    cluster: Cluster = request.getfixturevalue("pg_cluster")
    url = cluster.fresh_url()
    yield url
    cluster.drop(url)


@pytest.fixture
def store(tmp_path: Path, database_url: str) -> Iterator[Store]:
    """A `Store` on each backend."""
    opened = open_store(default_config(data_dir=tmp_path, database_url=database_url))
    yield opened
    opened.close()


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
async def harness(tmp_path: Path, database_url: str) -> AsyncIterator[Harness]:
    """A verifier on each backend."""
    async with open_harness(tmp_path, database_url=database_url) as h:
        yield h


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
