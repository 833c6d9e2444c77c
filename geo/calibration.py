"""Calibrated tier: a per-landmark delay→distance model learned from the landmark mesh.

Not a proof. Each landmark gets CBG's bestline (Gueye et al. 2006): the line below every
(distance, rtt) point of its mesh samples with slope no shallower than light at 2/3 c, minimising
the total gap. Its intercept is the landmark's fixed delay (last mile, processing) and it gives a
*maximum* distance for an RTT. On top of it we fit the landmark's typical speed, the 10th, 50th and
90th percentiles of distance / (rtt − intercept) over its samples, which turns an RTT into a
*likely distance band*. The estimate is a robust (soft-L1) weighted least-squares fit on the
sphere of distances to those bands; the band is asymmetric because added delay can only make a
landmark look farther, so "closer than expected" is penalised less than "farther".
"""

from __future__ import annotations

import itertools
import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from scipy.optimize import least_squares
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry
from shapely.ops import nearest_points

from geo.constants import EARTH_MEAN_RADIUS_KM, PLAUSIBLE_SPEED_KM_PER_S
from geo.errors import GeoError, InsufficientDataError
from geo.geodesy import sphere_destinations_rad, unit_vectors
from geo.measurement import LandmarkRtt
from geo.regions import split_antimeridian

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

MIN_SAMPLES_PER_LANDMARK = 6
"""Landmarks with fewer mesh samples use the global (pooled) model."""

PLAUSIBLE_KM_PER_RTT_MS = PLAUSIBLE_SPEED_KM_PER_S / 2000.0
"""Distance per ms of RTT at 2/3 c (~100 km/ms): the steepest slope a bestline may have."""

BAND_FLOOR_KM = 25.0
"""Added to every band half-width: city-scale noise the percentiles cannot see."""

LIKELY_COVERAGE = 0.8
"""Share of targets whose true location fell inside `likely_region` on the synthetic
leave-one-out benchmark (`python -m benchmarks.calibration_eval`); the basis of `confidence`."""

_MIN_SPAN_MS = 1.0  # samples closer than this to the intercept say nothing about speed


@dataclass(frozen=True, slots=True)
class CalibrationSample:
    """A landmark-to-landmark mesh measurement: claimed distance and the best RTT seen."""

    landmark_id: str
    distance_km: float
    rtt_ms: float

    def __post_init__(self) -> None:
        for value, what in ((self.distance_km, "distance_km"), (self.rtt_ms, "rtt_ms")):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise GeoError(f"calibration {self.landmark_id}: {what} must be a number")
            if not math.isfinite(value) or value < 0.0:
                raise GeoError(f"calibration {self.landmark_id}: {what} must be finite and >= 0")
        if self.rtt_ms <= 0.0:
            raise GeoError(f"calibration {self.landmark_id}: rtt_ms must be > 0")


@dataclass(frozen=True, slots=True)
class LandmarkModel:
    """One landmark's delay→distance model (or the pooled global one)."""

    intercept_ms: float  # bestline intercept: fixed delay not due to distance
    max_km_per_ms: float  # 1 / bestline slope: the bestline's (fastest) distance per RTT ms
    low_km_per_ms: float  # 10th percentile of distance / (rtt − intercept)
    mid_km_per_ms: float  # median
    high_km_per_ms: float  # 90th percentile
    samples: int

    def band_km(self, rtt_ms: float) -> tuple[float, float, float, float]:
        """(low, likely, high, bestline max) distance for an RTT, km."""
        span_ms = max(rtt_ms - self.intercept_ms, 0.0)
        max_km = span_ms * self.max_km_per_ms
        high_km = min(span_ms * self.high_km_per_ms, max_km)
        mid_km = min(span_ms * self.mid_km_per_ms, high_km)
        return span_ms * self.low_km_per_ms, mid_km, high_km, max_km


def bestline(distance_km: FloatArray, rtt_ms: FloatArray) -> tuple[float, float]:
    """CBG bestline: (slope ms/km, intercept ms) of the line below all points.

    Maximises slope·Σd + n·intercept (minimises the total vertical gap) subject to the line lying
    below every point, intercept >= 0 and slope >= 1 / PLAUSIBLE_KM_PER_RTT_MS. The optimum of this
    2-variable LP lies on an edge of the points' lower convex hull, on the slope bound through a
    hull vertex, or on the intercept bound, so we enumerate those candidates exactly.
    """
    min_slope = 1.0 / PLAUSIBLE_KM_PER_RTT_MS
    order = np.lexsort((rtt_ms, distance_km))
    d, r = distance_km[order], rtt_ms[order]
    hull: list[int] = []
    for i in range(len(d)):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            if (d[b] - d[a]) * (r[i] - r[a]) - (r[b] - r[a]) * (d[i] - d[a]) <= 0.0:
                hull.pop()
            else:
                break
        hull.append(i)
    candidates: list[tuple[float, float]] = []
    for a, b in itertools.pairwise(hull):
        if d[b] > d[a]:
            slope = (r[b] - r[a]) / (d[b] - d[a])
            candidates.append((slope, r[a] - slope * d[a]))
    for i in hull:
        candidates.append((min_slope, r[i] - min_slope * d[i]))
        if d[i] > 0.0:
            candidates.append((r[i] / d[i], 0.0))
    best = (min_slope, 0.0)
    best_score = -math.inf
    total_d = float(d.sum())
    for slope, intercept in candidates:
        if slope < min_slope or intercept < 0.0:
            continue
        if np.any(slope * d + intercept > r + 1e-9):
            continue
        score = slope * total_d + len(d) * intercept
        if score > best_score:
            best, best_score = (float(slope), float(intercept)), score
    return best


