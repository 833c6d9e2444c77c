"""The simulator's rtt_anomaly rule is the verifier's (same constants, same nearest-landmark
choice, silence never anomalous)."""

import numpy as np

from geo.licence import DeclaredSite
from sim.location import anomalous
from verifier.location_alerts import explained_rtt_ms, round_excess
from verifier.model import DEFAULT_POLICY, VerdictRecord

DISTANCE_KM = np.array([[10.0, 300.0, 900.0, 2000.0]])
LANDMARK_LAT_LON = [(0.0, 0.09), (0.0, 2.7), (0.0, 8.1), (0.0, 18.0)]


def verifier_says(rtt_ms: np.ndarray) -> bool:
    rows = [
        {"landmark_id": f"l{i}", "lat_deg": lat, "lon_deg": lon, "rtt_ms": float(rtt)}
        for i, ((lat, lon), rtt) in enumerate(zip(LANDMARK_LAT_LON, rtt_ms, strict=True))
        if np.isfinite(rtt)
    ]
    record = VerdictRecord(1, "c", "r", "inconclusive", 0, (), tuple(rows), None, "", {})
    excess = round_excess(DeclaredSite(0.0, 0.0), record, DEFAULT_POLICY.rtt_margin_ms)
    return excess is not None and excess.anomalous


def test_honest_rounds_are_not_anomalous_and_relayed_ones_are() -> None:
    honest = np.array([[0.3, 4.0, 11.0, 25.0]])
    relayed = honest + 40.0
    assert not anomalous(DISTANCE_KM, honest)[0]
    assert anomalous(DISTANCE_KM, relayed)[0]


def test_one_slow_near_landmark_is_not_enough_and_silence_never_is() -> None:
    one_slow = np.array([[80.0, 4.0, 11.0, 25.0]])
    assert not anomalous(DISTANCE_KM, one_slow)[0]
    assert not anomalous(DISTANCE_KM, np.full((1, 4), np.nan))[0]


def test_the_sim_and_the_verifier_agree_on_random_rounds() -> None:
    rng = np.random.default_rng(5)
    # Distances the verifier recomputes from the landmark positions (on the equator).
    distance = np.array([[lon * 111.32 for _, lon in LANDMARK_LAT_LON]])
    for _ in range(200):
        rtt = explained_rtt_ms(0.0) + rng.uniform(0.0, 2.5 * DEFAULT_POLICY.rtt_margin_ms, 4)
        rtt = rtt + np.array([explained_rtt_ms(float(d)) for d in distance[0]])
        rtt[rng.random(4) < 0.2] = np.nan
        assert bool(anomalous(distance, rtt[None, :])[0]) == verifier_says(rtt)

