"""One vocabulary: verdicts, reason codes (geo), chip states and alert types (verifier.model),
used by the API schemas, the alerts and the dashboard, never spelled out a second time."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from geo.assessment import Verdict
from geo.decision import ReasonCode
from verifier import dashboard_routes, schemas
from verifier.model import SEVERITY_BY_TYPE, AlertType, ChipState


def test_chip_states_are_unknown_and_the_verdicts() -> None:
    assert [s.value for s in ChipState] == ["unknown", *(v.value for v in Verdict)]


def test_every_alert_type_has_exactly_one_severity() -> None:
    assert sorted(SEVERITY_BY_TYPE) == sorted(AlertType)
    assert set(SEVERITY_BY_TYPE.values()) <= {"critical", "high", "medium", "low"}


def test_the_api_schema_lists_exactly_the_enums_values() -> None:
    api = schemas.VerdictOut.model_json_schema()
    defs = api["$defs"]
    assert defs["Verdict"]["enum"] == [v.value for v in Verdict]
    assert defs["ReasonCode"]["enum"] == [c.value for c in ReasonCode]
    chip = schemas.ChipOut.model_json_schema()["$defs"]
    assert chip["ChipState"]["enum"] == [s.value for s in ChipState]
    alert = schemas.AlertOut.model_json_schema()["$defs"]
    assert alert["AlertType"]["enum"] == [t.value for t in AlertType]


def test_a_value_outside_the_vocabulary_is_refused_by_name() -> None:
    with pytest.raises(ValidationError, match="alert_types"):
        schemas.VocabularyOut(verdicts=[], chip_states=[], reason_codes=[],
                              alert_types=["went_missing"])  # type: ignore[list-item]


def test_the_dashboard_reads_the_vocabulary_from_the_verifier() -> None:
    app = FastAPI()
    app.include_router(dashboard_routes.router)
    dashboard_routes.mount_static(app)
    client = TestClient(app)
    body = client.get("/v1/vocabulary").json()
    assert body == {
        "verdicts": [v.value for v in Verdict],
        "chip_states": [s.value for s in ChipState],
        "reason_codes": [c.value for c in ReasonCode],
        "alert_types": [t.value for t in AlertType],
    }
    script = client.get("/app.js").text
    assert 'fetch("/v1/vocabulary")' in script
    # No list of its own: no alert type is spelled in the page's scripts.
    for asset in ("app.js", "ops.js", "map.js", "api.js"):
        text = client.get(f"/{asset}").text
        assert not [t for t in AlertType if f'"{t.value}"' in text], asset
