"""Location alerts a relay or a move cannot avoid (docs/verifier.md, "Location alerts").

A relay can never be proven a violation (the relay host really is in the licensed country), but
it cannot hide the distance it adds: a chip licensed at a data centre 10 km from a landmark that
answers it in 39 ms is not where it says. Three alerts, each with its evidence in the alert's
details (and so in the evidence log):

* `site_inconsistent`: the round's sound region (vacuum speed of light) excludes the declared
  site grown by SITE_SLACK_KM. A proof: physics puts the chip elsewhere. No false alarm is
  possible from delay (delay only enlarges the region); only a landmark lying about its position
  can cause one, which the mesh audit and the `inconsistent` verdict exist to catch.
* `rtt_anomaly`: in each of the chip's last ANOMALY_ROUNDS rounds with answers, even the best
  of its NEAREST_LANDMARKS nearest landmarks (to the declared site) answered more than
  RTT_MARGIN_MS later than a generous internet path from the site explains (ROUTE_STRETCH x the
  great-circle distance at fibre speed, both ways). A relay or a move adds the real distance to
  every landmark, so it fires every round; congestion would have to add > 10 ms to the best of
  several probes to each of three landmarks, in every one of three consecutive rounds.
* `proof_lost`: a chip that was `verified` has not been for PROOF_LOST_ROUNDS round intervals
  (and at least PROOF_LOST_MIN_S): the evidence that placed it is gone. It resolves itself at
  the next `verified` round.
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
from verifier.alerts import Alerts
from verifier.model import AlertType, Policy, VerdictRecord
from verifier.store import Store

logger = logging.getLogger(__name__)

SITE_SLACK_KM = 2.0  # a campus, and the registered coordinates' rounding
FIBRE_KM_PER_MS = C_VACUUM_KM_PER_S * 2.0 / 3.0 / 1000.0  # one way, light in glass
ROUTE_STRETCH = 3.0  # real routes run up to ~3x the great circle (docs/verifier.md)
RTT_MARGIN_MS = 10.0
NEAREST_LANDMARKS = 3
ANOMALY_ROUNDS = 3
PROOF_LOST_ROUNDS = 10
PROOF_LOST_MIN_S = 300.0
_HISTORY = 4 * ANOMALY_ROUNDS  # verdicts read back to find the last rounds with answers
_PROOF_HISTORY = 200
_NS = 1_000_000_000


def explained_rtt_ms(path_km: float) -> float:
    """The slowest round trip an ordinary internet path of that great-circle length explains,
    before the margin: stretched route, fibre speed, there and back."""
    return 2.0 * path_km * ROUTE_STRETCH / FIBRE_KM_PER_MS


@dataclass(frozen=True, slots=True)
class RoundExcess:
    """One round: the smallest excess over the explained RTT among the nearest landmarks."""

    verdict_id: int
    round_id: str
    excess_ms: float
    landmarks: tuple[dict[str, Any], ...]  # per landmark: distance, RTT, bounds

    @property
    def anomalous(self) -> bool:
        return self.excess_ms > RTT_MARGIN_MS

    def to_json(self) -> dict[str, Any]:
        return {"verdict_id": self.verdict_id, "round_id": self.round_id,
                "excess_ms": round(self.excess_ms, 3), "landmarks": list(self.landmarks)}


def round_excess(site: DeclaredSite, verdict: VerdictRecord) -> RoundExcess | None:
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
    return RoundExcess(verdict.verdict_id, verdict.round_id, min(excesses), tuple(evidence))


def check(store: Store, alerts: Alerts, *, verdict: VerdictRecord, policy: Policy,
          sound_region: BaseGeometry | None, now_unix_ns: int) -> None:
    """After a chip's round is recorded: raise or resolve its location alerts."""
    try:
        site = site_from_json(verdict.licence)
    except GeoError:  # stored licences were checked at registration; never block a verdict
        site = None
    if site is not None:
        if sound_region is not None:
            _site_consistency(store, alerts, verdict, site, sound_region=sound_region,
                              now_unix_ns=now_unix_ns)
        _rtt_anomaly(store, alerts, verdict, site, now_unix_ns)
    _proof_lost(store, alerts, verdict, policy, now_unix_ns)


def _site_consistency(store: Store, alerts: Alerts, verdict: VerdictRecord, site: DeclaredSite,
                      *, sound_region: BaseGeometry, now_unix_ns: int) -> None:
    point = shapely.Point(site.lon_deg, site.lat_deg)
    if grow(sound_region, SITE_SLACK_KM).covers(point):
        return
    alerts.raise_alert(
        store, AlertType.SITE_INCONSISTENT, subject_kind="chip", subject_id=verdict.chip_id,
        message=f"chip {verdict.chip_id}: the speed of light rules out its declared site "
                f"({site.lat_deg:.4f}, {site.lon_deg:.4f}) in round {verdict.round_id}",
        details={"verdict_id": verdict.verdict_id, "round_id": verdict.round_id,
                 "site": site.to_json(), "slack_km": SITE_SLACK_KM,
                 "landmarks": list(verdict.landmarks)},
        now_unix_ns=now_unix_ns)


def _rtt_anomaly(store: Store, alerts: Alerts, verdict: VerdictRecord, site: DeclaredSite,
                 now_unix_ns: int) -> None:
    current = round_excess(site, verdict)
    if current is None:
        return  # silence is neither an anomaly nor its end
    if not current.anomalous:
        alerts.auto_resolve(store, AlertType.RTT_ANOMALY, subject_kind="chip",
                            subject_id=verdict.chip_id,
                            reason=f"round {verdict.round_id} is explained by the declared site",
                            now_unix_ns=now_unix_ns)
        return
    recent = _answered_rounds(store, site, verdict.chip_id)
    if len(recent) < ANOMALY_ROUNDS or not all(r.anomalous for r in recent):
        return
    worst = min(r.excess_ms for r in recent)
    alerts.raise_alert(
        store, AlertType.RTT_ANOMALY, subject_kind="chip", subject_id=verdict.chip_id,
        message=f"chip {verdict.chip_id}: {len(recent)} rounds answered at least {worst:.1f} ms "
                f"later than its declared site explains (relay or move?)",
        details={"site": site.to_json(), "margin_ms": RTT_MARGIN_MS,
                 "route_stretch": ROUTE_STRETCH, "nearest_landmarks": NEAREST_LANDMARKS,
                 "rounds": [r.to_json() for r in recent]},
        now_unix_ns=now_unix_ns)


def _answered_rounds(store: Store, site: DeclaredSite, chip_id: str) -> Sequence[RoundExcess]:
    found = []
    for past in store.verdicts(chip_id, None, _HISTORY):
        excess = round_excess(site, past)
        if excess is not None:
            found.append(excess)
        if len(found) == ANOMALY_ROUNDS:
            break
    return found


def _proof_lost(store: Store, alerts: Alerts, verdict: VerdictRecord, policy: Policy,
                now_unix_ns: int) -> None:
    if verdict.verdict == Verdict.VERIFIED:
        alerts.auto_resolve(store, AlertType.PROOF_LOST, subject_kind="chip",
                            subject_id=verdict.chip_id,
                            reason=f"verified again in round {verdict.round_id}",
                            now_unix_ns=now_unix_ns)
        return
    window_s = max(PROOF_LOST_ROUNDS * policy.round_interval_s, PROOF_LOST_MIN_S)
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
                 "window_s": window_s, "verdict_id": verdict.verdict_id},
        now_unix_ns=now_unix_ns)
