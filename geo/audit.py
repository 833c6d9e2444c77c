"""Landmark audit: find landmarks whose claimed coordinates disagree with the mesh RTTs.

Two kinds of finding, with different weight (docs/geo.md, "Landmark audit"):
- `impossible` is a proof: some pair's RTT is shorter than light in vacuum needs for the pair's
  claimed distance, so one of the two claims is wrong. We blame the landmark that explains the
  most violations (greedy vertex cover of the violation graph), not every partner. The verifier
  excludes it (`landmark_fault`, critical).
- `suspect` means "probably misplaced", on either of two kinds of evidence. (1) Position
  consistency (geo/audit_position.py): with the speed model fitted on the rest of the mesh, the
  landmark's RTT vector fits a position at least 300 km away far better than its listing.
  (2) Fast partners: the claimed position makes the landmark's paths to at
  least MIN_PARTNERS independent partners (more than PARTNER_SEPARATION_KM apart; and at least
  PARTNER_SHARE of all its partners) faster than FAST_MARGIN × the FAST_QUANTILE speed of
  comparable paths (similar RTT) in the rest of the mesh.
  A fast path alone is not evidence: real meshes have direct cables faster than the usual 2/3 c
  rule of thumb, and those show up with one partner, not several. A landmark that is misplaced
  looks fast to every partner it was moved away from. Not a proof: the verifier raises a warning
  (`landmark_suspect`) and keeps using the landmark.
"""

from __future__ import annotations

import functools
import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from geo.audit_position import PositionCheck, check_positions
from geo.constants import C_VACUUM_KM_PER_S, PLAUSIBLE_SPEED_KM_PER_S
from geo.errors import GeoError
from geo.geodesy import distance_km
from geo.leave_out import LeaveOutQuantiles
from geo.measurement import validate_position

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
Status = Literal["ok", "suspect", "impossible"]

FAST_QUANTILE = 0.98
"""Quantile of ln(km per RTT ms) among comparable mesh paths that a partner path must beat..."""

FAST_MARGIN = 1.1
"""...by this factor to count as too fast. Both calibrated so that no honest landmark of the real
sets or the synthetic mesh is suspect (`python -m benchmarks.calibration_eval`, docs/geo.md)."""

MIN_PARTNERS = 2
"""Independent partners that must each see a too-fast path before a landmark is suspect..."""

PARTNER_SHARE = 0.025
"""...and at least this share of all its partners (rounded up): with hundreds of partners a few
honest paths beat any quantile (the synthetic mesh's best-connected honest city had 4 of 224)."""

PARTNER_SEPARATION_KM = 150.0
"""Partners closer than this to each other count once (two regions on one campus are one
witness, not two)."""

ENVELOPE_BANDWIDTH = 0.35  # Gaussian kernel width in ln(RTT) for "comparable" paths
MIN_COMPARABLE_PATHS = 10.0  # fewer (kernel weight): the path is compared with 2/3 c instead
_SUSPECT_ROUNDS = 3
_KNOTS_MS = tuple(float(v) for v in np.geomspace(0.5, 700.0, 40))


@dataclass(frozen=True, slots=True)
class LandmarkAudit:
    landmark_id: str
    status: Status
    evidence: tuple[dict[str, Any], ...] = field(default=())
    position_check: PositionCheck | None = None  # the position test's figures, flagged or not

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

    def evidence(self, about: str, kind: str, limit_km_per_ms: float) -> dict[str, Any]:
        """What the path shows: its RTT, the claimed distance and the RTT the limit allows."""
        return {
            "kind": kind,
            "peer": self.b if about == self.a else self.a,
            "rtt_ms": round(self.rtt_ms, 3),
            "claimed_distance_km": round(self.claimed_km, 1),
            "min_rtt_ms": round(self.claimed_km / limit_km_per_ms, 3),
        }


