"""The verifier's evidence records (verifier.evidence) over the pure format module."""

from __future__ import annotations

import math
from typing import Any

import pytest

from protocol.evidence_format import canonical_json, verdict_entry
from tests.protocol.test_evidence_format import VERDICT_FIELDS
from verifier.errors import InvalidInputError
from verifier.evidence import build_alert_evidence, build_evidence


def _verifier_fields() -> dict[str, Any]:
    """The golden verdict's fields as the verifier passes them (it adds the solver version)."""
    return {k: v for k, v in VERDICT_FIELDS.items() if k != "solver_version"}


def test_a_verdict_record_is_the_format_module_entry_with_the_verifier_solver_version() -> None:
    record = build_evidence(**_verifier_fields())
    version = record.body["solver"]["version"]
    assert record.canonical_bytes() == canonical_json(
        verdict_entry(**{**VERDICT_FIELDS, "solver_version": version})
    )
    assert (record.kind, record.chip_id, record.time_unix_ns) == (
        "verdict", "chip-1", VERDICT_FIELDS["decided_unix_ns"],
    )  # fmt: skip


def test_non_canonical_input_is_refused_as_invalid_input_naming_the_field() -> None:
    fields = {**_verifier_fields(), "policy": {"floor": math.nan}}
    with pytest.raises(InvalidInputError, match=r"policy\.floor: nan"):
        build_evidence(**fields)
    with pytest.raises(InvalidInputError, match=r"alert\.x: inf"):
        build_alert_evidence({"x": math.inf}, chip_id=None, time_unix_ns=1)
    with pytest.raises(InvalidInputError, match="params must be"):
        build_evidence(**{**_verifier_fields(), "params": 5})
