"""Landmark audit: find landmarks whose claimed coordinates disagree with the mesh RTTs.

Three kinds of evidence, strongest first:
- `impossible`: some pair's RTT is shorter than light in vacuum needs for the pair's claimed
  distance. One of the two claims must be wrong; we blame the landmark that explains the most
  violations (greedy vertex cover of the violation graph, ties broken by how fast that landmark
  looks across all its pairs), not every partner.
- `suspect`: the same for light at 2/3 c (fibre), or the landmark is a calibration outlier: the
  calibrated estimate from its own mesh RTTs lies far from its claimed position.
- `ok`: none of the above.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from geo.calibration import CalibrationModel, CalibrationSample
from geo.constants import C_VACUUM_KM_PER_S, PLAUSIBLE_SPEED_KM_PER_S
from geo.errors import GeoError, InsufficientDataError
from geo.geodesy import distance_km
from geo.measurement import LandmarkRtt, validate_position

logger = logging.getLogger(__name__)

Status = Literal["ok", "suspect", "impossible"]

OUTLIER_MIN_KM = 700.0
"""A calibration outlier is at least this far from its claimed position..."""

OUTLIER_RADIUS_FACTOR = 2.0
"""...and more than this many of its estimate's error radii."""

MIN_PEERS_FOR_ESTIMATE = 4


@dataclass(frozen=True, slots=True)
class LandmarkAudit:
    landmark_id: str
    status: Status
    evidence: tuple[dict[str, Any], ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "evidence": list(self.evidence)}


@dataclass(frozen=True, slots=True)
class _Pair:
    a: str
    b: str
    rtt_ms: float
    claimed_km: float

    def min_rtt_ms(self, speed_km_per_s: float) -> float:
        return 2000.0 * self.claimed_km / speed_km_per_s

    def evidence(self, about: str, kind: str, speed_km_per_s: float) -> dict[str, Any]:
        return {
            "kind": kind,
            "peer": self.b if about == self.a else self.a,
            "rtt_ms": round(self.rtt_ms, 3),
            "claimed_distance_km": round(self.claimed_km, 1),
            "min_rtt_ms": round(self.min_rtt_ms(speed_km_per_s), 3),
        }


def audit_landmarks(
    positions: Mapping[str, tuple[float, float]], mesh: Iterable[tuple[str, str, float]]
) -> dict[str, LandmarkAudit]:
    """Classify every landmark in `positions` (id -> (lat_deg, lon_deg)) from mesh RTTs (ms).

    Raises GeoError for a mesh row naming an unknown landmark or a non-positive RTT.
    """
    for landmark_id, (lat_deg, lon_deg) in positions.items():
        validate_position(lat_deg, lon_deg, f"landmark {landmark_id}")
    pairs = _best_pairs(positions, mesh)
    evidence: dict[str, list[dict[str, Any]]] = defaultdict(list)
    status: dict[str, Status] = {}

    vacuum = [p for p in pairs if p.rtt_ms < p.min_rtt_ms(C_VACUUM_KM_PER_S)]
    physical = [p for p in pairs if p.rtt_ms >= p.min_rtt_ms(C_VACUUM_KM_PER_S)]
    outliers = _calibration_offsets(positions, physical)
    oddness = {k: v["offset_km"] / v["limit_km"] for k, v in outliers.items()}
    for landmark_id, blamed in _blame(vacuum, pairs, oddness).items():
        status[landmark_id] = "impossible"
        evidence[landmark_id] += [
            p.evidence(landmark_id, "faster_than_light", C_VACUUM_KM_PER_S) for p in blamed
        ]
    # Pairs touching an impossible landmark are already explained.
    plausible = [
        p
        for p in pairs
        if p.rtt_ms < p.min_rtt_ms(PLAUSIBLE_SPEED_KM_PER_S)
        and p.a not in status
        and p.b not in status
    ]
    for landmark_id, blamed in _blame(plausible, pairs, oddness).items():
        status[landmark_id] = "suspect"
        evidence[landmark_id] += [
            p.evidence(landmark_id, "faster_than_fibre", PLAUSIBLE_SPEED_KM_PER_S) for p in blamed
        ]
    # Re-estimate without the pairs of landmarks already blamed, so that their wrong claims do not
    # drag an honest partner's estimate away (small meshes are sensitive to this).
    if status:
        outliers = _calibration_offsets(
            positions, [p for p in physical if p.a not in status and p.b not in status]
        )
    for landmark_id, item in outliers.items():
        if item["offset_km"] > item["limit_km"]:
            status.setdefault(landmark_id, "suspect")
            evidence[landmark_id].append(item)
    return {
        landmark_id: LandmarkAudit(
            landmark_id, status.get(landmark_id, "ok"), tuple(evidence[landmark_id])
        )
        for landmark_id in positions
    }


