"""The decision rule (geo.decision): what the verifier decides and the audit recomputes."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.assess import assess
from geo.assessment import DEFAULT_PARAMS, Verdict
from geo.decision import Decision, ReasonCode, conclude, decide
from geo.geodesy import distance_km, vacuum_rtt_ms
from geo.licence import licence_from_json
from geo.measurement import LandmarkRtt
from geo.robust import assess_tolerating

LANDMARKS = {
    "fra": (50.11, 8.68),
    "ber": (52.52, 13.40),
    "muc": (48.14, 11.58),
    "ham": (53.55, 9.99),
    "par": (48.86, 2.35),
}
GERMANY = licence_from_json({"allowed": ["DEU"]})


def _measured(chip: tuple[float, float], inflation: float = 1.5) -> list[LandmarkRtt]:
    return [
        LandmarkRtt(name, lat, lon, vacuum_rtt_ms(distance_km(lat, lon, *chip)) * inflation + 0.1)
        for name, (lat, lon) in LANDMARKS.items()
    ]


KASSEL = _measured((51.31, 9.49), inflation=1.02)
VERIFIED = assess(KASSEL, GERMANY)


def test_kassel_is_verified_with_a_trusted_key_and_held_back_without() -> None:
    assert VERIFIED.verdict is Verdict.VERIFIED
    trusted = decide(KASSEL, GERMANY, None, DEFAULT_PARAMS)
    assert trusted == Decision(Verdict.VERIFIED, trusted.assessment, None)
    assert trusted.assessment is not None and trusted.assessment.to_json() == VERIFIED.to_json()
    held = decide(KASSEL, GERMANY, None, DEFAULT_PARAMS, key_trusted=False)
    assert (held.verdict, held.reason_code) == (Verdict.INCONCLUSIVE, ReasonCode.UNTRUSTED_KEY)
    # The assessment keeps what the geometry said: the audit checks both.
    assert held.assessment is not None and held.assessment.verdict is Verdict.VERIFIED


@given(st.sampled_from([*Verdict, None]), st.booleans())
def test_only_verified_depends_on_the_key_and_nothing_else_becomes_verified(
    geometric: Verdict | None, key_trusted: bool
) -> None:
    ruled = conclude(replace(VERIFIED, verdict=geometric), key_trusted=key_trusted)
    if ruled.verdict is Verdict.VERIFIED:
        assert geometric is Verdict.VERIFIED and key_trusted
    held = geometric is Verdict.VERIFIED and not key_trusted
    assert (ruled.reason_code is ReasonCode.UNTRUSTED_KEY) == held
    expected = Verdict.INCONCLUSIVE if held or geometric is None else geometric
    assert ruled.verdict is expected


def test_a_round_without_answers_is_no_answer_whatever_the_licence() -> None:
    for licence in (None, GERMANY):
        ruled = decide((), licence, None, DEFAULT_PARAMS)
        assert ruled == Decision(Verdict.INCONCLUSIVE, None, ReasonCode.NO_ANSWER)


def test_too_few_landmarks_for_the_tolerance_is_inconclusive_with_the_geo_error() -> None:
    ruled = decide(KASSEL[:2], GERMANY, None, DEFAULT_PARAMS, tolerated_faults=1)
    assert (ruled.verdict, ruled.assessment, ruled.reason_code) == (
        Verdict.INCONCLUSIVE, None, None,
    )  # fmt: skip
    assert ruled.geo_error is not None and "landmarks" in ruled.geo_error


def test_no_licence_is_inconclusive_with_the_assessment() -> None:
    ruled = decide(KASSEL, None, None, DEFAULT_PARAMS)
    assert ruled.verdict is Verdict.INCONCLUSIVE and ruled.reason_code is None
    assert ruled.assessment is not None and ruled.assessment.verdict is None


@pytest.mark.parametrize("faults", [0, 1, 2])
@settings(max_examples=8, deadline=None)
@given(lat=st.floats(45.0, 55.0), lon=st.floats(2.0, 16.0), inflation=st.floats(1.2, 3.0))
def test_the_rule_gives_the_geometry_s_verdict_for_a_trusted_key(
    faults: int, lat: float, lon: float, inflation: float
) -> None:
    measurements = _measured((lat, lon), inflation)
    geometric = assess_tolerating(measurements, GERMANY, None, DEFAULT_PARAMS, faults)
    ruled = decide(measurements, GERMANY, None, DEFAULT_PARAMS, faults)
    assert ruled.verdict is geometric.verdict and ruled.reason_code is None
    assert ruled.assessment is not None and ruled.assessment.to_json() == geometric.to_json()
