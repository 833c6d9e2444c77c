"""Schemathesis against the served OpenAPI schema: no input may produce a 5xx."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from starlette.testclient import TestClient

from tests.verifier.conftest import make_config
from tests.verifier.fleet import Fleet
from verifier.app import create_app
from verifier.auth import issue_token


@pytest.mark.slow
def test_no_input_causes_a_server_error(tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path, Fleet.create()))
    with TestClient(app) as client:  # runs the lifespan once for the whole fuzz run
        service = app.state.service
        _, secret = service.db._pool.submit(
            issue_token, service.db.store, role="admin", label="fuzz", landmark_id=None,
            now_unix_ns=time.time_ns()).result()
        schema = schemathesis.openapi.from_dict(client.get("/openapi.json").json())
        headers = {"Authorization": f"Bearer {secret}"}
        # An unparseable operation is itself a failure: .ok() raises on Err.
        operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
        for operation in operations:
            if "stream" in operation.path:  # infinite response; covered in test_flow
                continue

            @settings(max_examples=15, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy())
            def check(case: Any) -> None:
                kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
                response = client.request(
                    kwargs["method"], kwargs["url"], headers=kwargs.get("headers"),
                    params=kwargs.get("params"), json=kwargs.get("json"),
                    content=kwargs.get("data") if isinstance(kwargs.get("data"), bytes) else None)
                assert response.status_code < 500, (case.method, case.path, response.text)

            check()