def audit_landmarks(
    positions: Mapping[str, tuple[float, float]], mesh: Iterable[tuple[str, str, float]]
) -> dict[str, LandmarkAudit]:
    """Classify every landmark in `positions` (id -> (lat_deg, lon_deg)) from mesh RTTs (ms).

    `mesh` is one measurement window; a pair measured several times counts with its best RTT.
    Raises GeoError for a mesh row naming an unknown landmark or a non-positive RTT.
    """
    for landmark_id, (lat_deg, lon_deg) in positions.items():
        validate_position(lat_deg, lon_deg, f"landmark {landmark_id}")
    pairs = _best_pairs(positions, mesh)
    evidence: dict[str, list[dict[str, Any]]] = defaultdict(list)
    status: dict[str, Status] = {}

    vacuum = [p for p in pairs if p.rtt_ms < p.min_rtt_ms(C_VACUUM_KM_PER_S)]
    # Fast paths only break ties between blamed landmarks: not needed without a violation.
    fast = _fast_paths(positions, [p for p in pairs if p not in vacuum], set()) if vacuum else {}
    for landmark_id, blamed in _blame(vacuum, fast).items():
        status[landmark_id] = "impossible"
        evidence[landmark_id] += [
            p.evidence(landmark_id, "faster_than_light", C_VACUUM_KM_PER_S / 2000.0) for p in blamed
        ]
    # Pairs touching an impossible landmark are already explained.
    physical = [p for p in pairs if p not in vacuum and p.a not in status and p.b not in status]
    suspects: dict[str, list[dict[str, Any]]] = {}
    checks = _position_checks(positions, physical)
    for _ in range(_SUSPECT_ROUNDS):
        # A suspect's own fast paths would raise the bar for its victims' partners: comparable
        # paths leave out the previous round's suspects (a small mesh has few comparable paths).
        found = _suspects(positions, physical, set(suspects))
        if found.keys() == suspects.keys():
            break
        suspects = found
    for landmark_id, check in checks.items():
        if check.inconsistent:
            suspects[landmark_id] = [check.evidence(), *suspects.get(landmark_id, [])]
    for landmark_id, items in suspects.items():
        status[landmark_id] = "suspect"
        evidence[landmark_id] += items
    logger.debug("audit: %d impossible, %d suspect", *_counts(status))
    return {
        landmark_id: LandmarkAudit(
            landmark_id,
            status.get(landmark_id, "ok"),
            tuple(evidence[landmark_id]),
            checks.get(landmark_id),
        )
        for landmark_id in positions
    }


def _counts(status: Mapping[str, Status]) -> tuple[int, int]:
    values = list(status.values())
    return values.count("impossible"), values.count("suspect")


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
        _Pair(a, b, rtt_ms, _geodesic_km(*positions[a], *positions[b]))
        for (a, b), rtt_ms in sorted(best.items())
    ]


@functools.lru_cache(maxsize=1 << 17)
def _geodesic_km(lat1_deg: float, lon1_deg: float, lat2_deg: float, lon2_deg: float) -> float:
    """WGS84 distance (the proof needs the exact geodesic), cached: a mesh audited again after
    one landmark moved, or in the next window, asks for the same pairs."""
    return distance_km(lat1_deg, lon1_deg, lat2_deg, lon2_deg)


def _position_checks(
    positions: Mapping[str, tuple[float, float]], pairs: list[_Pair]
) -> dict[str, PositionCheck]:
    """geo.audit_position's check of every landmark, from the pairs given (best RTT per pair)."""
    ids = list(positions)
    index = {landmark_id: i for i, landmark_id in enumerate(ids)}
    rtt_ms = np.full((len(ids), len(ids)), np.nan)
    for p in pairs:
        rtt_ms[index[p.a], index[p.b]] = rtt_ms[index[p.b], index[p.a]] = p.rtt_ms
    return check_positions(ids, np.array([positions[k] for k in ids], dtype=np.float64), rtt_ms)


def _suspects(
    positions: Mapping[str, tuple[float, float]], pairs: list[_Pair], distrusted: set[str]
) -> dict[str, list[dict[str, Any]]]:
    """Landmarks too fast to MIN_PARTNERS independent partners, with those paths as evidence."""
    partners: dict[str, int] = defaultdict(int)
    for p in pairs:
        partners[p.a] += 1
        partners[p.b] += 1
    found = {}
    for landmark_id, items in _fast_paths(positions, pairs, distrusted).items():
        needed = max(MIN_PARTNERS, math.ceil(PARTNER_SHARE * partners[landmark_id]))
        if len(_independent(positions, [peer for peer, _ in items])) >= needed:
            found[landmark_id] = [item for _, item in items]
    return found


