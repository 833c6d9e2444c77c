"""The audit's position-consistency test: does a landmark's RTT vector fit where it is listed?

A landmark listed away from where it is shows paths too fast towards its true place and too slow
away from it, and its RTT vector as a whole fits its true position better than its listing. For
each landmark L (docs/geo.md, "Landmark audit"):

1. the mesh's speed curve (median and robust spread of ln(km per RTT ms) against ln RTT, as
   `geo.calibration.SpeedCurve`) is fitted on the pairs NOT touching L, and each partner's speed
   offset on its pairs other than the one with L: leave-the-landmark-out, so a misplaced landmark
   cannot teach the model its own wrong distances;
2. L's RTTs to its POSITION_PARTNERS partners with the smallest RTTs become likely distances, and
   the Student-t cost of L's listed position is compared with the best position on a global grid
   (`geo.calibration.DistanceLikelihood`);
3. L is inconsistent when the best position is at least POSITION_MIN_KM from the listing AND the
   cost difference (a log-likelihood ratio) is at least POSITION_LOG_RATIO.

Not a proof: hub-routed regions fit their listing badly too. The threshold is calibrated so that
no honest landmark of the real sets or the synthetic mesh crosses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from geo.calibration import (
    CURVE_BANDWIDTH,
    CURVE_KNOTS_MS,
    SHRINK_SAMPLES,
    DistanceLikelihood,
    SpeedCurve,
)
from geo.geodesy import sphere_distance_km
from geo.leave_out import LeaveOutQuantiles

FloatArray = npt.NDArray[np.float64]

POSITION_PARTNERS = 10
"""Partners with the smallest RTTs whose distances are fitted (as the calibrated estimate)."""

POSITION_MIN_KM = 400.0
"""The best position must be at least this far from the listing: closer, the test cannot tell a
misplacement from the estimate's own error or a coarse listing (Azure lists France Central at
the centre of France; its RTTs fit a point 300 km away, near Paris, with a log-likelihood ratio
of 15)."""

POSITION_LOG_RATIO = 12.5
"""Log-likelihood ratio (best position vs listing) at or above which a landmark is inconsistent.
Calibrated on the honest listings (`python -m benchmarks.calibration_eval`, `honest_log_ratio`):
the highest honest score beyond POSITION_MIN_KM is Azure's South East Asia, 11.4 (best fit 1,870
km away: reached through a hub), then Azure's Jio India West, 11.0; IBM's is 5.0, the synthetic
mesh's 5.3. Calibrated without Azure (about 6) it would mark those two Azure regions."""

POSITION_T_DOF = 5.0
"""Student-t tail weight: lighter than the estimate's (2), so a consistent misfit of several
partners counts more, yet one odd path is still outvoted."""

SEARCH_GRID_POINTS = 3_000
"""Global grid for the best position (~400 km spacing; the local refinement reaches ±6°). The
estimate's 12,000 points change no audit result on the sets and cost 4 times more."""

MIN_PARTNERS_FOR_TEST = 4
"""Fewer measured partners leave the position unconstrained: no test."""

_IQR_TO_SIGMA = 1.349  # interquartile range of a normal distribution, in standard deviations


@dataclass(frozen=True, slots=True)
class PositionCheck:
    """How far the best-fitting position is from the listing, and how much better it fits."""

    best_lat_deg: float
    best_lon_deg: float
    distance_km: float
    log_likelihood_ratio: float
    partners: tuple[str, ...]

    @property
    def inconsistent(self) -> bool:
        return (
            self.distance_km >= POSITION_MIN_KM and self.log_likelihood_ratio >= POSITION_LOG_RATIO
        )

    def evidence(self) -> dict[str, Any]:
        return {
            "kind": "position_inconsistent",
            "best_lat_deg": round(self.best_lat_deg, 3),
            "best_lon_deg": round(self.best_lon_deg, 3),
            "distance_km": round(self.distance_km, 1),
            "log_likelihood_ratio": round(self.log_likelihood_ratio, 2),
            "partners": list(self.partners),
        }


