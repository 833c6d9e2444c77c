"""rtt_above_baseline: each chip's learned best RTT per landmark, on both backends, and the
invariant that an honest chip never alerts."""

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.geodesy import distance_km
from geo.measurement import LandmarkRtt
from tests.verifier.test_location_alerts import (
    KL_RELAY,
    LANDMARKS,
    LICENCE,
    SHENZHEN,
    measured,
    open_alert,
)
from tests.verifier.test_location_alerts import record_round as record_assessed_round
from verifier import location_alerts, rtt_baseline
from verifier.alerts import Alerts
from verifier.evidence_sink import EvidenceSink
from verifier.hub import Hub
from verifier.metrics import Metrics
from verifier.model import DEFAULT_POLICY, Policy, RttBaseline, VerdictRecord
from verifier.store import Store

NO_SITE = {"allowed": ["MYS"], "prohibited": [], "tolerance_km": 0.0}
CYBERJAYA = (2.92, 101.65)
LEARN = DEFAULT_POLICY.baseline_rounds
ROUNDS = DEFAULT_POLICY.anomaly_rounds


@pytest.fixture
def alerts() -> Alerts:
    return Alerts(webhook_urls=(), hub=Hub(), metrics=Metrics(), evidence=EvidenceSink(None, b""))


def record_round(store: Store, alerts: Alerts, rtts: list[LandmarkRtt], *, at_s: float,
                 licence: dict[str, Any] | None = None,
                 policy: Policy = DEFAULT_POLICY) -> None:
    """A round of a chip without a declared site: no sound region is needed (the site rules
    have nothing to compare), so none is computed."""
    if licence is not None and "site" in licence:
        record_assessed_round(store, alerts, rtts, at_s=at_s, licence=licence, policy=policy)
        return
    recorded = store.add_verdict(
        "gpu-1", round_id=f"r-{at_s:.0f}", verdict="inconclusive",
        created_unix_ns=int(at_s * 1e9), measurement_ids=[],
        landmarks=[{"landmark_id": r.landmark_id, "lat_deg": r.lat_deg, "lon_deg": r.lon_deg,
                    "rtt_ms": r.rtt_ms, "measurement_id": 0} for r in rtts],
        assessment=None, reason="test", licence=licence or NO_SITE)
    location_alerts.check(store, alerts, verdict=recorded, policy=policy, sound_region=None,
                          now_unix_ns=int(at_s * 1e9))


def jittered(chip: tuple[float, float], rng: random.Random, *, via: tuple[float, float] | None
             = None, up_to_ms: float = 5.0) -> list[LandmarkRtt]:
    """A round with each landmark's best RTT up to `up_to_ms` above the path's floor."""
    return [LandmarkRtt(r.landmark_id, r.lat_deg, r.lon_deg, r.rtt_ms + rng.uniform(0, up_to_ms))
            for r in measured(chip, via=via)]


def learn_honestly(store, alerts, rng: random.Random, licence: dict[str, Any] = NO_SITE) -> int:
    for n in range(LEARN):
        record_round(store, alerts, jittered(CYBERJAYA, rng), at_s=3.0 * n, licence=licence)
    return LEARN