def _fast_paths(
    positions: Mapping[str, tuple[float, float]],
    pairs: list[_Pair],
    distrusted: set[str],
) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Per landmark, the partners whose path to it is faster than comparable paths allow.

    "Comparable" paths are the mesh pairs touching neither the landmark (so a misplaced landmark
    cannot raise its own bar) nor a `distrusted` one, weighted by how close their RTT is.
    """
    if not pairs:
        return {}
    log_rtt = np.log(np.array([p.rtt_ms for p in pairs]))
    log_speed = np.log(np.maximum(np.array([p.claimed_km for p in pairs]), 1e-3)) - log_rtt
    touches: dict[str, list[int]] = defaultdict(list)
    trusted = np.ones(len(pairs), dtype=bool)
    for k, p in enumerate(pairs):
        touches[p.a].append(k)
        touches[p.b].append(k)
        trusted[k] = p.a not in distrusted and p.b not in distrusted
    knots = np.log(np.asarray(_KNOTS_MS))
    comparable = LeaveOutQuantiles(log_speed, log_rtt, knots, ENVELOPE_BANDWIDTH, trusted)
    found: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for landmark_id, own in touches.items():
        limit = _speed_limit(comparable, np.asarray(own), log_rtt[own])
        items = []
        for k, limit_km_per_ms in zip(own, limit, strict=True):
            p = pairs[k]
            if p.claimed_km > p.rtt_ms * limit_km_per_ms * FAST_MARGIN:
                peer = p.b if landmark_id == p.a else p.a
                items.append((peer, p.evidence(landmark_id, "faster_than_peers", limit_km_per_ms)))
        if items:
            found[landmark_id] = items
    return found


def _speed_limit(
    comparable: LeaveOutQuantiles, own: npt.NDArray[np.intp], at_log_rtt: FloatArray
) -> FloatArray:
    """FAST_QUANTILE of km per RTT ms among paths of similar RTT (the landmark's own paths left
    out); 2/3 c where there are few. Evaluated at fixed RTT knots and interpolated."""
    fibre = math.log(PLAUSIBLE_SPEED_KM_PER_S / 2000.0)
    (quantile,), weight = comparable.without(own, (FAST_QUANTILE,))
    limit = np.where(weight >= MIN_COMPARABLE_PATHS, np.minimum(quantile, fibre), fibre)
    knots = np.log(np.asarray(_KNOTS_MS))
    return np.asarray(np.exp(np.interp(at_log_rtt, knots, limit)), dtype=np.float64)


def _independent(positions: Mapping[str, tuple[float, float]], peers: list[str]) -> list[str]:
    """Peers, leaving out any within PARTNER_SEPARATION_KM of one already counted."""
    kept: list[str] = []
    for peer in peers:
        if all(_geodesic_km(*positions[peer], *positions[k]) > PARTNER_SEPARATION_KM for k in kept):
            kept.append(peer)
    return kept


def _blame(
    violations: list[_Pair], fast: Mapping[str, list[tuple[str, dict[str, Any]]]]
) -> dict[str, list[_Pair]]:
    """Greedy vertex cover: repeatedly blame the landmark in the most remaining violations.

    Ties go to the landmark that looks too fast to more partners, then the lower id: a misplaced
    landmark disagrees with many peers, its victims with one.
    """
    remaining = list(violations)
    blamed: dict[str, list[_Pair]] = {}
    while remaining:
        counts: dict[str, int] = defaultdict(int)
        for p in remaining:
            counts[p.a] += 1
            counts[p.b] += 1
        culprit = max(counts, key=lambda k: (counts[k], len(fast.get(k, ())), k))
        blamed[culprit] = [p for p in remaining if culprit in (p.a, p.b)]
        remaining = [p for p in remaining if culprit not in (p.a, p.b)]
    return blamed
