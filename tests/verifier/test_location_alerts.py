"""site_inconsistent, rtt_anomaly and proof_lost against a real SQLite store."""

import itertools
from typing import Any

import pytest

from geo.assess import assess
from geo.geodesy import distance_km, vacuum_rtt_ms
from geo.licence import licence_from_json
from geo.measurement import LandmarkRtt
from verifier import location_alerts
from verifier.alerts import Alerts
from verifier.evidence_sink import EvidenceSink
from verifier.hub import Hub
from verifier.metrics import Metrics
from verifier.model import DEFAULT_POLICY, Policy, VerdictRecord
from verifier.store import Store

NS = 1_000_000_000
CYBERJAYA = {"lat_deg": 2.92, "lon_deg": 101.65}
SHENZHEN = (22.54, 114.06)
KL_RELAY = (3.14, 101.69)
LANDMARKS = {
    "lm-kl": (3.139, 101.687),
    "lm-sg": (1.352, 103.820),
    "lm-bkk": (13.75, 100.50),
    "lm-hk": (22.32, 114.17),
}
LICENCE = {"allowed": ["MYS"], "prohibited": [], "tolerance_km": 0.0, "site": CYBERJAYA}


@pytest.fixture
def alerts() -> Alerts:
    return Alerts(webhook_urls=(), hub=Hub(), metrics=Metrics(), evidence=EvidenceSink(None, b""))


def path_rtt_ms(hops: list[tuple[float, float]], extra_ms: float = 0.0) -> float:
    """An internet-like round trip along the hops: 1.5x stretch at fibre speed, 0.6 ms access."""
    km = sum(distance_km(*a, *b) for a, b in itertools.pairwise(hops))
    return 2.0 * km * 1.5 / location_alerts.FIBRE_KM_PER_MS + 0.6 + extra_ms


def measured(chip: tuple[float, float], via: tuple[float, float] | None = None,
             extra_ms: float = 0.0) -> list[LandmarkRtt]:
    rows = []
    for landmark_id, place in LANDMARKS.items():
        hops = [place, via, chip] if via is not None else [place, chip]
        rows.append(LandmarkRtt(landmark_id, *place, path_rtt_ms(hops, extra_ms)))
    return rows


def record_round(
    store: Store, alerts: Alerts, rtts: list[LandmarkRtt], *, at_s: float,
    licence: dict[str, Any] | None = None, verdict: str | None = None,
    policy: Policy = DEFAULT_POLICY,
) -> VerdictRecord:
    licence = licence or LICENCE
    assessment = assess(rtts, licence_from_json(licence))
    recorded = store.add_verdict(
        "gpu-1", round_id=f"r-{at_s:.0f}", verdict=verdict or str(assessment.verdict),
        created_unix_ns=int(at_s * NS), measurement_ids=[],
        landmarks=[{"landmark_id": r.landmark_id, "lat_deg": r.lat_deg, "lon_deg": r.lon_deg,
                    "rtt_ms": r.rtt_ms, "measurement_id": 0} for r in rtts],
        assessment=None, reason="test", licence=licence)
    location_alerts.check(store, alerts, verdict=recorded, policy=policy,
                          sound_region=assessment.sound_region, now_unix_ns=int(at_s * NS))
    return recorded


def open_alert(store: Store, type_: str):
    return store.unresolved_alert("chip", "gpu-1", type_)


def test_a_relay_raises_rtt_anomaly_after_enough_rounds_with_the_evidence(store, alerts):
    relayed = measured(SHENZHEN, via=KL_RELAY)
    for n in range(DEFAULT_POLICY.anomaly_rounds - 1):
        record_round(store, alerts, relayed, at_s=3.0 * n)
        assert open_alert(store, "rtt_anomaly") is None  # one round may be congestion
    record_round(store, alerts, relayed, at_s=9.0)
    alert = open_alert(store, "rtt_anomaly")
    assert alert is not None and alert.severity == "high"
    rounds = alert.details["rounds"]
    assert len(rounds) == DEFAULT_POLICY.anomaly_rounds
    nearest = rounds[0]["landmarks"][0]
    assert nearest["landmark_id"] == "lm-kl" and nearest["distance_km"] < 30
    assert nearest["rtt_ms"] > 30.0 > nearest["explained_rtt_ms"] + DEFAULT_POLICY.rtt_margin_ms
    assert alert.details["policy"]["rtt_margin_ms"] == DEFAULT_POLICY.rtt_margin_ms
    # The relay host really is in Malaysia: the speed of light cannot rule the site out.
    assert open_alert(store, "site_inconsistent") is None


def test_the_policy_margins_decide_and_the_alert_names_them(store, alerts):
    """A relay adding ~30 ms stays under a 60 ms margin; 5 rounds are needed when asked."""
    relayed = measured(SHENZHEN, via=KL_RELAY)
    lenient = Policy("lenient", 300.0, 6, 30.0, 3600.0, rtt_margin_ms=60.0)
    for n in range(5):
        record_round(store, alerts, relayed, at_s=3.0 * n, policy=lenient)
    assert open_alert(store, "rtt_anomaly") is None
    # The rule reads back the answered rounds, whichever policy judged them: 5 so far.
    patient = Policy("patient", 300.0, 6, 30.0, 3600.0, anomaly_rounds=8)
    for n in range(5, 7):
        record_round(store, alerts, relayed, at_s=3.0 * n, policy=patient)
        assert open_alert(store, "rtt_anomaly") is None
    record_round(store, alerts, relayed, at_s=40.0, policy=patient)
    alert = open_alert(store, "rtt_anomaly")
    assert alert is not None and len(alert.details["rounds"]) == 8
    assert alert.details["policy"]["name"] == "patient"
    assert alert.details["policy"]["anomaly_rounds"] == 8