def test_a_move_after_enrolment_raises_rtt_above_baseline_with_the_evidence(
    store, alerts,
):
    rng = random.Random(1)
    n = learn_honestly(store, alerts, rng)
    learned = {b.landmark_id: b for b in store.rtt_baselines("gpu-1")}
    assert set(learned) == set(LANDMARKS) and {b.rounds for b in learned.values()} == {LEARN}
    for k in range(ROUNDS):
        assert open_alert(store, "rtt_above_baseline") is None  # one round may be congestion
        record_round(store, alerts, jittered(SHENZHEN, rng, via=KL_RELAY), at_s=3.0 * (n + k),
                     licence=NO_SITE)
    alert = open_alert(store, "rtt_above_baseline")
    assert alert is not None and alert.severity == "high"
    details = alert.details
    assert details["margin_ms"] == DEFAULT_POLICY.rtt_margin_ms
    assert details["policy"]["baseline_rounds"] == LEARN
    assert len(details["rounds"]) == ROUNDS
    for row in details["rounds"][0]["landmarks"]:  # the observed RTT beside the learned floor
        assert row["rtt_ms"] - row["baseline_rtt_ms"] > DEFAULT_POLICY.rtt_margin_ms
        assert row["baseline_rtt_ms"] == round(learned[row["landmark_id"]].best_rtt_ms, 3)
    used = {row["landmark_id"] for row in details["rounds"][0]["landmarks"]}
    assert {b["landmark_id"] for b in details["baseline"]} == used
    assert len(used) == rtt_baseline.BASELINE_LANDMARKS
    assert "lm-kl" in used  # the nearest landmarks have the lowest baselines
    # The relayed rounds never raised the floor they are judged by.
    assert all(b.best_rtt_ms == learned[b.landmark_id].best_rtt_ms
               for b in store.rtt_baselines("gpu-1"))
    # Back home: the next round is within the baseline and the alert resolves itself.
    record_round(store, alerts, jittered(CYBERJAYA, rng), at_s=300.0, licence=NO_SITE)
    assert open_alert(store, "rtt_above_baseline") is None


def test_nothing_is_judged_before_the_baseline_has_enough_rounds(store, alerts):
    rng = random.Random(2)
    for n in range(3):
        record_round(store, alerts, jittered(CYBERJAYA, rng), at_s=3.0 * n, licence=NO_SITE)
    for n in range(3, 3 + 2 * ROUNDS):
        record_round(store, alerts, jittered(SHENZHEN, rng, via=KL_RELAY), at_s=3.0 * n,
                     licence=NO_SITE)
    assert open_alert(store, "rtt_above_baseline") is None
    assert {b.rounds for b in store.rtt_baselines("gpu-1")} == {3 + 2 * ROUNDS}


def test_a_move_late_in_learning_is_caught_when_the_baseline_is_ready(
    store, alerts,
):
    """Rounds learned while the baseline was not ready are judged once it is."""
    rng = random.Random(3)
    for n in range(LEARN - 2):
        record_round(store, alerts, jittered(CYBERJAYA, rng), at_s=3.0 * n, licence=NO_SITE)
    for n in range(LEARN - 2, LEARN + 1):
        record_round(store, alerts, jittered(SHENZHEN, rng, via=KL_RELAY), at_s=3.0 * n,
                     licence=NO_SITE)
    assert open_alert(store, "rtt_above_baseline") is not None


def test_a_relay_from_day_one_is_learned_and_only_the_declared_site_catches_it(
    store, alerts,
):
    rng = random.Random(4)
    for n in range(LEARN + 2 * ROUNDS):
        record_round(store, alerts, jittered(SHENZHEN, rng, via=KL_RELAY), at_s=3.0 * n,
                     licence=LICENCE)
    assert open_alert(store, "rtt_above_baseline") is None  # the baseline learned the relay
    assert open_alert(store, "rtt_anomaly") is not None  # LICENCE declares Cyberjaya
    assert LICENCE["site"] == {"lat_deg": CYBERJAYA[0], "lon_deg": CYBERJAYA[1]}


def test_congestion_and_one_slow_landmark_raise_nothing(store, alerts):
    rng = random.Random(5)
    n = learn_honestly(store, alerts, rng)
    honest = jittered(CYBERJAYA, rng)
    congested = jittered(CYBERJAYA, rng, up_to_ms=0.0)
    congested = [LandmarkRtt(r.landmark_id, r.lat_deg, r.lon_deg, r.rtt_ms + 40.0)
                 for r in congested]
    slow_kl = [r if r.landmark_id != "lm-kl" else LandmarkRtt("lm-kl", *LANDMARKS["lm-kl"], 80.0)
               for r in honest]
    # A route change on one path, forever; congestion on every path, ROUNDS - 1 rounds running.
    plan = ([slow_kl] * 6) + ([congested] * (ROUNDS - 1) + [honest]) * 3
    for k, rtts in enumerate(plan):
        record_round(store, alerts, rtts, at_s=3.0 * (n + k), licence=NO_SITE)
        assert open_alert(store, "rtt_above_baseline") is None