def check_positions(
    ids: Sequence[str], positions_deg: FloatArray, rtt_ms: FloatArray
) -> dict[str, PositionCheck]:
    """A PositionCheck per landmark with at least MIN_PARTNERS_FOR_TEST measured partners.

    `positions_deg` is (n, 2) listed lat, lon; `rtt_ms` (n, n) symmetric best RTTs, NaN where
    unmeasured (the diagonal included).
    """
    n = len(ids)
    lat, lon = positions_deg[:, 0], positions_deg[:, 1]
    dist_km = sphere_distance_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :])
    a, b = np.triu_indices(n, 1)
    ok = np.isfinite(rtt_ms[a, b]) & (rtt_ms[a, b] > 0.0) & (dist_km[a, b] > 0.0)
    a, b = a[ok], b[ok]
    if len(a) == 0:
        return {}
    curves = _CurvesWithout(dist_km[a, b], rtt_ms[a, b], a, b)
    results = {}
    for landmark in range(n):
        measured = np.flatnonzero(np.isfinite(rtt_ms[landmark]))
        if len(measured) < MIN_PARTNERS_FOR_TEST:
            continue
        curve = curves.without(landmark)
        if curve is None:
            continue
        partners = measured[np.argsort(rtt_ms[landmark, measured], kind="stable")]
        partners = partners[:POSITION_PARTNERS]
        offsets = _partner_offsets(curve, dist_km, rtt_ms, partners, landmark)
        rtt = rtt_ms[landmark, partners]
        log_speed, sigma = curve.at(rtt)
        likelihood = DistanceLikelihood(
            lat[partners],
            lon[partners],
            np.exp(log_speed + offsets) * rtt,
            sigma,
            np.full(len(partners), np.inf),
            nu=POSITION_T_DOF,
        )
        best_lat, best_lon = likelihood.solve(SEARCH_GRID_POINTS)
        listed_cost = float(likelihood.cost(lat[landmark], lon[landmark]))
        best_cost = min(float(likelihood.cost(np.array(best_lat), np.array(best_lon))), listed_cost)
        results[ids[landmark]] = PositionCheck(
            best_lat,
            best_lon,
            float(sphere_distance_km(lat[landmark], lon[landmark], best_lat, best_lon)),
            listed_cost - best_cost,
            tuple(ids[p] for p in partners),
        )
    return results


class _CurvesWithout:
    """Speed curves fitted with every pair of one landmark left out (geo/leave_out.py).

    Median and spread are kernel-weighted quantiles of the pairs' ln(km per RTT ms); the spread
    is the interquartile range scaled to a normal's sigma (robust, like the MAD).
    """

    def __init__(
        self,
        dist_km: FloatArray,
        rtt_ms: FloatArray,
        a: npt.NDArray[np.intp],
        b: npt.NDArray[np.intp],
    ):
        knots = np.log(np.asarray(CURVE_KNOTS_MS))
        self.quantiles = LeaveOutQuantiles(
            np.log(dist_km / rtt_ms), np.log(rtt_ms), knots, CURVE_BANDWIDTH
        )
        self.a, self.b = a, b

    def without(self, landmark: int) -> SpeedCurve | None:
        own = np.flatnonzero((self.a == landmark) | (self.b == landmark))
        if len(own) == len(self.a):
            return None
        (low, median, high), _ = self.quantiles.without(own, (0.25, 0.5, 0.75))
        spread = (high - low) / _IQR_TO_SIGMA
        return SpeedCurve(
            CURVE_KNOTS_MS, tuple(float(v) for v in median), tuple(float(v) for v in spread)
        )


def _partner_offsets(
    curve: SpeedCurve,
    dist_km: FloatArray,
    rtt_ms: FloatArray,
    partners: npt.NDArray[np.intp],
    landmark: int,
) -> FloatArray:
    """Each partner's shrunk median ln(distance / curve distance), its pair with `landmark` out."""
    rtt = rtt_ms[partners].copy()
    rtt[:, landmark] = np.nan
    measured = np.isfinite(rtt) & (dist_km[partners] > 0.0)
    safe_rtt = np.where(measured, rtt, 1.0)
    log_speed, _ = curve.at(safe_rtt)
    residual = np.where(
        measured, np.log(np.where(measured, dist_km[partners], 1.0) / safe_rtt) - log_speed, np.nan
    )
    count = np.sum(measured, axis=1)
    median = np.zeros(len(partners))
    has = count > 0
    if np.any(has):
        median[has] = np.nanmedian(residual[has], axis=1)
    return np.asarray(median * count / (count + SHRINK_SAMPLES), dtype=np.float64)