def test_the_site_slack_is_the_policy_s(store, alerts):
    """A chip 30 km from its declared site: consistent with a 100 km slack, not a 2 km one."""
    rtts = [LandmarkRtt(lid, *place, vacuum_rtt_ms(distance_km(*place, 3.14, 101.69)) + 0.05)
            for lid, place in LANDMARKS.items()]
    roomy = Policy("roomy", 300.0, 6, 30.0, 3600.0, site_slack_km=100.0)
    record_round(store, alerts, rtts, at_s=0.0, policy=roomy,
                 licence={**LICENCE, "site": {"lat_deg": 3.40, "lon_deg": 101.60}})
    assert open_alert(store, "site_inconsistent") is None
    record_round(store, alerts, rtts, at_s=3.0,
                 licence={**LICENCE, "site": {"lat_deg": 3.40, "lon_deg": 101.60}})
    alert = open_alert(store, "site_inconsistent")
    assert alert is not None and alert.details["slack_km"] == DEFAULT_POLICY.site_slack_km


def test_an_honest_chip_with_congested_rounds_raises_nothing(store, alerts):
    honest = measured((CYBERJAYA["lat_deg"], CYBERJAYA["lon_deg"]))
    congested = measured((CYBERJAYA["lat_deg"], CYBERJAYA["lon_deg"]), extra_ms=40.0)
    plan = [honest, congested, congested, honest, congested, congested, honest] * 2
    for n, rtts in enumerate(plan):
        record_round(store, alerts, rtts, at_s=3.0 * n)
        assert open_alert(store, "rtt_anomaly") is None
        assert open_alert(store, "site_inconsistent") is None


def test_one_slow_landmark_among_the_nearest_is_not_an_anomaly(store, alerts):
    rows = measured((CYBERJAYA["lat_deg"], CYBERJAYA["lon_deg"]))
    slow_kl = [r if r.landmark_id != "lm-kl" else LandmarkRtt("lm-kl", *LANDMARKS["lm-kl"], 80.0)
               for r in rows]
    for n in range(5):
        record_round(store, alerts, slow_kl, at_s=3.0 * n)
    assert open_alert(store, "rtt_anomaly") is None


def test_rtt_anomaly_resolves_when_a_round_is_explained_again(store, alerts):
    for n in range(3):
        record_round(store, alerts, measured(SHENZHEN, via=KL_RELAY), at_s=3.0 * n)
    assert open_alert(store, "rtt_anomaly") is not None
    record_round(store, alerts, measured((2.92, 101.65)), at_s=12.0)
    assert open_alert(store, "rtt_anomaly") is None


def test_a_region_that_excludes_the_declared_site_raises_site_inconsistent(store, alerts):
    # No relay: the chip answers from Shenzhen itself, thousands of km from its declared site.
    record_round(store, alerts, measured(SHENZHEN), at_s=0.0)
    alert = open_alert(store, "site_inconsistent")
    assert alert is not None
    assert alert.details["site"] == CYBERJAYA
    assert {row["landmark_id"] for row in alert.details["landmarks"]} == set(LANDMARKS)


def test_without_a_declared_site_there_is_no_site_or_rtt_alert(store, alerts):
    licence = {"allowed": ["MYS"], "prohibited": [], "tolerance_km": 0.0}
    for n in range(4):
        record_round(store, alerts, measured(SHENZHEN, via=KL_RELAY), at_s=3.0 * n,
                     licence=licence)
    assert open_alert(store, "rtt_anomaly") is None
    assert open_alert(store, "site_inconsistent") is None


def test_proof_lost_after_the_window_and_resolved_by_the_next_verified_round(store, alerts):
    window_s = location_alerts.proof_lost_window_s(DEFAULT_POLICY)
    assert window_s == max(10 * DEFAULT_POLICY.round_interval_s, 300.0)  # the old constants
    honest = measured((2.92, 101.65))
    record_round(store, alerts, honest, at_s=0.0, verdict="verified")
    record_round(store, alerts, honest, at_s=window_s - 1.0, verdict="inconclusive")
    assert open_alert(store, "proof_lost") is None
    record_round(store, alerts, honest, at_s=window_s + 1.0, verdict="inconclusive")
    alert = open_alert(store, "proof_lost")
    assert alert is not None and alert.details["window_s"] == window_s
    record_round(store, alerts, honest, at_s=window_s + 4.0, verdict="verified")
    assert open_alert(store, "proof_lost") is None


def test_a_chip_never_verified_never_loses_a_proof(store, alerts):
    for n in range(3):
        record_round(store, alerts, measured((2.92, 101.65)), at_s=1000.0 * n,
                     verdict="inconclusive")
    assert open_alert(store, "proof_lost") is None


def test_explained_rtt_is_above_the_physical_minimum():
    for km in (1.0, 30.0, 1000.0):
        assert location_alerts.explained_rtt_ms(km) > vacuum_rtt_ms(km)