def test_replaced_landmarks_restart_their_baselines_instead_of_alerting(
    store, alerts,
):
    """Every landmark re-registered ~100 km away: longer paths, but no move of the chip."""
    rng = random.Random(6)
    n = learn_honestly(store, alerts, rng)
    moved = {lid: (lat + 0.9, lon) for lid, (lat, lon) in LANDMARKS.items()}
    for k in range(2 * ROUNDS):
        rtts = [LandmarkRtt(lid, *moved[lid], 2.0 * distance_km(*moved[lid], *CYBERJAYA) / 50.0
                            + rng.uniform(0.0, 5.0) + 20.0)
                for lid in LANDMARKS]
        record_round(store, alerts, rtts, at_s=3.0 * (n + k), licence=NO_SITE)
        assert open_alert(store, "rtt_above_baseline") is None
    restarted = store.rtt_baselines("gpu-1")
    assert {(b.lat_deg, b.lon_deg) for b in restarted} == set(moved.values())
    assert {b.rounds for b in restarted} == {2 * ROUNDS}


def test_a_stricter_margin_and_a_shorter_window_come_from_the_policy(
    store, alerts,
):
    quick = Policy("quick", 300.0, 6, 30.0, 3600.0, baseline_rounds=2, anomaly_rounds=2,
                   rtt_margin_ms=1.0)
    rng = random.Random(7)
    for n in range(2):
        record_round(store, alerts, jittered(CYBERJAYA, rng, up_to_ms=0.0), at_s=3.0 * n,
                     licence=NO_SITE, policy=quick)
    slower = [LandmarkRtt(r.landmark_id, r.lat_deg, r.lon_deg, r.rtt_ms + 3.0)
              for r in measured(CYBERJAYA)]
    record_round(store, alerts, slower, at_s=6.0, licence=NO_SITE, policy=quick)
    assert open_alert(store, "rtt_above_baseline") is None
    record_round(store, alerts, slower, at_s=9.0, licence=NO_SITE, policy=quick)
    alert = open_alert(store, "rtt_above_baseline")
    assert alert is not None and alert.details["policy"]["name"] == "quick"


# ---- the invariant, on the pure rule -----------------------------------------------------

FLOORS_MS = st.lists(st.floats(0.1, 200.0), min_size=2, max_size=6)


@settings(max_examples=60, deadline=None)
@given(floors=FLOORS_MS, data=st.data())
def test_a_chip_never_above_its_floor_plus_the_margin_is_never_anomalous(floors, data):
    """Whatever each round's jitter (<= the margin above each path's floor), whichever
    landmarks answer, and whatever the window: no round is judged above the margin, so
    rtt_above_baseline (which needs such rounds) never fires."""
    margin = DEFAULT_POLICY.rtt_margin_ms
    window = data.draw(st.integers(1, 5))
    known: dict[str, RttBaseline] = {}
    for number in range(data.draw(st.integers(window, 12))):
        rows = []
        for i, floor in enumerate(floors):
            if data.draw(st.booleans()):  # this landmark answered
                jitter = data.draw(st.floats(0.0, margin))
                rows.append({"landmark_id": f"lm-{i}", "lat_deg": float(i), "lon_deg": 0.0,
                             "rtt_ms": floor + jitter})
        verdict = VerdictRecord(number + 1, f"r{number}", "gpu", "inconclusive", number,
                                (), tuple(rows), None, "", {})
        excess = rtt_baseline.round_excess(known, verdict, baseline_rounds=window)
        assert excess is None or excess.excess_ms <= margin
        known.update({b.landmark_id: b for b in rtt_baseline.learn(known.values(), verdict)})
