"""Location alerts a relay or a move cannot avoid (docs/verifier.md, "Location alerts").

A relay can never be proven a violation (the relay host really is in the licensed country), but
it cannot hide the distance it adds: a chip licensed at a data centre 10 km from a landmark that
answers it in 39 ms is not where it says. Four alerts, each with its evidence in the alert's
details (and so in the evidence log), and with the policy margins its rule applied
(`Policy.alert_margins`):

* `site_inconsistent`: the round's sound region (vacuum speed of light) excludes the declared
  site grown by the policy's `site_slack_km`. A proof: physics puts the chip elsewhere. No
  false alarm is possible from delay (delay only enlarges the region); only a landmark lying
  about its position can cause one, which the mesh audit and the `inconsistent` verdict exist
  to catch.
* `rtt_anomaly`: in each of the chip's last `anomaly_rounds` rounds with answers, even the best
  of its NEAREST_LANDMARKS nearest landmarks (to the declared site) answered more than
  `rtt_margin_ms` later than a generous internet path from the site explains (ROUTE_STRETCH x
  the great-circle distance at fibre speed, both ways). A relay or a move adds the real
  distance to every landmark, so it fires every round; congestion would have to add > 10 ms to
  the best of several probes to each of three landmarks, in every one of three rounds.
* `rtt_above_baseline`: the same test against the chip's own learned best RTT per landmark
  (`verifier.rtt_baseline`) instead of a declared site, so it also covers chips without one:
  a relay or a move after the baseline was learned.
* `proof_lost`: a chip that was `verified` has not been for `proof_lost_rounds` round
  intervals (and at least `proof_lost_min_s`): the evidence that placed it is gone. It resolves
  itself at the next `verified` round.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from geo.assessment import Verdict
from geo.constants import C_VACUUM_KM_PER_S
from geo.errors import GeoError
from geo.geodesy import distance_km, vacuum_rtt_ms
from geo.grow import grow
from geo.licence import DeclaredSite, site_from_json
from verifier import rtt_baseline
from verifier.alerts import Alerts
from verifier.model import AlertType, Policy, VerdictRecord
from verifier.store import Store

logger = logging.getLogger(__name__)

FIBRE_KM_PER_MS = C_VACUUM_KM_PER_S * 2.0 / 3.0 / 1000.0  # one way, light in glass
ROUTE_STRETCH = 3.0  # real routes run up to ~3x the great circle (docs/verifier.md)
NEAREST_LANDMARKS = 3
_HISTORY_PER_ROUND = 4  # verdicts read back per wanted answered round (some have no answers)
_PROOF_HISTORY = 200
_NS = 1_000_000_000


def explained_rtt_ms(path_km: float) -> float:
    """The slowest round trip an ordinary internet path of that great-circle length explains,
    before the margin: stretched route, fibre speed, there and back."""
    return 2.0 * path_km * ROUTE_STRETCH / FIBRE_KM_PER_MS


@dataclass(frozen=True, slots=True)
class RoundExcess:
    """One round: the smallest excess over the explained RTT among the nearest landmarks, and
    the margin (the policy's `rtt_margin_ms`) it is judged by."""

    verdict_id: int
    round_id: str
    excess_ms: float
    margin_ms: float
    landmarks: tuple[dict[str, Any], ...]  # per landmark: distance, RTT, bounds

    @property
    def anomalous(self) -> bool:
        return self.excess_ms > self.margin_ms

    def to_json(self) -> dict[str, Any]:
        return {"verdict_id": self.verdict_id, "round_id": self.round_id,
                "excess_ms": round(self.excess_ms, 3), "landmarks": list(self.landmarks)}


def round_excess(site: DeclaredSite, verdict: VerdictRecord,
                 margin_ms: float) -> RoundExcess | None:
    """None for a round without answers."""
    rows = []
    for row in verdict.landmarks:
        path_km = distance_km(site.lat_deg, site.lon_deg, row["lat_deg"], row["lon_deg"])
        rows.append((path_km, row))
    if not rows:
        return None
    rows.sort(key=lambda item: item[0])
    evidence = []
    excesses = []
    for path_km, row in rows[:NEAREST_LANDMARKS]:
        explained = explained_rtt_ms(path_km)
        excesses.append(float(row["rtt_ms"]) - explained)
        evidence.append({
            "landmark_id": row["landmark_id"], "distance_km": round(path_km, 1),
            "rtt_ms": round(float(row["rtt_ms"]), 3),
            "physics_min_rtt_ms": round(vacuum_rtt_ms(path_km), 3),
            "explained_rtt_ms": round(explained, 3),
        })
    return RoundExcess(verdict.verdict_id, verdict.round_id, min(excesses), margin_ms,
                       tuple(evidence))


def check(store: Store, alerts: Alerts, *, verdict: VerdictRecord, policy: Policy,
          sound_region: BaseGeometry | None, now_unix_ns: int) -> None:
    """After a chip's round is recorded: learn its RTT baseline, raise or resolve its location
    alerts."""
    try:
        site = site_from_json(verdict.licence)
    except GeoError:  # stored licences were checked at registration; never block a verdict
        site = None
    if site is not None:
        if sound_region is not None:
            _site_consistency(store, alerts, verdict, site, policy, sound_region=sound_region,
                              now_unix_ns=now_unix_ns)
        _rtt_anomaly(store, alerts, verdict, site, policy=policy, now_unix_ns=now_unix_ns)
    _above_baseline(store, alerts, verdict, policy, now_unix_ns)
    _proof_lost(store, alerts, verdict, policy, now_unix_ns)


def _site_consistency(store: Store, alerts: Alerts, verdict: VerdictRecord, site: DeclaredSite,
                      policy: Policy, *, sound_region: BaseGeometry, now_unix_ns: int) -> None:
    point = shapely.Point(site.lon_deg, site.lat_deg)
    if grow(sound_region, policy.site_slack_km).covers(point):
        return
    alerts.raise_alert(
        store, AlertType.SITE_INCONSISTENT, subject_kind="chip", subject_id=verdict.chip_id,
        message=f"chip {verdict.chip_id}: the speed of light rules out its declared site "
                f"({site.lat_deg:.4f}, {site.lon_deg:.4f}) in round {verdict.round_id}",
        details={"verdict_id": verdict.verdict_id, "round_id": verdict.round_id,
                 "site": site.to_json(), "slack_km": policy.site_slack_km,
                 "policy": _policy_json(policy), "landmarks": list(verdict.landmarks)},
        now_unix_ns=now_unix_ns)


def _rtt_anomaly(store: Store, alerts: Alerts, verdict: VerdictRecord, site: DeclaredSite, *,
                 policy: Policy, now_unix_ns: int) -> None:
    current = round_excess(site, verdict, policy.rtt_margin_ms)
    if current is None:
        return  # silence is neither an anomaly nor its end
    if not current.anomalous:
        alerts.auto_resolve(store, AlertType.RTT_ANOMALY, subject_kind="chip",
                            subject_id=verdict.chip_id,
                            reason=f"round {verdict.round_id} is explained by the declared site",
                            now_unix_ns=now_unix_ns)
        return
    recent = _answered_rounds(store, site, verdict.chip_id, policy)
    if len(recent) < policy.anomaly_rounds or not all(r.anomalous for r in recent):
        return
    worst = min(r.excess_ms for r in recent)
    alerts.raise_alert(
        store, AlertType.RTT_ANOMALY, subject_kind="chip", subject_id=verdict.chip_id,
        message=f"chip {verdict.chip_id}: {len(recent)} rounds answered at least {worst:.1f} ms "
                f"later than its declared site explains (relay or move?)",
        details={"site": site.to_json(), "margin_ms": policy.rtt_margin_ms,
                 "route_stretch": ROUTE_STRETCH, "nearest_landmarks": NEAREST_LANDMARKS,
                 "policy": _policy_json(policy), "rounds": [r.to_json() for r in recent]},
        now_unix_ns=now_unix_ns)


def _answered_rounds(store: Store, site: DeclaredSite, chip_id: str,
                     policy: Policy) -> Sequence[RoundExcess]:
    found = []
    for past in store.verdicts(chip_id, None, _HISTORY_PER_ROUND * policy.anomaly_rounds):
        excess = round_excess(site, past, policy.rtt_margin_ms)
        if excess is not None:
            found.append(excess)
        if len(found) == policy.anomaly_rounds:
            break
    return found


def _above_baseline(store: Store, alerts: Alerts, verdict: VerdictRecord, policy: Policy,
                    now_unix_ns: int) -> None:
    """Judge the round against the baselines learned before it, then learn from it."""
    known = store.rtt_baselines(verdict.chip_id)
    baselines = {b.landmark_id: b for b in known}
    current = rtt_baseline.round_excess(baselines, verdict,
                                        baseline_rounds=policy.baseline_rounds)
    store.put_rtt_baselines(rtt_baseline.learn(known, verdict))
    if current is None:
        return  # no answers, or too few landmarks with a learned baseline: no evidence
    if current.excess_ms <= policy.rtt_margin_ms:
        alerts.auto_resolve(store, AlertType.RTT_ABOVE_BASELINE, subject_kind="chip",
                            subject_id=verdict.chip_id,
                            reason=f"round {verdict.round_id} is within the learned baseline",
                            now_unix_ns=now_unix_ns)
        return
    history = store.verdicts(verdict.chip_id, None, _HISTORY_PER_ROUND * policy.anomaly_rounds)
    recent = rtt_baseline.judged_rounds(baselines, history, baseline_rounds=policy.baseline_rounds,
                                        wanted=policy.anomaly_rounds)
    if (len(recent) < policy.anomaly_rounds
            or not all(r.excess_ms > policy.rtt_margin_ms for r in recent)):
        return
    worst = min(r.excess_ms for r in recent)
    used = {row["landmark_id"] for r in recent for row in r.landmarks}
    alerts.raise_alert(
        store, AlertType.RTT_ABOVE_BASELINE, subject_kind="chip", subject_id=verdict.chip_id,
        message=f"chip {verdict.chip_id}: {len(recent)} rounds answered at least {worst:.1f} ms "
                f"later than its own learned best RTTs (relay or move since enrolment?)",
        details={"margin_ms": policy.rtt_margin_ms, "policy": _policy_json(policy),
                 "baseline_landmarks": rtt_baseline.BASELINE_LANDMARKS,
                 "baseline": [b.to_json() for b in known if b.landmark_id in used],
                 "rounds": [r.to_json() for r in recent]},
        now_unix_ns=now_unix_ns)


def _proof_lost(store: Store, alerts: Alerts, verdict: VerdictRecord, policy: Policy,
                now_unix_ns: int) -> None:
    if verdict.verdict == Verdict.VERIFIED:
        alerts.auto_resolve(store, AlertType.PROOF_LOST, subject_kind="chip",
                            subject_id=verdict.chip_id,
                            reason=f"verified again in round {verdict.round_id}",
                            now_unix_ns=now_unix_ns)
        return
    window_s = proof_lost_window_s(policy)
    last_verified = next((v for v in store.verdicts(verdict.chip_id, None, _PROOF_HISTORY)
                          if v.verdict == Verdict.VERIFIED), None)
    if last_verified is None:
        return  # never verified (or long enough ago that the alert has already been raised)
    lost_s = (now_unix_ns - last_verified.created_unix_ns) / _NS
    if lost_s <= window_s:
        return
    alerts.raise_alert(
        store, AlertType.PROOF_LOST, subject_kind="chip", subject_id=verdict.chip_id,
        message=f"chip {verdict.chip_id}: not verified for {lost_s:.0f} s "
                f"(last verified in round {last_verified.round_id})",
        details={"last_verified_verdict_id": last_verified.verdict_id,
                 "last_verified_round_id": last_verified.round_id,
                 "window_s": window_s, "verdict_id": verdict.verdict_id,
                 "policy": _policy_json(policy)},
        now_unix_ns=now_unix_ns)


def proof_lost_window_s(policy: Policy) -> float:
    """How long a verified chip may go without `verified` before `proof_lost`."""
    return max(policy.proof_lost_rounds * policy.round_interval_s, policy.proof_lost_min_s)


def _policy_json(policy: Policy) -> dict[str, Any]:
    """The rule's inputs from the policy, so the alert shows which rule fired at which margins."""
    return {"name": policy.name, "round_interval_s": policy.round_interval_s,
            **policy.alert_margins}