def _best_pairs(
    positions: Mapping[str, tuple[float, float]], mesh: Iterable[tuple[str, str, float]]
) -> list[_Pair]:
    best: dict[tuple[str, str], float] = {}
    for row, (a, b, rtt_ms) in enumerate(mesh):
        for landmark_id in (a, b):
            if landmark_id not in positions:
                raise GeoError(f"mesh row {row}: unknown landmark {landmark_id!r}")
        if isinstance(rtt_ms, bool) or not isinstance(rtt_ms, int | float):
            raise GeoError(f"mesh row {row}: rtt_ms must be a number")
        if not math.isfinite(rtt_ms) or rtt_ms <= 0.0:
            raise GeoError(f"mesh row {row}: rtt_ms must be finite and > 0, got {rtt_ms}")
        if a == b:
            continue
        key = (a, b) if a < b else (b, a)
        best[key] = min(best.get(key, math.inf), float(rtt_ms))
    return [
        _Pair(a, b, rtt_ms, distance_km(*positions[a], *positions[b]))
        for (a, b), rtt_ms in sorted(best.items())
    ]


def _blame(
    violations: list[_Pair], pairs: list[_Pair], oddness: Mapping[str, float]
) -> dict[str, list[_Pair]]:
    """Greedy vertex cover: repeatedly blame the landmark in the most remaining violations.

    Ties go to the landmark that breaks the plausible (2/3 c) tier with more peers, then to the one
    whose calibrated estimate lies farthest (in error radii) from its claim, then to the one that
    looks fastest overall: a misplaced landmark disagrees with many peers, its victims with one.
    """
    fibre_breaks: dict[str, int] = defaultdict(int)
    for p in pairs:
        if p.rtt_ms < p.min_rtt_ms(PLAUSIBLE_SPEED_KM_PER_S):
            fibre_breaks[p.a] += 1
            fibre_breaks[p.b] += 1
    speed = _apparent_speed(pairs)
    remaining = list(violations)
    blamed: dict[str, list[_Pair]] = {}
    while remaining:
        counts: dict[str, int] = defaultdict(int)
        for p in remaining:
            counts[p.a] += 1
            counts[p.b] += 1
        culprit = max(
            counts,
            key=lambda k: (counts[k], fibre_breaks[k], oddness.get(k, 0.0), speed.get(k, 0.0), k),
        )
        blamed[culprit] = [p for p in remaining if culprit in (p.a, p.b)]
        remaining = [p for p in remaining if culprit not in (p.a, p.b)]
    return blamed


def _apparent_speed(pairs: list[_Pair]) -> dict[str, float]:
    """Median claimed-distance / RTT per landmark: a misplaced one looks fast to many peers."""
    ratios: dict[str, list[float]] = defaultdict(list)
    for p in pairs:
        ratio = p.claimed_km / p.rtt_ms
        ratios[p.a].append(ratio)
        ratios[p.b].append(ratio)
    return {k: float(np.median(v)) for k, v in ratios.items()}


def _calibration_offsets(
    positions: Mapping[str, tuple[float, float]], pairs: list[_Pair]
) -> dict[str, dict[str, Any]]:
    """Each landmark's calibrated estimate from its peers' models, and how far off its claim is."""
    samples = [
        CalibrationSample(landmark_id, p.claimed_km, p.rtt_ms)
        for p in pairs
        for landmark_id in (p.a, p.b)
    ]
    try:
        model = CalibrationModel.fit(samples)
    except InsufficientDataError:
        return {}
    peers: dict[str, list[LandmarkRtt]] = defaultdict(list)
    for p in pairs:
        for me, other in ((p.a, p.b), (p.b, p.a)):
            lat_deg, lon_deg = positions[other]
            peers[me].append(LandmarkRtt(other, lat_deg, lon_deg, p.rtt_ms))
    found: dict[str, dict[str, Any]] = {}
    for landmark_id, measurements in peers.items():
        if len(measurements) < MIN_PEERS_FOR_ESTIMATE:
            continue
        estimate = model.estimate(measurements)
        offset_km = distance_km(*positions[landmark_id], estimate.lat_deg, estimate.lon_deg)
        limit_km = max(OUTLIER_MIN_KM, OUTLIER_RADIUS_FACTOR * estimate.error_radius_km)
        logger.debug("landmark %s estimate is %.0f km from its claim", landmark_id, offset_km)
        found[landmark_id] = {
            "kind": "calibration_outlier",
            "estimate": {"lat": round(estimate.lat_deg, 3), "lon": round(estimate.lon_deg, 3)},
            "offset_km": round(offset_km, 1),
            "limit_km": round(limit_km, 1),
        }
    return found