def fit_landmark(distance_km: FloatArray, rtt_ms: FloatArray) -> LandmarkModel:
    """A LandmarkModel from one landmark's (distance, rtt) samples."""
    # Samples faster than 2/3 c come from wrong coordinates (or exotic links); CBG's constraints
    # cannot hold with them, so they are left out (the audit reports them).
    keep = rtt_ms * PLAUSIBLE_KM_PER_RTT_MS >= distance_km
    d, r = distance_km[keep], rtt_ms[keep]
    if len(d) == 0:
        d, r = distance_km, rtt_ms
    slope, intercept = bestline(d, r)
    span = r - intercept
    useful = span >= _MIN_SPAN_MS
    speeds = d[useful] / span[useful] if np.any(useful) else np.array([1.0 / slope])
    low, mid, high = (float(v) for v in np.quantile(speeds, [0.1, 0.5, 0.9]))
    return LandmarkModel(intercept, 1.0 / slope, low, mid, high, len(distance_km))


@dataclass(frozen=True, slots=True)
class LocationEstimate:
    """The calibrated tier's answer. Not a proof.

    `confidence` (0..1) is LIKELY_COVERAGE, the measured chance that the true location lies in
    `likely_region`, scaled by the share of measurements consistent with the estimate.
    """

    lat_deg: float
    lon_deg: float
    likely_region: BaseGeometry
    confidence: float
    error_radius_km: float


