"""A tick's rounds decided together give exactly the per-round decisions."""

import dataclasses

import pytest

from geo.geodesy import distance_km, vacuum_rtt_ms
from geo.measurement import LandmarkRtt
from verifier import verdicts
from verifier.model import DEFAULT_POLICY, Chip, Round
from verifier.verdicts import RoundInputs, decide, decide_all

KASSEL = (51.31, 9.49)


def _honest(landmark_id: str, lat_deg: float, lon_deg: float) -> LandmarkRtt:
    """An RTT 5 % above the vacuum-light bound from a chip in Kassel."""
    rtt_ms = 1.05 * vacuum_rtt_ms(distance_km(lat_deg, lon_deg, *KASSEL))
    return LandmarkRtt(landmark_id, lat_deg, lon_deg, rtt_ms)


GERMANY = (
    _honest("FRA", 50.11, 8.68), _honest("BER", 52.52, 13.40),
    _honest("HAM", 53.55, 9.99), _honest("MUC", 48.14, 11.58),
)
TOKYO = (LandmarkRtt("TYO", 35.68, 139.69, 1.0), LandmarkRtt("OSA", 34.69, 135.50, 4.0))


def _inputs(chip_id: str, rtts: tuple[LandmarkRtt, ...], licence: dict[str, object], *,
            dark: bool = False, tolerate: int = 0) -> RoundInputs:
    chip = Chip(chip_id, "owner", "model", "serial", None, None, "default", b"\0" * 32, {},
                dict(licence), "unknown", 0, None, 0, 0)
    policy = dataclasses.replace(DEFAULT_POLICY, tolerate_faulty_landmarks=tolerate)
    return RoundInputs(Round(f"r-{chip_id}", "chip", chip_id, 0, 0), chip, policy, rtts,
                       tuple(range(len(rtts))), (), (), None, dark)


def test_batched_decisions_equal_one_at_a_time() -> None:
    items = [
        _inputs("de-ok", GERMANY, {"allowed": ["DEU"]}),
        _inputs("de-in-jp", TOKYO, {"allowed": ["DEU"]}),
        _inputs("jp-ok", TOKYO, {"allowed": ["JPN"]}),
        _inputs("dark", (), {"allowed": ["DEU"]}, dark=True),
        _inputs("robust", GERMANY, {"allowed": ["DEU"]}, tolerate=1),
        _inputs("bad-licence", GERMANY, {"allowed": ["XXX"]}),
        _inputs("one-landmark", GERMANY[:1], {"allowed": ["DEU"]}),
    ]
    together = decide_all(items)
    alone = [decide(item) for item in items]
    assert [(d.verdict, d.reason) for d in together] == [(d.verdict, d.reason) for d in alone]
    for batched, single in zip(together, alone, strict=True):
        assert (batched.assessment is None) == (single.assessment is None)
        if batched.assessment is not None and single.assessment is not None:
            assert batched.assessment.verdict == single.assessment.verdict
            assert batched.assessment.excluded_landmarks == single.assessment.excluded_landmarks
    assert together[0].verdict == "verified"
    assert together[1].verdict == "violation"
    assert together[3].verdict == "dark"
    assert together[5].verdict == "inconclusive" and together[6].verdict == "inconclusive"


def test_plain_rounds_take_the_batched_path(monkeypatch: pytest.MonkeyPatch) -> None:
    items = [
        _inputs("de-ok", GERMANY, {"allowed": ["DEU"]}),
        _inputs("de-in-jp", TOKYO, {"allowed": ["DEU"]}),
        _inputs("jp-ok", TOKYO, {"allowed": ["JPN"]}),
    ]
    alone = [decide(item) for item in items]

    def unexpected(inputs: RoundInputs) -> None:
        raise AssertionError(f"{inputs.chip.chip_id} was decided alone")

    monkeypatch.setattr(verdicts, "decide", unexpected)
    together = verdicts.decide_all(items)
    assert [(d.verdict, d.reason) for d in together] == [(d.verdict, d.reason) for d in alone]
