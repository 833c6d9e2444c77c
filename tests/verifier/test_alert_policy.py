"""The location alerts' margins are policy fields: defaults equal the constants they replaced,
bad values are refused with a clear error (in code and over HTTP) and change nothing."""

from pathlib import Path

import pytest

from tests.verifier.conftest import open_harness
from verifier.errors import InvalidInputError
from verifier.model import ALERT_FIELD_BOUNDS, DEFAULT_POLICY, Policy

BASE = {"round_interval_s": 60.0, "landmarks_per_round": 4, "round_timeout_s": 10.0,
        "dark_window_s": 600.0}


def test_the_defaults_are_the_constants_they_replace() -> None:
    assert DEFAULT_POLICY.alert_margins == {
        "rtt_margin_ms": 10.0, "anomaly_rounds": 3, "proof_lost_rounds": 10,
        "proof_lost_min_s": 300.0, "site_slack_km": 2.0, "baseline_rounds": 12}
    assert set(DEFAULT_POLICY.alert_margins) == set(ALERT_FIELD_BOUNDS)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("rtt_margin_ms", 0.0, "rtt_margin_ms must be > 0 and <= 1000, got 0.0"),
    ("rtt_margin_ms", float("nan"), "rtt_margin_ms must be > 0"),
    ("rtt_margin_ms", "10", "rtt_margin_ms must be a number, got '10'"),
    ("anomaly_rounds", 0, "anomaly_rounds must be >= 1 and <= 100, got 0"),
    ("anomaly_rounds", 2.5, "anomaly_rounds must be an integer, got 2.5"),
    ("anomaly_rounds", True, "anomaly_rounds must be an integer, got True"),
    ("proof_lost_rounds", 10_001, "proof_lost_rounds must be >= 1 and <= 10000"),
    ("proof_lost_min_s", -1.0, "proof_lost_min_s must be >= 0"),
    ("site_slack_km", float("inf"), "site_slack_km must be >= 0 and <= 100, got inf"),
    ("baseline_rounds", 0, "baseline_rounds must be >= 1 and <= 1000, got 0"),
])  # fmt: skip
def test_a_bad_margin_is_refused_with_a_clear_error(field: str, value: object,
                                                   message: str) -> None:
    with pytest.raises(InvalidInputError, match=f"policy 'p': {message}"):
        Policy("p", 60.0, 4, 10.0, 600.0, **{field: value})  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_margins_are_set_over_http_and_bad_ones_change_nothing(tmp_path: Path) -> None:
    async with open_harness(tmp_path) as h:
        r = await h.client.put("/v1/policies/p", headers=h.admin, json=BASE)
        assert r.status_code == 200, r.text
        assert {k: r.json()[k] for k in ALERT_FIELD_BOUNDS} == DEFAULT_POLICY.alert_margins
        margins = {"rtt_margin_ms": 15.0, "anomaly_rounds": 4, "proof_lost_rounds": 6,
                   "proof_lost_min_s": 120.0, "site_slack_km": 5.0, "baseline_rounds": 24}
        r = await h.client.put("/v1/policies/p", headers=h.admin, json={**BASE, **margins})
        assert r.status_code == 200, r.text
        assert {k: r.json()[k] for k in margins} == margins
        for bad in ({"rtt_margin_ms": -1.0}, {"anomaly_rounds": 0}, {"baseline_rounds": 1.5},
                    {"proof_lost_min_s": 1e12}, {"site_slack_km": "far"}):
            r = await h.client.put("/v1/policies/p", headers=h.admin, json={**BASE, **bad})
            assert r.status_code == 422, bad
            assert next(iter(bad)) in r.text
        listed = (await h.client.get("/v1/policies", headers=h.dashboard)).json()["items"]
        stored = next(p for p in listed if p["name"] == "p")
        assert {k: stored[k] for k in margins} == margins
        stored_policy = await h.service.db.run(lambda s: s.policy("p"))
        assert stored_policy is not None and stored_policy.alert_margins == margins