class CalibrationModel:
    """Per-landmark delay→distance models plus a pooled global fallback."""

    def __init__(self, landmarks: Mapping[str, LandmarkModel], global_model: LandmarkModel):
        self.landmarks = dict(landmarks)
        self.global_model = global_model

    @classmethod
    def fit(cls, samples: Iterable[CalibrationSample]) -> CalibrationModel:
        by_landmark: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for s in samples:
            by_landmark[s.landmark_id].append((s.distance_km, s.rtt_ms))
        pooled = [pair for pairs in by_landmark.values() for pair in pairs]
        if len(pooled) < 2:
            raise InsufficientDataError("calibration needs at least 2 mesh samples")
        pooled_array = np.asarray(pooled, dtype=np.float64)
        global_model = fit_landmark(pooled_array[:, 0], pooled_array[:, 1])
        landmarks = {}
        for landmark_id, pairs in by_landmark.items():
            if len(pairs) >= MIN_SAMPLES_PER_LANDMARK:
                array = np.asarray(pairs, dtype=np.float64)
                landmarks[landmark_id] = fit_landmark(array[:, 0], array[:, 1])
        logger.debug("calibrated %d landmarks, %d samples", len(landmarks), len(pooled))
        return cls(landmarks, global_model)

    def model_for(self, landmark_id: str) -> LandmarkModel:
        return self.landmarks.get(landmark_id, self.global_model)

    def to_json(self) -> dict[str, Any]:
        return {
            "global": asdict(self.global_model),
            "landmarks": {k: asdict(v) for k, v in sorted(self.landmarks.items())},
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> CalibrationModel:
        try:
            landmarks = {str(k): LandmarkModel(**v) for k, v in obj["landmarks"].items()}
            return cls(landmarks, LandmarkModel(**obj["global"]))
        except (KeyError, TypeError, AttributeError) as exc:
            raise GeoError(f"malformed calibration model: {exc}") from exc

    def estimate(
        self, measurements: Sequence[LandmarkRtt], within: BaseGeometry | None = None
    ) -> LocationEstimate:
        """Robust multilateration from likely distance bands; clipped to `within` if given."""
        if len(measurements) < 2:
            raise InsufficientDataError("a calibrated estimate needs at least 2 landmarks")
        bands = np.array([self.model_for(m.landmark_id).band_km(m.rtt_ms) for m in measurements])
        lat = np.array([m.lat_deg for m in measurements])
        lon = np.array([m.lon_deg for m in measurements])
        fit = _Multilateration(unit_vectors(lat, lon), bands)
        lat_deg, lon_deg, residuals = fit.solve(lat, lon)
        inlier_share = float(np.mean(np.abs(residuals) <= 2.0))
        # The target is within the nearest landmark's high band ~90% of the time by construction;
        # the fit is typically several times better than that (see docs/geo.md).
        error_radius_km = max(BAND_FLOOR_KM, 0.5 * float(np.min(bands[:, 2])) + BAND_FLOOR_KM)
        if within is not None and not within.is_empty:
            point = Point(lon_deg, lat_deg)
            if not within.covers(point):
                nearest = nearest_points(within, point)[0]
                lon_deg, lat_deg = float(nearest.x), float(nearest.y)
        likely = disc(lat_deg, lon_deg, error_radius_km)
        if within is not None and not within.is_empty:
            clipped = likely.intersection(within)
            likely = clipped if not clipped.is_empty else within
        return LocationEstimate(
            lat_deg, lon_deg, likely, LIKELY_COVERAGE * inlier_share, error_radius_km
        )


class _Multilateration:
    def __init__(self, landmark_vectors: FloatArray, bands_km: FloatArray):
        self.vectors = landmark_vectors
        low, mid, high, maximum = bands_km.T
        self.mid_km = mid
        self.max_km = maximum
        self.below_km = (mid - low) + BAND_FLOOR_KM
        self.above_km = (high - mid) + BAND_FLOOR_KM

    def residuals(self, lat_deg: FloatArray, lon_deg: FloatArray) -> FloatArray:
        """Scaled residuals, shape (..., 2n): band misfit, then bestline overshoot."""
        points = unit_vectors(lat_deg, lon_deg)[..., None, :]
        dot = np.clip(np.sum(points * self.vectors, axis=-1), -1.0, 1.0)
        dist_km = np.arccos(dot) * EARTH_MEAN_RADIUS_KM
        gap = dist_km - self.mid_km
        band = np.where(gap > 0.0, gap / self.above_km, gap / self.below_km)
        overshoot = np.maximum(dist_km - self.max_km, 0.0) / BAND_FLOOR_KM
        return np.asarray(np.concatenate((band, overshoot), axis=-1), dtype=np.float64)

    def cost(self, lat_deg: FloatArray, lon_deg: FloatArray) -> FloatArray:
        r = self.residuals(lat_deg, lon_deg)
        return np.asarray(np.sum(2.0 * (np.sqrt(1.0 + r * r) - 1.0), axis=-1), dtype=np.float64)

    def solve(self, lat: FloatArray, lon: FloatArray) -> tuple[float, float, FloatArray]:
        # Start from a ring of candidates around the landmarks with the smallest likely distance:
        # small RTTs are the ones delay cannot have shrunk.
        nearest = np.argsort(self.mid_km)[:4]
        cand_lat: list[FloatArray] = [lat[nearest]]
        cand_lon: list[FloatArray] = [lon[nearest]]
        azimuths = np.linspace(0.0, 2.0 * np.pi, 16, endpoint=False)
        for i in nearest:
            for radius_km in (0.5 * self.mid_km[i], self.mid_km[i]):
                if radius_km <= 0.0:
                    continue
                la, lo = sphere_destinations_rad(
                    math.radians(lat[i]),
                    math.radians(lon[i]),
                    azimuths,
                    radius_km / EARTH_MEAN_RADIUS_KM,
                )
                cand_lat.append(np.degrees(la))
                cand_lon.append((np.degrees(lo) + 180.0) % 360.0 - 180.0)
        all_lat, all_lon = np.concatenate(cand_lat), np.concatenate(cand_lon)
        costs = self.cost(all_lat, all_lon)
        best: tuple[float, float, float] = (math.inf, 0.0, 0.0)
        for start in np.argsort(costs)[:3]:
            result = least_squares(
                lambda x: self.residuals(np.array(x[0]), np.array(x[1])),
                x0=[all_lat[start], all_lon[start]],
                loss="soft_l1",
                bounds=([-90.0, -540.0], [90.0, 540.0]),
                x_scale=[1.0, 1.0],
            )
            if result.cost < best[0]:
                best = (float(result.cost), float(result.x[0]), float(result.x[1]))
        lat_deg = best[1]
        lon_deg = (best[2] + 180.0) % 360.0 - 180.0
        n = len(self.mid_km)
        return lat_deg, lon_deg, self.residuals(np.array(lat_deg), np.array(lon_deg))[:n]


def disc(lat_deg: float, lon_deg: float, radius_km: float, vertices: int = 64) -> BaseGeometry:
    """A spherical cap as a lon/lat polygon (antimeridian split); for display regions only."""
    azimuths = np.linspace(0.0, 2.0 * np.pi, vertices, endpoint=False)
    angle_rad = min(radius_km / EARTH_MEAN_RADIUS_KM, math.pi - 1e-6)
    lat_rad, lon_rad = sphere_destinations_rad(
        math.radians(lat_deg), math.radians(lon_deg), azimuths, angle_rad
    )
    ring = np.column_stack((np.degrees(lon_rad), np.degrees(lat_rad)))
    ring[:, 0] = (ring[:, 0] + 180.0) % 360.0 - 180.0
    ring = np.vstack((ring, ring[:1]))
    geometry = split_antimeridian([ring])
    return geometry if not geometry.is_empty else shapely.buffer(Point(lon_deg, lat_deg), 0.01)
